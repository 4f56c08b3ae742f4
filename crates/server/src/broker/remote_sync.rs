//! Synchronization objects of another user's domain: a process maps such an
//! object's state read-only (it may sleep on it, never change it), and the
//! broker makes the changes its handle allows on its behalf
//! ([`Request::SyncRemote`](objmgr_proto::wire::Request::SyncRemote)): the
//! takes of a wait, signals, releases, timers.
//!
//! Only processes outside the object's domain may ask, and only for objects
//! in a solo arena (those are the only ones they ever map). The broker
//! serves every client from one thread, so nothing here may block: an
//! operation that meets another thread's slot lock (a wait-all checking the
//! object, or a stopped process) or keeps losing a race on the state word
//! gives up at once and tells the client to try again
//! ([`RemoteOutcome::Busy`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;

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

/// Threads of one process that wait on, or own, objects through the broker.
#[derive(Debug, Default)]
pub(super) struct RemoteThreads {
    /// By token: the objects a waiting thread is counted as a waiter on.
    waits: HashMap<u32, Registered>,
    /// By token: the mutexes the broker took for the thread (it abandons
    /// them when the thread exits).
    owned: HashMap<u32, Vec<ObjectId>>,
}

/// A thread counted as a waiter.
#[derive(Debug)]
struct Registered {
    /// The objects of its wait, in its order.
    objects: Vec<ObjectId>,
    /// The values it last went to sleep on: pulses count from them.
    seen: Vec<u32>,
}

/// Most threads of one process waiting through the broker at once.
const MAX_REMOTE_WAITS: usize = 4096;

