//! The broker's side of synchronization objects: the arena their state lives
//! in, slot allocation, and what `objmgr ls`/`stat` show about each.
//!
//! The broker only creates, destroys and inspects objects here; every wait
//! and signal happens in the clients (see `objmgr-sync`). When a client dies,
//! [`SyncArena::reap`] abandons the mutexes its threads owned and releases
//! slot locks it held, so no object is left stuck.

use crate::errno;
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use objmgr_proto::error::*;
use objmgr_proto::sync::SyncInit;
use objmgr_sync::Slot;
use objmgr_sync::arena::{ARENA_SLOTS, SLOT_SIZE, SOLO_SLOT, SOLO_SLOTS};
use objmgr_sync::ops::{self, Actor, Kind};
use objmgr_sync::{Arena, clock};
use rustix::fs::{self, MemfdFlags, Mode, SealFlags};

use crate::Failure;
use crate::section::{file_node, reopen_read_only};

/// A new arena id: unique in this broker, and (from its pid and start
/// time) unlikely to equal one of an earlier broker that a reconnecting
/// client still has mapped.
fn next_arena_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        (u64::from(std::process::id()) << 32) ^ clock::now(),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where sync state lives: the arena of one security domain (a uid; a
/// per-user broker has one), or a *solo* arena, one page holding a single
/// object shared between users (see `docs/PROTOCOL.md`, section 8).
#[derive(Debug)]
pub struct SyncArena {
    /// Tells clients which arena a slot index refers to.
    pub id: u64,
    /// Sent to each client once, with its first sync-object reply: to
    /// processes of the domain, which may write it.
    pub fd: Rc<OwnedFd>,
    /// A solo arena's read-only fd, for processes of other users, made the
    /// first time one needs it.
    read_only: OnceCell<Rc<OwnedFd>>,
    arena: Mapping,
    slots: u32,
    free: Vec<u32>,
    next: u32,
    live: BTreeSet<u32>,
}

/// A domain's arena is mapped for the rest of the broker's life (its slot 0
/// is the doorbell); a solo arena until its object dies.
#[derive(Debug)]
enum Mapping {
    Forever(&'static Arena),
    Solo(Arena),
}

impl SyncArena {
    /// A security domain's arena.
    pub fn new() -> Result<SyncArena, Failure> {
        Self::make(ARENA_SLOTS)
    }

    /// A solo arena for one object shared between users. Its memory file is
    /// read-only for everyone but root: a process of another user gets a
    /// read-only fd, which it cannot open again for writing.
    pub fn new_solo() -> Result<SyncArena, Failure> {
        let arena = Self::make(SOLO_SLOTS)?;
        fs::fchmod(&*arena.fd, Mode::from_raw_mode(0o400))
            .map_err(|e| Failure::new(errno(e), "making a shared object's state file read-only"))?;
        Ok(arena)
    }

    /// Takes back the domain arena `id` of a broker that died, from the fd
    /// a client of that broker still holds: a sealed memfd of a domain
    /// arena's size. It is mapped for the rest of the broker's life (it is
    /// its clients' doorbell too) and starts with no live slot; new objects
    /// never go into it ([`SyncArena::adopt_slot`] marks those taken back).
    ///
    /// A solo arena (`slots` is `SOLO_SLOTS`) is taken back only by the
    /// system broker, which knows it from its ledger; it stays mapped until
    /// its object dies.
    pub fn adopt(fd: OwnedFd, id: u64, slots: u32, solo: bool) -> Result<SyncArena, Failure> {
        let not_ours = |why: &str| {
            Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("the descriptor is not a sync arena of a lost broker: {why}"),
            )
        };
        if slots != if solo { SOLO_SLOTS } else { ARENA_SLOTS } {
            return Err(not_ours("the arena has another size"));
        }
        let seals = fs::fcntl_get_seals(&fd).map_err(|_| not_ours("it takes no seals"))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL) {
            return Err(not_ours("its seals are not an arena's"));
        }
        let size = fs::fstat(&fd)
            .map_err(|e| Failure::new(errno(e), "fstat of a sync arena"))?
            .st_size;
        if size as u64 != u64::from(slots) * SLOT_SIZE as u64 {
            return Err(not_ours("its size is not an arena's"));
        }
        let mut arena = Self::over(fd, id, slots)?;
        arena.next = slots; // no new object goes into it
        Ok(arena)
    }

    /// Marks slot `index` of an adopted arena live again, and returns the
    /// kind of object it holds: a mutex, event, semaphore, timer or thread,
    /// or `None` (no such object is there; nothing changes).
    pub fn adopt_slot(&mut self, index: u32) -> Option<Kind> {
        if index == 0 {
            return None; // the doorbell
        }
        let kind = self.arena().slot(index).and_then(ops::observe)?.kind;
        matches!(
            kind,
            Kind::Mutex | Kind::Event { .. } | Kind::Semaphore | Kind::Timer { .. } | Kind::Thread
        )
        .then(|| {
            self.live.insert(index);
            kind
        })
    }

    /// Whether the arena's memory is the file behind `fd` (an adopted
    /// arena announced again by another client).
    pub fn is_file(&self, fd: &OwnedFd) -> bool {
        match (file_node(&self.fd), file_node(fd)) {
            (Ok(mine), Ok(theirs)) => mine == theirs,
            _ => false,
        }
    }

    fn make(slots: u32) -> Result<SyncArena, Failure> {
        let fd = fs::memfd_create(
            "objmgr-sync-arena",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| Failure::new(errno(e), "memfd_create for the sync arena"))?;
        fs::ftruncate(&fd, u64::from(slots) * SLOT_SIZE as u64)
            .map_err(|e| Failure::new(errno(e), "sizing the sync arena"))?;
        fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| Failure::new(errno(e), "sealing the sync arena"))?;
        Self::over(fd, next_arena_id(), slots)
    }

    /// The arena `id` over memory file `fd` of `slots` slots, mapped: a
    /// domain's for the rest of the broker's life (and its clients'
    /// doorbell), a solo one until it is dropped.
    fn over(fd: OwnedFd, id: u64, slots: u32) -> Result<SyncArena, Failure> {
        let mapped = Arena::map(fd.as_fd(), slots, true)
            .map_err(|e| Failure::new(errno(e), "mapping the sync arena"))?;
        let arena = if slots == ARENA_SLOTS {
            let forever: &'static Arena = Box::leak(Box::new(mapped));
            forever.serve_as_doorbell();
            Mapping::Forever(forever)
        } else {
            Mapping::Solo(mapped)
        };
        Ok(SyncArena {
            id,
            fd: Rc::new(fd),
            read_only: OnceCell::new(),
            arena,
            slots,
            free: Vec::new(),
            next: 1,
            live: BTreeSet::new(),
        })
    }

    fn arena(&self) -> &Arena {
        match &self.arena {
            Mapping::Forever(arena) => arena,
            Mapping::Solo(arena) => arena,
        }
    }

    /// The identity of the arena's memory file.
    pub fn node(&self) -> Result<crate::section::FileNode, Failure> {
        file_node(&self.fd)
    }

    /// Whether this is a solo arena (one object shared between users).
    pub fn is_solo(&self) -> bool {
        self.slots == SOLO_SLOTS
    }

    /// The arena's size in slots (`ARENA_SLOTS`, or `SOLO_SLOTS`).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The fd a process gets: writable for a process of the domain,
    /// read-only (a solo arena only) for another user's.
    pub fn fd_for(&self, writable: bool) -> Result<Rc<OwnedFd>, Failure> {
        if writable {
            return Ok(self.fd.clone());
        }
        if self.slots != SOLO_SLOTS {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "a security domain's arena is never given to another user",
            ));
        }
        if let Some(fd) = self.read_only.get() {
            return Ok(fd.clone());
        }
        let fd = Rc::new(reopen_read_only(
            &self.fd,
            "reopening a shared object's state read-only",
        )?);
        let _ = self.read_only.set(fd.clone());
        Ok(fd)
    }

    /// Descriptors this arena holds open.
    pub fn fds_held(&self) -> u64 {
        1 + u64::from(self.read_only.get().is_some())
    }

    /// The live slots, for a broker operation on every object.
    pub fn live_slots(&self) -> impl Iterator<Item = &Slot> {
        self.live
            .iter()
            .filter_map(|&index| self.arena().slot(index))
    }

    /// The live slot at `index`.
    pub fn slot(&self, index: u32) -> Option<&Slot> {
        self.live
            .contains(&index)
            .then(|| self.arena().slot(index))
            .flatten()
    }

    /// Slots not in use.
    pub fn available(&self) -> u32 {
        (self.slots - self.next) + self.free.len() as u32
    }

    /// Allocates and initializes a slot for a new object.
    pub fn allocate(&mut self, init: SyncInit, owner: Option<Actor>) -> Result<u32, Failure> {
        let index = self.take_slot()?;
        let slot = self
            .arena()
            .slot(index)
            .expect("allocated inside the arena");
        ops::init_slot(slot, init, owner);
        Ok(index)
    }

    /// Allocates a slot for a process or thread object, running or exited.
    pub fn allocate_exit(
        &mut self,
        kind: Kind,
        pid: u32,
        exit_code: Option<u32>,
    ) -> Result<u32, Failure> {
        let index = self.take_slot()?;
        let slot = self
            .arena()
            .slot(index)
            .expect("allocated inside the arena");
        ops::init_exit_slot(slot, kind, pid, exit_code);
        Ok(index)
    }

    /// Sets the pid a process or thread slot shows.
    pub fn set_pid(&self, index: u32, pid: u32) {
        if let Some(slot) = self.arena().slot(index) {
            slot.owner_pid
                .store(pid, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Records a thread object's Linux thread id (a process's main thread
    /// has its pid).
    pub fn set_tid(&self, index: u32, tid: u32) {
        if let Some(slot) = self.arena().slot(index) {
            slot.owner_tid
                .store(tid, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Marks a process or thread object as exited.
    pub fn mark_exited(&self, index: u32, exit_code: u32) {
        if let Some(slot) = self.arena().slot(index) {
            ops::mark_exited(slot, exit_code);
        }
    }

    fn take_slot(&mut self) -> Result<u32, Failure> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.next < self.slots
                && (self.slots == ARENA_SLOTS || self.next == SOLO_SLOT) =>
            {
                self.next += 1;
                self.next - 1
            }
            None => {
                return Err(Failure::new(
                    ERROR_NO_SYSTEM_RESOURCES,
                    format!("the sync arena is full ({} objects)", self.live.len()),
                ));
            }
        };
        self.live.insert(index);
        Ok(index)
    }

    /// Marks slot `index` of an adopted arena as not taken back after all
    /// (a claim of it was refused), leaving its state as it is: it may
    /// still be claimed, and other processes may still use it.
    pub fn unadopt_slot(&mut self, index: u32) {
        self.live.remove(&index);
    }

    /// Frees the slot of a destroyed object.
    pub fn free(&mut self, index: u32) {
        if self.live.remove(&index) {
            ops::clear_slot(self.arena().slot(index).expect("live slot"));
            self.free.push(index);
        }
    }

    /// Cleans up after client `tag` died or disconnected.
    pub fn reap(&self, tag: u16) {
        for &index in &self.live {
            ops::reap_client(self.arena().slot(index).expect("live slot"), tag);
        }
    }

    /// Name/value pairs describing an object's state, for `ls` and `stat`.
    pub fn describe(&self, index: u32) -> Vec<(String, String)> {
        let Some(seen) = self.arena().slot(index).and_then(ops::observe) else {
            return Vec::new();
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let mut props = Vec::new();
        match seen.kind {
            Kind::Event { manual_reset } | Kind::Timer { manual_reset } => {
                props.push(("signaled".into(), yes_no(seen.signaled)));
                let reset = if manual_reset { "manual" } else { "auto" };
                props.push(("reset".into(), reset.into()));
            }
            Kind::Semaphore => {
                props.push(("count".into(), seen.count.to_string()));
                props.push(("maximum".into(), seen.maximum.to_string()));
            }
            Kind::Job => {
                props.push(("terminated".into(), yes_no(seen.signaled)));
            }
            Kind::Process | Kind::Thread => {
                props.push(("exited".into(), yes_no(seen.signaled)));
                if seen.signaled {
                    props.push(("exit_code".into(), seen.count.to_string()));
                }
            }
            Kind::Mutex => {
                props.push(("signaled".into(), yes_no(seen.signaled)));
                if let Some((pid, tid)) = seen.owner {
                    props.push(("owner".into(), format!("{pid}/{tid}")));
                    props.push(("recursion".into(), seen.recursion.to_string()));
                }
                if seen.abandoned {
                    props.push(("abandoned".into(), "yes".into()));
                }
            }
        }
        if let Kind::Timer { .. } = seen.kind {
            // Relative to now: "+250 ms" ahead, "-3 ms" overdue (fires when looked at).
            let due = if seen.due == 0 {
                "not armed".to_owned()
            } else {
                let delta = seen.due as i128 - clock::now() as i128;
                format!("{:+} ms", delta / 1_000_000)
            };
            props.push(("due".into(), due));
            if seen.period != 0 {
                props.push(("period".into(), format!("{} ms", seen.period / 1_000_000)));
            }
        }
        props.push(("waiters".into(), seen.waiters.to_string()));
        props
    }
}
