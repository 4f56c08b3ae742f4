//! Arenas: shared memory holding the state of many synchronization objects.
//!
//! With [`crate::lifeline`]'s one block (naming a sleeper's futex word for
//! the kernel) and [`crate::close_ring`]'s one page, this is the crate's only
//! `unsafe` code: mapping an arena, handing out
//! references to its slots, and naming a slot's futex word for the kernel.
//! The rules relied on are stated once here: an [`Arena`] owns its mapping
//! for its whole life, the mapping is `ARENA_SLOTS` slots long, and every
//! field of a [`Slot`] is an atomic, so shared references to slots are sound
//! however many threads and processes use them at once.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use rustix::mm::{MapFlags, ProtFlags};

/// Bytes per slot: one cache line, so objects never share one.
pub const SLOT_SIZE: usize = 64;
/// Slots per arena. Slot 0 is never allocated (index 0 means "none").
pub const ARENA_SLOTS: u32 = 1 << 20;
/// Bytes per arena. The file is sparse: only slots in use take memory.
pub const ARENA_BYTES: u64 = ARENA_SLOTS as u64 * SLOT_SIZE as u64;
/// Slots of a *solo* arena: one page holding a single object (in slot
/// [`SOLO_SLOT`]), for an object shared with other users. A process of
/// another user maps that page, read-only, and nothing else.
pub const SOLO_SLOTS: u32 = 64;
/// The slot a solo arena's object lives in.
pub const SOLO_SLOT: u32 = 1;

/// One synchronization object's shared state. Field meanings per kind are in
/// [`crate::ops`]; only `state` is ever waited on.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Slot {
    /// Low half: the object's state and futex word. High half: the lock holder.
    pub state: AtomicU64,
    /// Threads registered as (about to be) sleeping on this object.
    pub waiters: AtomicU32,
    /// [`crate::Kind`] code; written by the broker before any client sees the slot.
    pub kind: AtomicU32,
    /// Semaphore: the maximum count.
    pub maximum: AtomicU32,
    /// Mutex: how many times the owner acquired it. Only the owner writes it.
    pub recursion: AtomicU32,
    /// Mutex: the owner's pid and tid, for display only.
    pub owner_pid: AtomicU32,
    pub owner_tid: AtomicU32,
    /// Timer: due time in `CLOCK_MONOTONIC` nanoseconds, 0 when not armed.
    /// Written only under the slot lock.
    pub due: AtomicU64,
    /// Timer: period in nanoseconds, 0 for a one-shot timer.
    pub period: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

impl Default for Slot {
    fn default() -> Slot {
        Slot::new()
    }
}

impl Slot {
    /// An all-zero slot (the state of a free slot).
    pub const fn new() -> Slot {
        Slot {
            state: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            maximum: AtomicU32::new(0),
            recursion: AtomicU32::new(0),
            owner_pid: AtomicU32::new(0),
            owner_tid: AtomicU32::new(0),
            due: AtomicU64::new(0),
            period: AtomicU64::new(0),
        }
    }

    /// The futex word: the low 32 bits of `state`. Only ever handed to the
    /// kernel (futex wait and wake); Rust code reads and writes `state` whole.
    #[inline]
    pub(crate) fn futex_word(&self) -> &AtomicU32 {
        // SAFETY: the low half of an 8-byte-aligned AtomicU64 on a little-endian
        // machine is a 4-byte-aligned u32 inside the same allocation, living as
        // long as `self`. The reference is used only as an address for futex
        // syscalls, whose kernel-side accesses are atomic; no Rust code accesses
        // memory through it, so there are no mixed-size Rust atomic accesses.
        unsafe { &*self.state.as_ptr().cast::<AtomicU32>() }
    }
}

/// A mapped arena: [`ARENA_SLOTS`] slots, or [`SOLO_SLOTS`] for a solo one.
#[derive(Debug)]
pub struct Arena {
    base: NonNull<Slot>,
    slots: u32,
    writable: bool,
}

// SAFETY: the mapping is shared memory made only of atomics; it may be used
// from any thread, and unmapped from any thread once no reference remains.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` only hands out `&Slot`, whose fields are atomics.
unsafe impl Sync for Arena {}

