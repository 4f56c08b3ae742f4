//! Who is calling: the thread identity that owns mutexes and holds slot
//! locks in shared sync state, and the mutexes each thread owns.
//!
//! A thread's [`Token`] is its process's broker-assigned tag plus a thread
//! number unique in the process. It is made on the thread's first sync
//! operation and kept in thread-local storage, so waits and signals need no
//! broker and no system call to learn who is calling. When a thread exits
//! holding mutexes they are abandoned (the thread-local destructor does it;
//! the broker does it for a process that dies). Thread state belongs to one
//! connection generation: a forked child, or a process whose broker went
//! away, gets a new tag, and every thread state made before is discarded.
//!
//! The hot path (every wait, every `ReleaseMutex`) touches only
//! thread-locals that are const-initialized and have no destructor, so
//! reading them is a thread-pointer-relative load with no lazy registration
//! and no borrow flag: the identity ([`ACTOR`]) and the first few owned
//! mutexes of this process's arenas ([`OWNED`]). The full state, with its
//! destructor, is made once per thread and holds what does not fit there.

use std::cell::{Cell, RefCell};
use std::sync::Mutex;

use objmgr_sync::Slot;
use objmgr_sync::ops::{self, Actor, Token};

use crate::connection;
use crate::error::{ERROR_NO_SYSTEM_RESOURCES, Error, Result};
use crate::sync::SlotRef;

/// Thread numbers of the current epoch: the free list and the next new one.
struct ThreadNumbers {
    epoch: u64,
    free: Vec<u32>,
    next: u32,
}

static NUMBERS: Mutex<ThreadNumbers> = Mutex::new(ThreadNumbers {
    epoch: 0,
    free: Vec::new(),
    next: 0,
});

/// Ends the calling thread's ownership now, as its exit does: the mutexes it
/// owns are abandoned and its token freed (a later sync call in the thread
/// starts afresh).
pub(crate) fn end_thread() {
    let state = THREAD.try_with(|thread| thread.borrow_mut().take());
    drop(state);
}

/// Makes the calling thread's state destroyed before the thread-locals
/// touched before this call and after those touched after it (thread-local
/// destructors run in reverse order of first use): a thread started by
/// objmgr calls it right after registering its own exit, so that its
/// mutexes are abandoned after every destructor of the thread's own code.
pub(crate) fn register_exit_order() {
    let _ = THREAD.try_with(|_| ());
}

/// The thread numbers, locked (for the `fork()` handlers).
pub(crate) fn lock_numbers_for_fork() -> Box<dyn std::any::Any> {
    Box::new(NUMBERS.lock().unwrap_or_else(|p| p.into_inner()))
}

struct ThreadState {
    /// The connection generation the token belongs to.
    epoch: u64,
    actor: Actor,
    /// Mutexes it owns whose state this process may write, beyond those in
    /// [`OWNED`] (solo arenas, kept mapped while owned, and any overflow).
    owned: Vec<SlotRef>,
    /// Whether it waited on objects of other users' domains (the broker
    /// abandons the mutexes it took for it when the thread exits).
    used_remote: bool,
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // From here on the hot path must not use this identity.
        ACTOR_EPOCH.set(NO_EPOCH);
        let fast_owned = OWNED.with(FastOwned::take_all);
        if self.epoch != connection::current_generation() {
            return; // Of an older session (or the parent's): nothing to clean.
        }
        for slot in fast_owned.iter().flatten() {
            ops::abandon_mutex(slot, self.actor.token);
        }
        for owned in self.owned.drain(..) {
            ops::abandon_mutex(owned.get(), self.actor.token);
        }
        if self.used_remote {
            crate::remote_sync::abandon_thread(&self.actor);
        }
        let mut numbers = NUMBERS.lock().unwrap_or_else(|p| p.into_inner());
        if numbers.epoch == self.epoch {
            numbers
                .free
                .push(self.actor.token.raw() & (Token::MAX_THREADS - 1));
        }
    }
}

