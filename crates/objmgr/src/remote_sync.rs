//! Synchronization objects of another user's domain (on the system-wide
//! broker, objects named in `Global\` or a private namespace that another
//! user created): this process maps their state read-only, so it sleeps on
//! it like on any other object, but every change (a wait's take, a signal,
//! a release) is a request the broker carries out on the calling thread's
//! behalf, within the rights of its handle. See `docs/PROTOCOL.md`,
//! section 8.

use objmgr_proto::error::{ERROR_INVALID_DATA, Win32Error};
use objmgr_proto::wire::{Handle, RemoteOp, RemoteOutcome, RemoteReply, Reply, Request};
use objmgr_sync::WaitOutcome;
use objmgr_sync::ops::{Actor, Patience};
use objmgr_sync::wait::{Attempt, Attempts, Waited};

use crate::connection::call;
use crate::error::{Error, Result};
use crate::sync::SyncObject;

/// The longest a thread sleeps on an object other users map before it looks
/// again: they can move sleepers off its futex word (`FUTEX_CMP_REQUEUE`
/// needs only read access), and such a sleeper must not miss its signal
/// for ever.
pub(crate) const RECHECK_NS: u64 = 100_000_000;

/// Sends one remote operation for the calling thread `me`.
fn call_remote(
    me: &Actor,
    op: RemoteOp,
    register: bool,
    handles: &[Handle],
    values: &[u32],
    (due, period): (u64, u64),
) -> Result<RemoteReply> {
    let request = Request::SyncRemote {
        op,
        token: me.token.raw(),
        tid: me.tid,
        register,
        handles: handles.to_vec(),
        values: values.to_vec(),
        due,
        period,
    };
    match call(&request, None)?.0 {
        Reply::Remote(reply) => Ok(reply),
        _ => Err(Error::new(
            ERROR_INVALID_DATA,
            "the broker answered a remote sync operation with something else",
        )),
    }
}

/// Has the broker change `object` (`op`, with `values` and a timer's due
/// time and period), trying again while another thread holds its slot lock.
/// Returns the operation's value (a semaphore's previous count; for a mutex
/// release, 1 once the caller no longer owns it).
pub(crate) fn change(
    object: &SyncObject,
    me: &Actor,
    op: RemoteOp,
    values: &[u32],
    timer: (u64, u64),
) -> Result<u32> {
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        let reply = call_remote(me, op, false, &[object.handle], values, timer)?;
        if reply.outcome != RemoteOutcome::Busy {
            return Ok(reply.value);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(1));
    }
}

/// The thread `me` exits: the broker abandons the mutexes of other users'
/// domains it owns.
pub(crate) fn abandon_thread(me: &Actor) {
    // (A thread of an earlier broker session is refused: its token's tag
    // is not this connection's.)
    let _ = call_remote(me, RemoteOp::AbandonThread, false, &[], &[], (0, 0));
}

/// A wait whose attempts the broker makes: it takes for the thread what can
/// be taken; once the thread is about to sleep, it counts it as a waiter on
/// the objects (so that their signalers wake it) until the wait ends.
pub(crate) struct RemoteWait<'a> {
    handles: &'a [Handle],
    all: bool,
    me: &'a Actor,
    /// Attempts ask the broker to count this thread as a waiter.
    register: bool,
    /// The broker counts this thread as a waiter.
    registered: bool,
}

impl<'a> RemoteWait<'a> {
    pub(crate) fn new(handles: &'a [Handle], all: bool, me: &'a Actor) -> RemoteWait<'a> {
        RemoteWait {
            handles,
            all,
            me,
            register: false,
            registered: false,
        }
    }
}

impl Attempts for RemoteWait<'_> {
    fn attempt(
        &mut self,
        seen: &[u32],
        observed: &mut [u32],
        _patience: Patience,
    ) -> std::result::Result<Attempt, Win32Error> {
        let op = if self.all {
            RemoteOp::WaitAll
        } else {
            RemoteOp::WaitAny
        };
        // The broker keeps the values the thread sleeps on (pulses count
        // from them), so `seen` is not sent.
        let _ = seen;
        let reply = call_remote(self.me, op, self.register, self.handles, &[], (0, 0))
            .map_err(|e| e.code())?;
        let waited = |outcome| {
            Attempt::Done(Waited {
                outcome,
                new_owner_mask: reply.new_owner_mask,
            })
        };
        let index = |i: u32| (i as usize) < self.handles.len();
        Ok(match reply.outcome {
            RemoteOutcome::Object(i) if index(i) => {
                self.registered = false;
                waited(WaitOutcome::Object(i as usize))
            }
            RemoteOutcome::Abandoned(i) if index(i) => {
                self.registered = false;
                waited(WaitOutcome::Abandoned(i as usize))
            }
            RemoteOutcome::NotYet | RemoteOutcome::Busy
                if reply.observed.len() == observed.len() =>
            {
                self.registered |= self.register;
                observed.copy_from_slice(&reply.observed);
                if reply.outcome == RemoteOutcome::Busy {
                    Attempt::Busy
                } else {
                    Attempt::NotYet
                }
            }
            _ => return Err(ERROR_INVALID_DATA),
        })
    }

    fn register(&mut self) -> std::result::Result<(), Win32Error> {
        // The next attempt registers, before it looks.
        self.register = true;
        Ok(())
    }

    fn unregister(&mut self) {
        self.register = false;
        if std::mem::take(&mut self.registered) {
            let _ = call_remote(self.me, RemoteOp::WaitEnd, false, &[], &[], (0, 0));
        }
    }

    fn costly(&self) -> bool {
        true
    }
}

impl Drop for RemoteWait<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}