/// The longest timer period `SetWaitableTimer` can express (`LONG`
/// milliseconds), in nanoseconds.
const MAX_TIMER_PERIOD_NS: u64 = i32::MAX as u64 * 1_000_000;

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
    /// for client `id`'s thread `token` (tid `tid`).
    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    pub(super) fn sync_remote(
        &mut self,
        id: ClientId,
        op: RemoteOp,
        (token, tid): (u32, u32),
        register: bool,
        handles: &[Handle],
        values: &[u32],
        (due, period): (u64, u64),
    ) -> Result<Outcome, Failure> {
        let client = &self.clients[&id];
        // A thread of this connection: a token of an earlier session (the
        // process reconnected) must not act for a thread of this one.
        let token = Token::from_raw(token)
            .filter(|t| t.tag() == client.tag)
            .ok_or_else(|| {
                Failure::new(
                    ERROR_INVALID_HANDLE,
                    "the calling thread's identity belongs to another broker session",
                )
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
                let all = op == RemoteOp::WaitAll;
                self.remote_change_begins();
                let outcome = self.remote_attempt(id, &me, handles, all, register)?;
                self.remote_change_finished(&outcome);
                Ok(outcome)
            }
            RemoteOp::WaitEnd => {
                self.remote_change_begins();
                self.end_remote_wait(id, token.raw());
                Ok(done(0))
            }
            RemoteOp::AbandonThread => {
                self.remote_change_begins();
                self.end_remote_wait(id, token.raw());
                let owned = self
                    .client(id)
                    .remote
                    .owned
                    .remove(&token.raw())
                    .unwrap_or_default();
                for oid in owned {
                    if let Ok((slot, _)) = self.slot_of(oid) {
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
                self.remote_change_begins();
                let finished = match op {
                    RemoteOp::SetEvent => {
                        let wake = ops::set_event_state(slot, manual_reset);
                        self.remote_change_finished(&done(0));
                        if wake {
                            ops::wake_waiters(slot);
                        }
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
                self.remote_change_begins();
                let previous = ops::release_semaphore_state(slot, count).map_err(|code| {
                    Failure::new(code, format!("releasing a semaphore by {count}"))
                })?;
                let outcome = done(previous);
                self.remote_change_finished(&outcome);
                ops::wake_waiters(slot);
                Ok(outcome)
            }
            RemoteOp::ReleaseMutex => {
                // ReleaseMutex needs no right, only a handle and ownership.
                let oid = self.remote_oid(id, one()?, 0)?;
                let (slot, kind) = self.slot_of(oid)?;
                if kind != Kind::Mutex {
                    return Err(wrong_type(kind, "a mutex"));
                }
                self.remote_change_begins();
                let released = ops::release_mutex_state(slot, &me)
                    .map_err(|code| Failure::new(code, "releasing a mutex: not the owner"))?;
                self.remote_change_finished(&done(u32::from(released)));
                if released {
                    ops::wake_waiters(slot);
                }
                if released
                    && let Some(owned) = self.client(id).remote.owned.get_mut(&token.raw())
                    && let Some(at) = owned.iter().position(|&o| o == oid)
                {
                    owned.swap_remove(at);
                }
                Ok(done(u32::from(released)))
            }
            RemoteOp::SetTimer | RemoteOp::CancelTimer => {
                let (slot, kind) = self.remote_object(id, one()?, TIMER_MODIFY_STATE)?;
                if !matches!(kind, Kind::Timer { .. }) {
                    return Err(wrong_type(kind, "a waitable timer"));
                }
                if period > MAX_TIMER_PERIOD_NS {
                    return Err(Failure::new(
                        ERROR_INVALID_PARAMETER,
                        format!("a timer period of {period} ns"),
                    ));
                }
                self.remote_change_begins();
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

    /// The object behind client `id`'s `handle`, if the handle has `rights`
    /// and the object is one the broker changes for this client: shared
    /// (in a solo arena) and in another domain than the client's.
    fn remote_oid(&self, id: ClientId, handle: Handle, rights: u32) -> Result<ObjectId, Failure> {
        let entry = self.clients[&id]
            .handles
            .get(handle)
            .ok_or_else(|| not_open(handle))?;
        let solo = self
            .arena_of(entry.object)
            .is_some_and(crate::sync::SyncArena::is_solo);
        if !solo || self.maps_writable(id, entry.object) {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!(
                    "handle {:#x}: this process changes the object's state itself",
                    handle.0
                ),
            ));
        }
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

    /// A mutex of another user's that client `id` (a process that came back
    /// after a crash) takes back: if one of its threads owns it, the broker
    /// notes that it took it for that thread (as it did), so that the
    /// thread's exit abandons it.
    pub(super) fn note_remote_owner(&mut self, id: ClientId, oid: ObjectId) {
        let tag = self.clients[&id].tag;
        let owner = self
            .slot_of(oid)
            .ok()
            .and_then(|(slot, _)| ops::mutex_owner(slot));
        if let Some(owner) = owner.filter(|owner| owner.tag() == tag) {
            let owned = self.client(id).remote.owned.entry(owner.raw()).or_default();
            if !owned.contains(&oid) {
                owned.push(oid);
            }
        }
    }

    fn slot_of(&self, oid: ObjectId) -> Result<(&Slot, Kind), Failure> {
        let gone = || Failure::new(ERROR_INVALID_HANDLE, "the object is gone");
        let object = self.objects.get(&oid).ok_or_else(gone)?;
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
    /// it takes, it takes. A thread that asks to be registered is counted
    /// as a waiter on the objects first (so that their signalers wake it)
    /// and stays counted until an attempt succeeds, its wait ends, or its
    /// process goes.
    fn remote_attempt(
        &mut self,
        id: ClientId,
        me: &Actor,
        handles: &[Handle],
        all: bool,
        register: bool,
    ) -> Result<Outcome, Failure> {
        let n = handles.len();
        if n == 0 || n > MAXIMUM_WAIT_OBJECTS {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("a wait on {n} objects"),
            ));
        }
        let oids = handles
            .iter()
            .map(|&h| self.remote_oid(id, h, SYNCHRONIZE))
            .collect::<Result<Vec<_>, _>>()?;
        let key = me.token.raw();
        // Pulses count from the values the thread last slept on while
        // registered; a thread not yet waiting claims none from before.
        let kept = self.clients[&id]
            .remote
            .waits
            .get(&key)
            .filter(|r| r.objects == oids)
            .map(|r| r.seen.clone());
        let seen = match kept {
            Some(seen) => seen,
            None => {
                let current = oids
                    .iter()
                    .map(|&oid| self.slot_of(oid).map(|(slot, _)| ops::state_word(slot)))
                    .collect::<Result<Vec<_>, _>>()?;
                if register {
                    self.start_remote_wait(id, key, oids.clone(), current.clone())?;
                }
                current
            }
        };
        let objects = oids
            .iter()
            .map(|&oid| self.slot_of(oid))
            .collect::<Result<Vec<_>, _>>()?;
        let mut observed = vec![0u32; n];
        let attempt = Local::new(&objects, all, me)
            .and_then(|mut local| local.attempt(&seen, &mut observed, Patience::Now))
            .map_err(|code| Failure::new(code, "a wait attempt"))?;
        drop(objects);
        Ok(match attempt {
            Attempt::Done(waited) => {
                self.end_remote_wait(id, key);
                let taken: Vec<ObjectId> = (0..n)
                    .filter(|i| waited.new_owner_mask & (1 << i) != 0)
                    .map(|i| oids[i])
                    .collect();
                if !taken.is_empty() {
                    let owned = self.client(id).remote.owned.entry(key).or_default();
                    owned.extend(taken);
                }
                let outcome = match waited.outcome {
                    WaitOutcome::Object(i) => RemoteOutcome::Object(i as u32),
                    WaitOutcome::Abandoned(i) => RemoteOutcome::Abandoned(i as u32),
                    WaitOutcome::Timeout => RemoteOutcome::NotYet,
                };
                remote(outcome, 0, waited.new_owner_mask, Vec::new())
            }
            Attempt::NotYet => {
                // It sleeps on what this attempt saw: pulses count from there.
                if let Some(registered) = self.client(id).remote.waits.get_mut(&key) {
                    registered.seen.clone_from(&observed);
                }
                remote(RemoteOutcome::NotYet, 0, 0, observed)
            }
            Attempt::Busy => remote(RemoteOutcome::Busy, 0, 0, observed),
        })
    }

    /// Counts client `id`'s thread `key` as a waiter on `objects` (instead
    /// of what it waited on before).
    fn start_remote_wait(
        &mut self,
        id: ClientId,
        key: u32,
        objects: Vec<ObjectId>,
        seen: Vec<u32>,
    ) -> Result<(), Failure> {
        let waits = &self.clients[&id].remote.waits;
        if !waits.contains_key(&key) && waits.len() >= MAX_REMOTE_WAITS {
            return Err(Failure::new(
                ERROR_NO_SYSTEM_RESOURCES,
                format!(
                    "more than {MAX_REMOTE_WAITS} threads of one process wait through the broker"
                ),
            ));
        }
        // The new count first: a signaler must never see neither.
        self.count_remote_waiter(&objects, true);
        let before = self
            .client(id)
            .remote
            .waits
            .insert(key, Registered { objects, seen });
        if let Some(before) = before {
            self.count_remote_waiter(&before.objects, false);
        }
        Ok(())
    }

    /// Client `id`'s thread `key` no longer waits.
    fn end_remote_wait(&mut self, id: ClientId, key: u32) {
        let before = self.client(id).remote.waits.remove(&key);
        if let Some(before) = before {
            self.count_remote_waiter(&before.objects, false);
        }
    }

    /// A client is gone: none of its threads waits any more.
    pub(super) fn end_remote_waits(&mut self, remote: RemoteThreads) {
        for (_, registered) in remote.waits {
            self.count_remote_waiter(&registered.objects, false);
        }
    }

    /// Adds (or takes away) one waiter on each distinct object of `objects`
    /// that still lives (an object's id is never reused, so a gone one is
    /// skipped). Never past the counter's range, whatever a process that
    /// writes the arena did to it.
    fn count_remote_waiter(&self, objects: &[ObjectId], add: bool) {
        let mut distinct = objects.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for oid in distinct {
            if let Ok((slot, _)) = self.slot_of(oid) {
                let _ = slot.waiters.fetch_update(SeqCst, SeqCst, |w| {
                    if add {
                        w.checked_add(1)
                    } else {
                        w.checked_sub(1)
                    }
                });
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
