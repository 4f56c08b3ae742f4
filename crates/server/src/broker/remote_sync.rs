//! Synchronization objects of another user's domain: a process maps such an
//! object's state read-only (it may sleep on it, never change it), and the
//! broker makes the changes its handle allows on its behalf
//! ([`Request::SyncRemote`](objmgr_proto::wire::Request::SyncRemote)): the
//! takes of a wait, signals, releases, timers.
//!
//! The broker serves every client from one thread, so nothing here may
//! block: an operation that meets another thread's slot lock (a wait-all
//! checking the object, or a stopped process) gives up at once and tells
//! the client to try again ([`RemoteOutcome::Busy`]).

use objmgr_proto::access::{
    EVENT_MODIFY_STATE, SEMAPHORE_MODIFY_STATE, SYNCHRONIZE, TIMER_MODIFY_STATE,
};
use objmgr_proto::error::*;
use objmgr_proto::sync::MAXIMUM_WAIT_OBJECTS;
use objmgr_proto::wire::{Handle, RemoteOp, RemoteOutcome, RemoteReply, Reply};
use objmgr_sync::Slot;
use objmgr_sync::ops::{self, Actor, Kind, Patience, Token};
use objmgr_sync::wait::{Attempt, Attempts, Local, WaitOutcome};

use super::{Broker, ClientId, ObjectId, Outcome, not_open};
use crate::Failure;

/// The reply to a remote operation.
fn remote(outcome: RemoteOutcome, value: u32, new_owner_mask: u64, observed: Vec<u32>) -> Outcome {
    Outcome::reply(Reply::Remote(RemoteReply {
        outcome,
        value,
        new_owner_mask,
        observed,
    }))
}

fn done(value: u32) -> Outcome {
    remote(RemoteOutcome::Done, value, 0, Vec::new())
}

fn busy() -> Outcome {
    remote(RemoteOutcome::Busy, 0, 0, Vec::new())
}