impl Arena {
    /// Maps the arena file `fd`, `slots` slots long ([`ARENA_SLOTS`] or
    /// [`SOLO_SLOTS`]), read-write or (`writable` false) read-only: a
    /// process may then wait on its objects but never change them, and the
    /// kernel enforces it (the fd it was given is read-only too).
    pub fn map(fd: BorrowedFd<'_>, slots: u32, writable: bool) -> rustix::io::Result<Arena> {
        if slots != ARENA_SLOTS && slots != SOLO_SLOTS {
            return Err(rustix::io::Errno::INVAL);
        }
        let len = slots as usize * SLOT_SIZE;
        if rustix::fs::fstat(fd)?.st_size < len as i64 {
            return Err(rustix::io::Errno::INVAL);
        }
        let protection = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a new shared mapping at an address the kernel chooses; it
        // replaces nothing. The Arena owns it until Drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                protection,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let base = NonNull::new(ptr.cast::<Slot>()).ok_or(rustix::io::Errno::NOMEM)?;
        Ok(Arena {
            base,
            slots,
            writable,
        })
    }

    /// Whether this process may change the arena's objects by writing it
    /// (otherwise the broker changes them on its behalf).
    #[inline]
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The slot at `index`, if it is inside the arena and not slot 0.
    #[inline]
    pub fn slot(&self, index: u32) -> Option<&Slot> {
        (index != 0 && index < self.slots).then(|| {
            // SAFETY: index < self.slots, so the slot lies inside the
            // mapping, which lives as long as `self`; Slot is made of
            // atomics, so shared references are sound while other threads
            // and processes write it. (A read-only mapping is only ever
            // read through them: `writable` tells callers which it is.)
            unsafe { &*self.base.as_ptr().add(index as usize) }
        })
    }

    /// Makes slot 0 of this arena, never allocated to an object, its
    /// *doorbell*: on kernels without `futex_waitv`, a thread waiting on
    /// several of its objects sleeps on it, and signalers ring it (see
    /// [`crate::wait`](mod@crate::wait)). Every process using the arena registers it. The
    /// arena must live for the rest of the process (`'static`).
    pub fn serve_as_doorbell(&'static self) {
        if self.slots != ARENA_SLOTS || !self.writable {
            return; // a solo or read-only arena has no doorbell
        }
        let bell = self.base.as_ptr();
        if doorbells().any(|known| std::ptr::eq(known, bell)) {
            return;
        }
        let node: &'static mut Doorbell = Box::leak(Box::new(Doorbell {
            bell,
            next: std::ptr::null(),
        }));
        let mut head = DOORBELLS.load(Ordering::Acquire);
        loop {
            node.next = head;
            let new: *mut Doorbell = &mut *node;
            match DOORBELLS.compare_exchange(head, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this base and length
        // and is unmapped once; every `&Slot` borrowed from `self` is gone,
        // since they cannot outlive it. (Arenas registered as doorbells are
        // `'static` and never dropped.)
        let _ = unsafe {
            rustix::mm::munmap(self.base.as_ptr().cast(), self.slots as usize * SLOT_SIZE)
        };
    }
}

/// One registered doorbell: slot 0 of an arena that lives for the rest of
/// the process. Nodes are leaked and never change once published.
struct Doorbell {
    bell: *mut Slot,
    next: *const Doorbell,
}

/// The registered doorbells, newest first (one per broker session a process
/// has used, so a short list).
static DOORBELLS: AtomicPtr<Doorbell> = AtomicPtr::new(std::ptr::null_mut());

/// Every registered doorbell's slot 0, as a raw pointer.
fn doorbells() -> impl Iterator<Item = *mut Slot> {
    let mut node: *const Doorbell = DOORBELLS.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: `node` is null or a leaked `Doorbell` published with
        // Release (and read with Acquire): it lives for the rest of the
        // process and never changes after it was published.
        let current = unsafe { node.as_ref() }?;
        node = current.next;
        Some(current.bell)
    })
}

/// The doorbell of the arena `slot` lives in, if that arena has one.
pub(crate) fn doorbell_of(slot: &Slot) -> Option<&'static Slot> {
    let address = slot as *const Slot as usize;
    let bell = doorbells().find(|&bell| {
        let start = bell as usize;
        (start..start + ARENA_BYTES as usize).contains(&address)
    })?;
    // SAFETY: a registered pointer is slot 0 of an arena borrowed for
    // `'static` (`serve_as_doorbell`), which is therefore never dropped, so
    // its mapping lives for the rest of the process; a Slot is made of
    // atomics, so a shared reference is sound whoever else writes it.
    Some(unsafe { &*bell })
}