thread_local! {
    static THREAD: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
    /// The connection generation [`ACTOR`] belongs to; [`NO_EPOCH`] until
    /// the thread's [`ThreadState`] is made and after that is destroyed.
    static ACTOR_EPOCH: Cell<u64> = const { Cell::new(NO_EPOCH) };
    /// The calling thread's identity, while [`ACTOR_EPOCH`] is current.
    /// Kept as plain words, not one `Cell<Actor>`: a 12-byte copy through
    /// memory came out split in ways that stalled the loads reading it back.
    static ACTOR: (Cell<u32>, Cell<u32>, Cell<u32>) =
        const { (Cell::new(0), Cell::new(0), Cell::new(0)) };
    /// Mutexes in this process's domain arenas the thread owns, as many as fit.
    static OWNED: FastOwned = const { FastOwned::new() };
}

/// No connection generation is ever this.
const NO_EPOCH: u64 = u64::MAX;

/// How many owned mutexes a thread keeps track of without its full state.
const FAST_OWNED: usize = 8;

/// A thread's first [`FAST_OWNED`] owned mutexes of domain arenas (which
/// stay mapped for the life of the process, so a plain reference will do).
struct FastOwned {
    len: Cell<usize>,
    slots: [Cell<Option<&'static Slot>>; FAST_OWNED],
}

impl FastOwned {
    const fn new() -> FastOwned {
        FastOwned {
            len: Cell::new(0),
            slots: [const { Cell::new(None) }; FAST_OWNED],
        }
    }

    /// Adds `slot`; `false` when full.
    #[inline]
    fn push(&self, slot: &'static Slot) -> bool {
        let len = self.len.get();
        if len == FAST_OWNED {
            return false;
        }
        self.slots[len].set(Some(slot));
        self.len.set(len + 1);
        true
    }

    /// Removes `slot` (the most recently added first: releases usually
    /// come in reverse order of acquisition); `false` if not here.
    #[inline]
    fn remove(&self, slot: &Slot) -> bool {
        let len = self.len.get();
        let Some(pos) = (0..len)
            .rev()
            .find(|&i| self.slots[i].get().is_some_and(|s| std::ptr::eq(s, slot)))
        else {
            return false;
        };
        self.slots[pos].set(self.slots[len - 1].get());
        self.slots[len - 1].set(None);
        self.len.set(len - 1);
        true
    }

    /// Empties the list, returning what it held.
    fn take_all(&self) -> [Option<&'static Slot>; FAST_OWNED] {
        self.len.set(0);
        std::array::from_fn(|i| self.slots[i].take())
    }
}

fn new_thread_state() -> Result<ThreadState> {
    let (tag, epoch) = connection::client_tag()?;
    let number = {
        let mut numbers = NUMBERS.lock().unwrap_or_else(|p| p.into_inner());
        if numbers.epoch != epoch {
            *numbers = ThreadNumbers {
                epoch,
                free: Vec::new(),
                next: 0,
            };
        }
        match numbers.free.pop() {
            Some(n) => n,
            None => {
                numbers.next += 1;
                numbers.next - 1
            }
        }
    };
    let token = Token::new(tag, number).ok_or_else(|| {
        Error::new(
            ERROR_NO_SYSTEM_RESOURCES,
            format!(
                "more than {} threads use synchronization objects at once",
                Token::MAX_THREADS
            ),
        )
    })?;
    Ok(ThreadState {
        epoch,
        actor: Actor {
            token,
            pid: rustix::process::getpid().as_raw_nonzero().get() as u32,
            tid: rustix::thread::gettid().as_raw_nonzero().get() as u32,
        },
        owned: Vec::new(),
        used_remote: false,
    })
}

/// Runs `f` with the calling thread's state, making it on first use.
/// Fails (rather than panics) in a thread-local destructor that runs after
/// the thread's own state is gone.
fn with_state<T>(f: impl FnOnce(&mut ThreadState) -> T) -> Result<T> {
    let gone = || {
        Error::new(
            crate::error::ERROR_INVALID_HANDLE,
            "the calling thread is exiting: its synchronization state is gone",
        )
    };
    THREAD
        .try_with(|cell| {
            let mut state = cell.borrow_mut();
            let epoch = connection::current_generation();
            if state.as_ref().is_none_or(|s| s.epoch != epoch) {
                if let Some(mut stale) = state.take() {
                    // Mutexes of another session (or the parent's) are not ours.
                    stale.owned.clear();
                }
                OWNED.with(FastOwned::take_all);
                let fresh = new_thread_state()?;
                ACTOR.with(|(pid, tid, token)| {
                    pid.set(fresh.actor.pid);
                    tid.set(fresh.actor.tid);
                    token.set(fresh.actor.token.raw());
                });
                ACTOR_EPOCH.set(fresh.epoch);
                *state = Some(fresh);
            }
            Ok(f(state.as_mut().expect("made above")))
        })
        .unwrap_or_else(|_| Err(gone()))
}

/// The calling thread as sync operations see it.
pub(crate) struct Thread<'a>(&'a mut ThreadState);