impl Broker {
    /// Serves [`Request::SyncRemote`](objmgr_proto::wire::Request::SyncRemote)
    /// for client `id`'s thread number `thread` (tid `tid`).
    pub(super) fn sync_remote(
        &mut self,
        id: ClientId,
        op: RemoteOp,
        (thread, tid): (u32, u32),
        handles: &[Handle],
        values: &[u32],
        (due, period): (u64, u64),
    ) -> Result<Outcome, Failure> {
        let client = &self.clients[&id];
        // The client names a thread of its own: its tag is the broker's.
        let token = Token::new(client.tag, thread).ok_or_else(|| {
            Failure::new(ERROR_INVALID_PARAMETER, format!("thread number {thread}"))
        })?;
        let me = Actor {
            token,
            pid: client.pid,
            tid,
        };
        let one = || match handles {
            [handle] => Ok(*handle),
            _ => Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                "a signal names exactly one object",
            )),
        };
        match op {
            RemoteOp::WaitAny | RemoteOp::WaitAll => {
                self.remote_attempt(id, &me, handles, values, op == RemoteOp::WaitAll)
            }
            RemoteOp::WaitEnd => {
                self.end_remote_wait(id, thread);
                Ok(done(0))
            }
            RemoteOp::AbandonThread => {
                self.end_remote_wait(id, thread);
                // Only objects of other domains are changed remotely, and
                // those live in solo arenas.
                for arena in self.solo.values() {
                    for slot in arena.live_slots() {
                        ops::abandon_mutex(slot, token);
                    }
                }
                Ok(done(0))
            }
            RemoteOp::SetEvent | RemoteOp::ResetEvent | RemoteOp::PulseEvent => {
                let (slot, kind) = self.remote_object(id, one()?, EVENT_MODIFY_STATE)?;
                let Kind::Event { manual_reset } = kind else {
                    return Err(wrong_type(kind, "an event"));
                };
                let finished = match op {
                    RemoteOp::SetEvent => {
                        ops::set_event(slot, manual_reset);
                        true
                    }
                    RemoteOp::ResetEvent => ops::reset_event(slot, Patience::Now),
                    _ => ops::pulse_event(slot, manual_reset, Patience::Now),
                };
                Ok(if finished { done(0) } else { busy() })
            }
            RemoteOp::ReleaseSemaphore => {
                let (slot, kind) = self.remote_object(id, one()?, SEMAPHORE_MODIFY_STATE)?;
                if kind != Kind::Semaphore {
                    return Err(wrong_type(kind, "a semaphore"));
                }
                let count = values.first().copied().unwrap_or(0);
                let previous = ops::release_semaphore(slot, count).map_err(|code| {
                    Failure::new(code, format!("releasing a semaphore by {count}"))
                })?;
                Ok(done(previous))
            }
            RemoteOp::ReleaseMutex => {
                // ReleaseMutex needs no right, only a handle and ownership.
                let (slot, kind) = self.remote_object(id, one()?, 0)?;
                if kind != Kind::Mutex {
                    return Err(wrong_type(kind, "a mutex"));
                }
                let released = ops::release_mutex(slot, &me)
                    .map_err(|code| Failure::new(code, "releasing a mutex: not the owner"))?;
                Ok(done(u32::from(released)))
            }
            RemoteOp::SetTimer | RemoteOp::CancelTimer => {
                let (slot, kind) = self.remote_object(id, one()?, TIMER_MODIFY_STATE)?;
                if !matches!(kind, Kind::Timer { .. }) {
                    return Err(wrong_type(kind, "a waitable timer"));
                }
                let finished = if op == RemoteOp::SetTimer {
                    ops::set_timer(slot, &me, due, period, Patience::Now)
                } else {
                    ops::cancel_timer(slot, &me, Patience::Now)
                };
                Ok(if finished { done(0) } else { busy() })
            }
        }
    }

    /// The state and kind of the sync object behind client `id`'s `handle`,
    /// if the handle has `rights`.
    fn remote_object(
        &self,
        id: ClientId,
        handle: Handle,
        rights: u32,
    ) -> Result<(&Slot, Kind), Failure> {
        let oid = self.remote_oid(id, handle, rights)?;
        self.slot_of(oid)
    }

    fn remote_oid(&self, id: ClientId, handle: Handle, rights: u32) -> Result<ObjectId, Failure> {
        let entry = self.clients[&id]
            .handles
            .get(handle)
            .ok_or_else(|| not_open(handle))?;
        if !entry.access.contains(rights) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "handle {:#x} has access {:#x} and lacks {rights:#x}",
                    handle.0, entry.access.0
                ),
            ));
        }
        Ok(entry.object)
    }

    fn slot_of(&self, oid: ObjectId) -> Result<(&Slot, Kind), Failure> {
        let object = &self.objects[&oid];
        let not_sync = || {
            Failure::new(
                ERROR_INVALID_HANDLE,
                format!("a {} cannot be waited on or signaled", object.object_type),
            )
        };
        let (index, kind) = object.body.sync_slot().ok_or_else(not_sync)?;
        let slot = self
            .arena_of(oid)
            .and_then(|arena| arena.slot(index))
            .ok_or_else(not_sync)?;
        Ok((slot, kind))
    }

    /// One attempt of a wait, done as the waiting thread would do it: what
    /// it takes, it takes; if nothing, it stays counted as a waiter on the
    /// objects (so that signalers wake it) until a later attempt succeeds,
    /// its wait ends, or its process goes.
    fn remote_attempt(
        &mut self,
        id: ClientId,
        me: &Actor,
        handles: &[Handle],
        seen: &[u32],
        all: bool,
    ) -> Result<Outcome, Failure> {
        let n = handles.len();
        if n == 0 || n > MAXIMUM_WAIT_OBJECTS || seen.len() != n {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("a wait on {n} objects with {} values", seen.len()),
            ));
        }
        let oids = handles
            .iter()
            .map(|&h| self.remote_oid(id, h, SYNCHRONIZE))
            .collect::<Result<Vec<_>, _>>()?;
        let objects = oids
            .iter()
            .map(|&oid| self.slot_of(oid))
            .collect::<Result<Vec<_>, _>>()?;
        let mut observed = vec![0u32; n];
        let attempt = Local::new(&objects, all, me)
            .and_then(|mut local| local.attempt(seen, &mut observed, Patience::Now))
            .map_err(|code| Failure::new(code, "a wait attempt"))?;
        drop(objects);
        let thread = me.token.raw() & (Token::MAX_THREADS - 1);
        Ok(match attempt {
            Attempt::Done(waited) => {
                self.end_remote_wait(id, thread);
                let outcome = match waited.outcome {
                    WaitOutcome::Object(i) => RemoteOutcome::Object(i as u32),
                    WaitOutcome::Abandoned(i) => RemoteOutcome::Abandoned(i as u32),
                    WaitOutcome::Timeout => RemoteOutcome::NotYet,
                };
                remote(outcome, 0, waited.new_owner_mask, Vec::new())
            }
            Attempt::NotYet | Attempt::Busy => {
                self.start_remote_wait(id, thread, oids);
                let outcome = if attempt == Attempt::Busy {
                    RemoteOutcome::Busy
                } else {
                    RemoteOutcome::NotYet
                };
                remote(outcome, 0, 0, observed)
            }
        })
    }

    /// Counts client `id`'s `thread` as a waiter on `objects` (instead of
    /// what it waited on before).
    fn start_remote_wait(&mut self, id: ClientId, thread: u32, objects: Vec<ObjectId>) {
        // The new count first: a signaler must never see neither.
        self.count_remote_waiter(&objects, true);
        let before = self
            .clients
            .get_mut(&id)
            .and_then(|client| client.remote_waits.insert(thread, objects));
        if let Some(before) = before {
            self.count_remote_waiter(&before, false);
        }
    }

    /// Client `id`'s `thread` no longer waits.
    pub(super) fn end_remote_wait(&mut self, id: ClientId, thread: u32) {
        let before = self
            .clients
            .get_mut(&id)
            .and_then(|client| client.remote_waits.remove(&thread));
        if let Some(before) = before {
            self.count_remote_waiter(&before, false);
        }
    }

    /// Adds (or takes away) one waiter on each of `objects` that still
    /// lives (an object's id is never reused, so a gone one is skipped).
    pub(super) fn count_remote_waiter(&self, objects: &[ObjectId], add: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        for &oid in objects {
            if !self.objects.contains_key(&oid) {
                continue;
            }
            if let Ok((slot, _)) = self.slot_of(oid) {
                if add {
                    slot.waiters.fetch_add(1, SeqCst);
                } else {
                    // Never below zero, whatever a writer of the arena did.
                    let _ = slot
                        .waiters
                        .fetch_update(SeqCst, SeqCst, |w| w.checked_sub(1));
                }
            }
        }
    }
}

fn wrong_type(kind: Kind, wanted: &str) -> Failure {
    Failure::new(
        ERROR_INVALID_HANDLE,
        format!("the handle is a {}, not {wanted}", kind.object_type()),
    )
}
