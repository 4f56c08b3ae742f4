//! The broker's side of synchronization objects: the arena their state lives
//! in, slot allocation, and what `objmgr ls`/`stat` show about each.
//!
//! The broker only creates, destroys and inspects objects here; every wait
//! and signal happens in the clients (see `objmgr-sync`). When a client dies,
//! [`SyncArena::reap`] abandons the mutexes its threads owned and releases
//! slot locks it held, so no object is left stuck.

use crate::errno;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use objmgr_proto::error::*;
use objmgr_proto::sync::SyncInit;
use objmgr_sync::arena::{ARENA_BYTES, ARENA_SLOTS};
use objmgr_sync::ops::{self, Actor, Kind};
use objmgr_sync::{Arena, clock};
use rustix::fs::{self, MemfdFlags, SealFlags};

use crate::Failure;

/// The arena of one security domain (a per-user broker has one).
#[derive(Debug)]
pub struct SyncArena {
    /// Tells clients which arena a slot index refers to.
    pub id: u64,
    /// Sent to each client once, with its first sync-object reply.
    pub fd: Rc<OwnedFd>,
    /// Mapped for the rest of the broker's life (its slot 0 is the doorbell).
    arena: &'static Arena,
    free: Vec<u32>,
    next: u32,
    live: BTreeSet<u32>,
}

impl SyncArena {
    pub fn new() -> Result<SyncArena, Failure> {
        let fd = fs::memfd_create(
            "objmgr-sync-arena",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| Failure::new(errno(e), "memfd_create for the sync arena"))?;
        fs::ftruncate(&fd, ARENA_BYTES)
            .map_err(|e| Failure::new(errno(e), "sizing the sync arena"))?;
        fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| Failure::new(errno(e), "sealing the sync arena"))?;
        let arena: &'static Arena = Box::leak(Box::new(
            Arena::map(fd.as_fd()).map_err(|e| Failure::new(errno(e), "mapping the sync arena"))?,
        ));
        arena.serve_as_doorbell();
        // Unique per broker instance: a client that reconnects to a new broker
        // must not mistake the new arena for the old one it has mapped.
        let id = (u64::from(std::process::id()) << 32) ^ clock::now();
        Ok(SyncArena {
            id,
            fd: Rc::new(fd),
            arena,
            free: Vec::new(),
            next: 1,
            live: BTreeSet::new(),
        })
    }

    /// Slots not in use.
    pub fn available(&self) -> u32 {
        (ARENA_SLOTS - self.next) + self.free.len() as u32
    }

    /// Allocates and initializes a slot for a new object.
    pub fn allocate(&mut self, init: SyncInit, owner: Option<Actor>) -> Result<u32, Failure> {
        let index = self.take_slot()?;
        let slot = self.arena.slot(index).expect("allocated inside the arena");
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
        let slot = self.arena.slot(index).expect("allocated inside the arena");
        ops::init_exit_slot(slot, kind, pid, exit_code);
        Ok(index)
    }

    /// Sets the pid a process or thread slot shows.
    pub fn set_pid(&self, index: u32, pid: u32) {
        if let Some(slot) = self.arena.slot(index) {
            slot.owner_pid
                .store(pid, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Marks a process or thread object as exited.
    pub fn mark_exited(&self, index: u32, exit_code: u32) {
        if let Some(slot) = self.arena.slot(index) {
            ops::mark_exited(slot, exit_code);
        }
    }

    fn take_slot(&mut self) -> Result<u32, Failure> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.next < ARENA_SLOTS => {
                self.next += 1;
                self.next - 1
            }
            None => {
                return Err(Failure::new(
                    ERROR_NO_SYSTEM_RESOURCES,
                    format!("the sync arena is full ({} objects)", ARENA_SLOTS - 1),
                ));
            }
        };
        self.live.insert(index);
        Ok(index)
    }

    /// Frees the slot of a destroyed object.
    pub fn free(&mut self, index: u32) {
        if self.live.remove(&index) {
            ops::clear_slot(self.arena.slot(index).expect("live slot"));
            self.free.push(index);
        }
    }

    /// Cleans up after client `tag` died or disconnected.
    pub fn reap(&self, tag: u16) {
        for &index in &self.live {
            ops::reap_client(self.arena.slot(index).expect("live slot"), tag);
        }
    }

    /// Name/value pairs describing an object's state, for `ls` and `stat`.
    pub fn describe(&self, index: u32) -> Vec<(String, String)> {
        let Some(seen) = self.arena.slot(index).and_then(ops::observe) else {
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