impl Thread<'_> {
    /// Records that this thread is about to wait through the broker.
    pub(crate) fn uses_remote(&mut self) {
        self.0.used_remote = true;
    }
}

/// Runs `f` with the calling thread (made on first use). `f` must not call
/// back into this module.
pub(crate) fn with_thread<T>(f: impl FnOnce(&mut Thread<'_>) -> T) -> Result<T> {
    with_state(|state| f(&mut Thread(state)))
}

/// The calling thread's identity: one thread-local load once the thread has
/// used a sync object in this connection generation.
#[inline]
pub(crate) fn current() -> Result<Actor> {
    current_in(connection::current_generation())
}

/// [`current`], for a caller that has just found `generation` current (it
/// checked a handle): no second look at the connection's generation.
#[inline]
pub(crate) fn current_in(generation: u64) -> Result<Actor> {
    if ACTOR_EPOCH.get() == generation {
        ACTOR.with(|(pid, tid, token)| {
            let token = Token::from_raw(token.get()).ok_or_else(stale_identity)?;
            Ok(Actor {
                pid: pid.get(),
                tid: tid.get(),
                token,
            })
        })
    } else {
        current_slowly()
    }
}

#[cold]
fn stale_identity() -> Error {
    Error::new(
        crate::error::ERROR_INVALID_HANDLE,
        "the calling thread's synchronization identity is not set",
    )
}

#[inline(never)]
fn current_slowly() -> Result<Actor> {
    with_state(|t| t.actor)
}

/// Records that the calling thread now owns the mutex in `slot` (kept
/// mapped while owned), so that its exit abandons it.
#[inline(always)]
pub(crate) fn owns(slot: &SlotRef) -> Result<()> {
    match slot {
        SlotRef::Domain(slot) if OWNED.with(|o| o.push(slot)) => Ok(()),
        _ => owns_slowly(slot),
    }
}

/// [`owns`] for a mutex the thread's short list has no room for, or one
/// in a solo arena.
#[inline(never)]
fn owns_slowly(slot: &SlotRef) -> Result<()> {
    if !slot.writable() {
        // The broker keeps track of what it took for the thread.
        return Ok(());
    }
    with_state(|t| t.owned.push(slot.clone()))
}

/// Records that the calling thread released the mutex in `slot` for good.
#[inline(always)]
pub(crate) fn disowns(slot: &SlotRef) -> Result<()> {
    match slot {
        SlotRef::Domain(slot) if OWNED.with(|o| o.remove(slot)) => Ok(()),
        _ => disowns_slowly(slot),
    }
}

/// [`disowns`] for a mutex not in the thread's short list.
#[inline(never)]
fn disowns_slowly(slot: &SlotRef) -> Result<()> {
    if !slot.writable() {
        return Ok(());
    }
    with_state(|t| {
        let released = slot.get();
        if let Some(pos) = t
            .owned
            .iter()
            .rposition(|o| std::ptr::eq(o.get(), released))
        {
            t.owned.swap_remove(pos);
        }
    })
}
