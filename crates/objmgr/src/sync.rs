//! Synchronization objects: [`Mutex`], [`Event`], [`Semaphore`] and
//! [`WaitableTimer`], and waits on one or many of them ([`wait_any`],
//! [`wait_all`], [`signal_and_wait`]).
//!
//! They share the namespace and lifetime rules of sections: a name held by
//! another type fails with `ERROR_INVALID_HANDLE`, creating an existing name
//! opens it (its creation arguments are ignored, [`existed`](Event::existed)
//! says so), and an object lives until its last handle closes, in whichever
//! process.
//!
//! Only creating, opening and closing talk to the broker. Every wait and
//! signal is a few atomic operations on shared memory, plus a futex system
//! call when a thread must sleep or wake a sleeper (except on another user's
//! shared objects: below).
//!
//! # Example: a named mutex guarding shared memory
//! ```no_run
//! use objmgr::Mutex;
//! # fn main() -> objmgr::Result<()> {
//! let mutex = Mutex::create(Some("Local\\MyLock"), false)?;
//! {
//!     let guard = mutex.lock()?;
//!     if guard.was_abandoned() {
//!         // The previous owner died holding it: check the data it guards.
//!     }
//!     // ... use the shared data ...
//! } // released here
//! # Ok(()) }
//! ```
//!
//! # Differences from Windows
//! - Waitable-timer completion routines (APCs) and alertable waits are not
//!   supported; wait on the timer instead.
//! - An absolute due time is converted to the monotonic clock when the timer
//!   is set; a later change of the wall clock does not move it.
//! - Processes of the same user share one state arena and could corrupt each
//!   other's objects by writing to it, as they could by attaching a debugger;
//!   among them, access rights are enforced by this library, not by the
//!   kernel.
//! - On the system-wide broker, an object named in `Global\` or a private
//!   namespace can be used by other users' processes: they map its state
//!   read-only and the broker makes the changes their handles allow, which
//!   costs a broker round trip (tens of microseconds) per wait that takes
//!   something and per signal; the creator's processes keep the fast path.
//!   A thread waiting on such an object looks again every 100 ms even if
//!   nothing woke it.

use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use objmgr_proto::access::{
    AccessMask, EVENT_MODIFY_STATE, ObjectType, SEMAPHORE_MODIFY_STATE, SYNCHRONIZE,
    TIMER_MODIFY_STATE,
};
use objmgr_proto::sync::{SyncInit, creator_access};
use objmgr_proto::wire::{Handle, RemoteOp, Reply, Request, SyncGrant};
use objmgr_sync::arena::SOLO_SLOTS;
use objmgr_sync::ops::{self, Actor, Kind};
use objmgr_sync::wait::{Failed, Local, Waited, wait_with};
use objmgr_sync::{Arena, Slot, clock};

use crate::connection::{self, call};
use crate::error::*;
use crate::owner;
use crate::remote_sync::{self, RemoteWait};

pub use objmgr_sync::WaitOutcome;

/// The domain arenas this process has mapped, by id. They are never
/// unmapped: a process maps one per broker it talks to, and its objects may
/// be in use by any thread at any time. Each is registered as its own
/// doorbell for multi-object waits on kernels without `futex_waitv`.
static ARENAS: StdMutex<Vec<(u64, &'static Arena)>> = StdMutex::new(Vec::new());

/// The solo arenas (one object shared between users, one page each) this
/// process has mapped, by id: one mapping per object however many handles
/// use it, so that the same object always has the same address (wait-all
/// refuses an object twice by its address). Unmapped with the last user.
static SOLO_ARENAS: StdMutex<Vec<(u64, Weak<Arena>)>> = StdMutex::new(Vec::new());

/// The arena lists, locked (for the `fork()` handlers).
pub(crate) fn lock_arenas_for_fork() -> Box<dyn std::any::Any> {
    Box::new((
        ARENAS.lock().unwrap_or_else(|p| p.into_inner()),
        SOLO_ARENAS.lock().unwrap_or_else(|p| p.into_inner()),
    ))
}

/// Where a handle's state lives: a slot of a domain arena (mapped for the
/// rest of the process, so the reference is `'static`: the fast path reads
/// it with no indirection), or the slot of a solo arena, kept mapped while
/// this (or a clone, for an owned mutex) lives.
#[derive(Clone, Debug)]
pub(crate) enum SlotRef {
    Domain(&'static Slot),
    Solo(Arc<Arena>, u32),
}

impl SlotRef {
    #[inline]
    pub(crate) fn get(&self) -> &Slot {
        match self {
            SlotRef::Domain(slot) => slot,
            SlotRef::Solo(arena, index) => arena.slot(*index).expect("checked when mapped"),
        }
    }

    /// Whether this process may write the state (domain arenas always).
    #[inline]
    pub(crate) fn writable(&self) -> bool {
        match self {
            SlotRef::Domain(_) => true,
            SlotRef::Solo(arena, _) => arena.writable(),
        }
    }
}

/// The slot a grant names, in its arena (mapped if not yet).
fn slot_of(grant: &SyncGrant, fd: Option<OwnedFd>) -> Result<SlotRef> {
    let missing = || {
        Error::new(
            ERROR_INVALID_DATA,
            "the broker did not send the sync arena this object lives in",
        )
    };
    let outside = || {
        Error::new(
            ERROR_INVALID_DATA,
            "the broker sent a slot outside the arena",
        )
    };
    let map = |fd: &OwnedFd| {
        Arena::map(
            std::os::fd::AsFd::as_fd(fd),
            grant.arena_slots,
            grant.writable,
        )
        .map_err(|e| Error::from_errno(e, "mapping the sync arena"))
    };
    if grant.arena_slots == SOLO_SLOTS {
        let mut solo = SOLO_ARENAS.lock().unwrap_or_else(|p| p.into_inner());
        solo.retain(|(_, arena)| arena.strong_count() > 0);
        let known = solo
            .iter()
            .find(|(known, _)| *known == grant.arena_id)
            .and_then(|(_, arena)| arena.upgrade());
        let arena = match known {
            Some(arena) => arena,
            None => {
                let arena = Arc::new(map(&fd.ok_or_else(missing)?)?);
                solo.push((grant.arena_id, Arc::downgrade(&arena)));
                arena
            }
        };
        arena.slot(grant.slot).ok_or_else(outside)?;
        return Ok(SlotRef::Solo(arena, grant.slot));
    }
    let mut arenas = ARENAS.lock().unwrap_or_else(|p| p.into_inner());
    let arena = match arenas.iter().find(|(known, _)| *known == grant.arena_id) {
        Some(&(_, arena)) => arena,
        None => {
            let arena: &'static Arena = Box::leak(Box::new(map(&fd.ok_or_else(missing)?)?));
            arena.serve_as_doorbell();
            arenas.push((grant.arena_id, arena));
            arena
        }
    };
    arena
        .slot(grant.slot)
        .map(SlotRef::Domain)
        .ok_or_else(outside)
}

/// What the creator of an object can choose beyond its type's arguments.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Whether child processes inherit the handle (`bInheritHandle`).
    pub inheritable: bool,
    /// The access the handle gets (`dwDesiredAccess` of the `Create*Ex`
    /// functions); `None` = all access for the type.
    pub access: Option<u32>,
    /// The new object's security descriptor (`lpSecurityDescriptor`); parts
    /// it leaves out come from the creator. `None`: the creator's default
    /// (only it, SYSTEM and Administrators may open the object).
    pub security: Option<objmgr_proto::security::SecurityDescriptor>,
}

impl SyncObject {
    fn create(name: Option<&str>, init: SyncInit, options: &CreateOptions) -> Result<SyncObject> {
        let object_type = init.object_type();
        let what = || format!("creating {object_type} {:?}", name.unwrap_or(""));
        let actor = match init {
            SyncInit::Mutex { owned: true } => {
                Some(owner::current().map_err(|e| e.within(&what()))?)
            }
            _ => None,
        };
        let request = Request::CreateSync {
            name: name.unwrap_or("").to_owned(),
            init,
            access: options.access.unwrap_or(creator_access(object_type)),
            inherit: options.inheritable,
            owner_token: actor.map_or(0, |a| a.token.raw()),
            owner_tid: actor.map_or(0, |a| a.tid),
            security: crate::handle::wire_sddl(options.security.as_ref())
                .map_err(|e| e.within(&what()))?,
        };
        let object = Self::from_reply(call(&request, None), object_type, what)?;
        if let (Some(_), false, Kind::Mutex) = (actor, object.existed, object.kind) {
            owner::owns(&object.state)?;
        }
        Ok(object)
    }

    /// Takes over handle `value` of this process (see `from_handle`).
    pub(crate) fn from_handle(expected: ObjectType, value: u32) -> Result<SyncObject> {
        Self::from_reply(connection::query_handle(Handle(value)), expected, || {
            format!("taking over {expected} handle {value:#x}")
        })
    }

    fn open(object_type: ObjectType, name: &str, access: u32, inherit: bool) -> Result<SyncObject> {
        let request = Request::Open {
            object_type,
            name: name.to_owned(),
            access,
            inherit,
            known_fd: None,
        };
        Self::from_reply(call(&request, None), object_type, || {
            format!("opening {object_type} {name:?}")
        })
    }

    pub(crate) fn from_reply(
        reply: Result<(Reply, Option<OwnedFd>, u64)>,
        expected: ObjectType,
        what: impl Fn() -> String,
    ) -> Result<SyncObject> {
        let (reply, fd, generation) = reply.map_err(|e| e.within(&what()))?;
        let bad = |why: &str| Error::new(ERROR_INVALID_DATA, format!("{}: {why}", what()));
        let grant = match reply {
            Reply::Sync(grant) => grant,
            Reply::Section(_) => {
                return Err(Error::new(
                    ERROR_INVALID_HANDLE,
                    format!("{}: the handle is a section", what()),
                ));
            }
            _ => return Err(bad("the broker sent no synchronization object")),
        };
        let kind = Kind::from_code(grant.kind).ok_or_else(|| bad("unknown object kind"))?;
        if kind.object_type() != expected {
            // A handle taken over by value may name another type: close
            // nothing (it stays open), just refuse, as Windows refuses a
            // handle of the wrong type.
            return Err(Error::new(
                ERROR_INVALID_HANDLE,
                format!("{}: the handle is a {}", what(), kind.object_type()),
            ));
        }
        let state = slot_of(&grant, fd).map_err(|e| e.within(&what()))?;
        Ok(SyncObject {
            handle: grant.handle,
            generation,
            access: AccessMask(grant.access),
            kind,
            state,
            existed: grant.existed,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    #[inline]
    pub(crate) fn slot(&self) -> &Slot {
        self.state.get()
    }

    /// Whether this process maps the state read-only (another user's
    /// object): the broker changes it on the caller's behalf.
    #[inline]
    pub(crate) fn is_remote(&self) -> bool {
        !self.state.writable()
    }

    /// Whether the state is a page other users may map too.
    fn is_shared(&self) -> bool {
        matches!(self.state, SlotRef::Solo(..))
    }

    /// The object's state, for an operation that needs `rights`. Fails with
    /// `ERROR_INVALID_HANDLE` for a handle of a broker session that is gone
    /// (or of the parent, in a forked child), and with `ERROR_ACCESS_DENIED`
    /// unless the handle has `rights`.
    #[inline(always)]
    pub(crate) fn require(&self, rights: u32, what: &str) -> Result<&Slot> {
        if self.generation == connection::current_generation() && self.access.contains(rights) {
            Ok(self.slot())
        } else {
            Err(self.refusal(rights, what))
        }
    }

    /// Whether the handle belongs to the broker session the process has now.
    pub(crate) fn is_current(&self) -> bool {
        self.generation == connection::current_generation()
    }

    /// Why [`Self::require`] refused.
    #[cold]
    #[inline(never)]
    fn refusal(&self, rights: u32, what: &str) -> Error {
        if self.generation != connection::current_generation() {
            Error::new(
                ERROR_INVALID_HANDLE,
                format!(
                    "{what}: handle {:#x} belongs to a broker session that is gone",
                    self.handle.0
                ),
            )
        } else {
            Error::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "{what}: handle {:#x} has access {:?} and lacks {rights:#x}",
                    self.handle.0, self.access
                ),
            )
        }
    }

    pub(crate) fn close(&self) -> Result<()> {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        connection::close_handle(self.handle, self.generation, self.kind.object_type().name())
    }
}

impl Drop for SyncObject {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn deadline(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| {
        let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        clock::now().saturating_add(nanos)
    })
}

/// Something a thread can wait on. Implemented by [`Mutex`], [`Event`],
/// [`Semaphore`] and [`WaitableTimer`].
pub trait Waitable: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed {
        fn sync_object(&self) -> &SyncObject;
    }

    /// A handle to a synchronization object and where its state lives.
    #[derive(Debug)]
    pub struct SyncObject {
        pub(crate) handle: Handle,
        pub(crate) generation: u64,
        pub(crate) access: AccessMask,
        pub(crate) kind: Kind,
        pub(crate) state: super::SlotRef,
        pub(crate) existed: bool,
        pub(crate) closed: std::sync::atomic::AtomicBool,
    }
}

pub(crate) use sealed::SyncObject;

// A bare object waits as the typed one holding it would.
impl sealed::Sealed for SyncObject {
    fn sync_object(&self) -> &SyncObject {
        self
    }
}

impl Waitable for SyncObject {}

fn wait_on(
    objects: &[&dyn Waitable],
    all: bool,
    timeout: Option<Duration>,
    before: impl FnOnce(&Actor) -> Result<()>,
) -> Result<WaitOutcome> {
    let what = if all { "wait_all" } else { "wait_any" };
    if objects.is_empty() || objects.len() > objmgr_proto::sync::MAXIMUM_WAIT_OBJECTS {
        return Err(Error::new(
            ERROR_INVALID_PARAMETER,
            format!("{what}: {} objects (1 to 64 allowed)", objects.len()),
        ));
    }
    let mut slots = [(&UNUSED, Kind::Semaphore); objmgr_proto::sync::MAXIMUM_WAIT_OBJECTS];
    let mut handles = [Handle(0); objmgr_proto::sync::MAXIMUM_WAIT_OBJECTS];
    let (mut remote, mut shared) = (false, false);
    for ((entry, handle), object) in slots.iter_mut().zip(&mut handles).zip(objects) {
        let object = object.sync_object();
        *entry = (object.require(SYNCHRONIZE, what)?, object.kind);
        *handle = object.handle;
        remote |= object.is_remote();
        shared |= object.is_shared();
    }
    let slots = &slots[..objects.len()];
    let me = owner::current()?;
    let recheck = shared.then_some(remote_sync::RECHECK_NS);
    // The wait has read the process's lifeline by now: if the broker went
    // after the checks above, either this sees the generation move or the
    // wait's sleep is woken.
    // Every object passed `require` under this generation.
    let generation = objects[0].sync_object().generation;
    let before = || {
        if connection::current_generation() != generation {
            let stale = objects[0].sync_object();
            return Err(stale.refusal(SYNCHRONIZE, what));
        }
        before(&me)
    };
    let waited = if remote {
        // Another user's object: the broker takes for us what we may take.
        owner::with_thread(|thread| thread.uses_remote())?;
        let mut attempts = RemoteWait::new(&handles[..objects.len()], all, &me);
        wait_with(slots, deadline(timeout), recheck, &mut attempts, before)
    } else {
        let mut attempts = Local::new(slots, all, &me).map_err(|code| Error::new(code, what))?;
        wait_with(slots, deadline(timeout), recheck, &mut attempts, before)
    };
    let Waited {
        outcome,
        new_owner_mask,
    } = waited.map_err(|e| match e {
        Failed::Before(e) => e,
        Failed::Wait(code) => match objects.iter().find(|o| !o.sync_object().is_current()) {
            // The lifeline was cut: the broker is gone.
            Some(stale) => stale.sync_object().refusal(SYNCHRONIZE, what),
            None => Error::new(code, what),
        },
    })?;
    for (i, object) in objects.iter().enumerate() {
        if new_owner_mask & (1 << i) != 0 {
            owner::owns(&object.sync_object().state)?;
        }
    }
    Ok(outcome)
}

/// Fills the unused entries of wait arrays; never waited on.
static UNUSED: Slot = Slot::new();

/// `WaitForSingleObject`: takes the object at once if it is signaled (no
/// system call), else waits as [`wait_any`] does.
/// Takes the object's state directly (not a `&dyn Waitable`): the fast
/// path has no indirect call.
pub(crate) fn wait_one(sync: &SyncObject, timeout: Option<Duration>) -> Result<WaitOutcome> {
    let slot = sync.require(SYNCHRONIZE, "wait")?;
    // Another user's object: only the broker may take it for us.
    if !sync.is_remote() {
        if ops::try_take_unowned(slot, sync.kind) {
            return Ok(WaitOutcome::Object(0));
        }
        // `require` found the handle's generation current.
        let me = owner::current_in(sync.generation)?;
        // Behind a lock that stays held (a stopped process), give up soon
        // and let the full wait below keep the timeout.
        let taken = ops::try_take(slot, sync.kind, &me, None, ops::Patience::Brief)
            .map_err(|code| Error::new(code, "wait"))?;
        match taken {
            Some(taken) => {
                if taken.new_owner {
                    owner::owns(&sync.state)?;
                }
                return Ok(match taken.acquired {
                    ops::Acquired::Signaled => WaitOutcome::Object(0),
                    ops::Acquired::Abandoned => WaitOutcome::Abandoned(0),
                });
            }
            // A poll has looked already.
            None if timeout == Some(Duration::ZERO) => return Ok(WaitOutcome::Timeout),
            None => {}
        }
    }
    wait_one_slowly(sync, timeout)
}

/// The rest of [`wait_one`]: kept out of line, so that the fast path does
/// not pay for the full wait's stack frame.
#[inline(never)]
fn wait_one_slowly(object: &SyncObject, timeout: Option<Duration>) -> Result<WaitOutcome> {
    wait_on(&[object], false, timeout, |_| Ok(()))
}

/// Waits until `object` is signaled and takes it (`WaitForSingleObject` on
/// any waitable object).
pub fn wait_for(object: &dyn Waitable, timeout: Option<Duration>) -> Result<WaitOutcome> {
    wait_one(object.sync_object(), timeout)
}

/// Waits until any of `objects` is signaled and takes the lowest-numbered
/// signaled one (`WaitForMultipleObjects` with `bWaitAll = FALSE`).
/// `timeout`: `None` waits forever, `Some(Duration::ZERO)` only polls.
pub fn wait_any(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<WaitOutcome> {
    wait_on(objects, false, timeout, |_| Ok(()))
}

/// Waits until all of `objects` are signaled at once and takes them all
/// together (`WaitForMultipleObjects` with `bWaitAll = TRUE`); never some.
/// The same object twice is refused with `ERROR_INVALID_PARAMETER`.
pub fn wait_all(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<WaitOutcome> {
    wait_on(objects, true, timeout, |_| Ok(()))
}

/// Signals `to_signal` (sets an event, releases a semaphore by one or a mutex
/// the caller owns) and waits on `to_wait`, as `SignalObjectAndWait` does: a
/// pulse of `to_wait` after the signal releases this waiter.
pub fn signal_and_wait(
    to_signal: &dyn Waitable,
    to_wait: &dyn Waitable,
    timeout: Option<Duration>,
) -> Result<WaitOutcome> {
    let signal = to_signal.sync_object();
    wait_on(&[to_wait], false, timeout, |_| {
        let what = "signal_and_wait";
        match signal.kind {
            Kind::Event { manual_reset } => set_event(signal, manual_reset, what)?,
            Kind::Semaphore => {
                release_semaphore(signal, 1, &format!("{what}: releasing the semaphore"))?;
            }
            Kind::Mutex => release_mutex(signal)?,
            Kind::Timer { .. } | Kind::Process | Kind::Thread | Kind::Job => {
                return Err(Error::new(
                    ERROR_INVALID_HANDLE,
                    format!("{what}: a {} cannot be signaled", signal.kind.object_type()),
                ));
            }
        }
        Ok(())
    })
}

/// `ReleaseMutex` by the calling thread.
fn release_mutex(object: &SyncObject) -> Result<()> {
    // ReleaseMutex needs no particular right, only a valid handle.
    let slot = object.require(0, "ReleaseMutex")?;
    let not_owner = |code| {
        Error::new(
            code,
            format!(
                "releasing mutex handle {:#x}: not the owner",
                object.handle.0
            ),
        )
    };
    if object.is_remote() {
        let me = owner::current()?;
        let released = remote_sync::change(object, &me, RemoteOp::ReleaseMutex, &[], (0, 0))
            .map_err(|e| not_owner(e.code()))?;
        if released != 0 {
            owner::disowns(&object.state)?;
        }
        return Ok(());
    }
    let me = owner::current_in(object.generation)?;
    if ops::release_mutex(slot, &me).map_err(not_owner)? {
        owner::disowns(&object.state)?;
    }
    Ok(())
}

/// `SetEvent`.
#[inline]
fn set_event(object: &SyncObject, manual_reset: bool, what: &str) -> Result<()> {
    object.change(
        EVENT_MODIFY_STATE,
        what,
        RemoteOp::SetEvent,
        &[],
        (0, 0),
        |slot| {
            ops::set_event(slot, manual_reset);
            Ok(0)
        },
    )?;
    Ok(())
}

/// `ReleaseSemaphore`: the previous count.
#[inline]
fn release_semaphore(object: &SyncObject, count: u32, what: &str) -> Result<u32> {
    let op = RemoteOp::ReleaseSemaphore;
    object.change(SEMAPHORE_MODIFY_STATE, what, op, &[count], (0, 0), |slot| {
        ops::release_semaphore(slot, count).map_err(|e| Error::new(e, what))
    })
}

impl SyncObject {
    /// Changes the object's state with `local`, or, for another user's object, has the broker do
    /// `op` for the caller. Needs `rights` either way (the broker checks
    /// them again). Returns the operation's value.
    #[inline(always)]
    fn change(
        &self,
        rights: u32,
        what: &str,
        op: RemoteOp,
        values: &[u32],
        timer: (u64, u64),
        local: impl FnOnce(&Slot) -> Result<u32>,
    ) -> Result<u32> {
        let slot = self.require(rights, what)?;
        if self.is_remote() {
            let me = owner::current()?;
            remote_sync::change(self, &me, op, values, timer).map_err(|e| e.within(what))
        } else {
            local(slot)
        }
    }
}

/// What every type backed by a handle to a waitable object has.
macro_rules! waitable_type {
    ($(#[$doc:meta])* $name:ident, $object_type:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            object: $crate::sync::SyncObject,
        }

        impl $crate::sync::sealed::Sealed for $name {
            fn sync_object(&self) -> &$crate::sync::SyncObject {
                &self.object
            }
        }

        impl $crate::sync::Waitable for $name {}

        impl $name {
            #[allow(dead_code, reason = "not every type is built from a bare object")]
            pub(crate) fn from_object(object: $crate::sync::SyncObject) -> $name {
                $name { object }
            }

            /// Takes over a handle value this process holds already (one it
            /// inherited or was given with `DuplicateHandle`); the result
            /// closes it when dropped. Fails with `ERROR_INVALID_HANDLE` if
            /// the value is not open or names another type of object.
            pub fn from_handle(value: u32) -> $crate::Result<$name> {
                $crate::sync::SyncObject::from_handle($object_type, value)
                    .map(|object| $name { object })
            }

            /// The handle value, valid in this process.
            pub fn handle_value(&self) -> u32 {
                self.object.handle.0
            }

            /// The handle, as [`HandleValue`](crate::handle::HandleValue)
            /// (for [`duplicate`](crate::handle::duplicate) and friends).
            pub fn handle(&self) -> $crate::handle::HandleValue {
                $crate::handle::HandleValue(self.object.handle.0)
            }

            /// The access rights the handle grants.
            pub fn access(&self) -> u32 {
                self.object.access.0
            }

            /// Waits until the object is signaled and takes it
            /// (`WaitForSingleObject`). `None` waits forever.
            pub fn wait(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> $crate::Result<$crate::sync::WaitOutcome> {
                $crate::sync::wait_one(&self.object, timeout)
            }

            /// Closes the handle now and reports any error (dropping closes too).
            pub fn close(self) -> $crate::Result<()> {
                self.object.close()
            }
        }
    };
}
pub(crate) use waitable_type;

macro_rules! sync_type {
    ($(#[$doc:meta])* $name:ident, $object_type:expr, $access:ty) => {
        waitable_type!($(#[$doc])* $name, $object_type);

        impl $name {
            /// Opens an existing object by name with `access` rights
            /// (`Open*`; the type's access mask, or a raw `u32`).
            /// `inheritable`: whether child processes inherit it.
            pub fn open_with(
                name: &str,
                access: impl Into<$access>,
                inheritable: bool,
            ) -> Result<$name> {
                SyncObject::open($object_type, name, access.into().bits(), inheritable)
                    .map(|object| $name { object })
            }

            /// Opens an existing object by name with all access.
            pub fn open(name: &str) -> Result<$name> {
                Self::open_with(name, creator_access($object_type), false)
            }

            /// Whether the create call found the name existing (then it
            /// returned that object and ignored its creation arguments, and
            /// Windows reports `ERROR_ALREADY_EXISTS`).
            pub fn existed(&self) -> bool {
                self.object.existed
            }
        }
    };
}

sync_type!(
    /// A mutex (`CreateMutex`): owned by one thread at a time, recursively;
    /// abandoned when its owner thread or process ends holding it.
    Mutex,
    ObjectType::Mutex,
    crate::access::MutexAccess
);
sync_type!(
    /// An event (`CreateEvent`): manual-reset or auto-reset.
    Event,
    ObjectType::Event,
    crate::access::EventAccess
);
sync_type!(
    /// A semaphore (`CreateSemaphore`): a count between 0 and a maximum.
    Semaphore,
    ObjectType::Semaphore,
    crate::access::SemaphoreAccess
);
sync_type!(
    /// A waitable timer (`CreateWaitableTimer`): signaled at a due time,
    /// optionally periodically.
    WaitableTimer,
    ObjectType::WaitableTimer,
    crate::access::TimerAccess
);

/// How an event or timer returns to non-signaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// Stays signaled until reset (`bManualReset = TRUE`): releases every waiter.
    Manual,
    /// A successful wait resets it: releases one waiter per signal.
    Auto,
}

impl Mutex {
    /// `CreateMutex`: `initial_owner` makes the calling thread the owner
    /// (unless the name existed).
    pub fn create(name: Option<&str>, initial_owner: bool) -> Result<Mutex> {
        Self::create_with(name, initial_owner, &CreateOptions::default())
    }

    pub fn create_with(
        name: Option<&str>,
        initial_owner: bool,
        options: &CreateOptions,
    ) -> Result<Mutex> {
        let init = SyncInit::Mutex {
            owned: initial_owner,
        };
        SyncObject::create(name, init, options).map(|object| Mutex { object })
    }

    /// Acquires the mutex, waiting as long as it takes; the guard releases it.
    pub fn lock(&self) -> Result<MutexGuard<'_>> {
        self.lock_timeout(None)?
            .ok_or_else(|| Error::new(ERROR_INVALID_FUNCTION, "an infinite wait timed out"))
    }

    /// Acquires the mutex within `timeout`; `Ok(None)` if it timed out.
    pub fn lock_timeout(&self, timeout: Option<Duration>) -> Result<Option<MutexGuard<'_>>> {
        let abandoned = match self.wait(timeout)? {
            WaitOutcome::Object(_) => false,
            WaitOutcome::Abandoned(_) => true,
            WaitOutcome::Timeout => return Ok(None),
        };
        Ok(Some(MutexGuard {
            mutex: self,
            abandoned,
            _not_send: PhantomData,
        }))
    }

    /// `ReleaseMutex`: releases one level of ownership. Fails with
    /// `ERROR_NOT_OWNER` unless the calling thread owns the mutex.
    pub fn release(&self) -> Result<()> {
        release_mutex(&self.object)
    }
}

/// Ownership of a [`Mutex`] by the current thread, released on drop.
/// Not `Send`: a mutex is owned by a thread.
#[derive(Debug)]
pub struct MutexGuard<'a> {
    mutex: &'a Mutex,
    abandoned: bool,
    _not_send: PhantomData<*const ()>,
}

impl MutexGuard<'_> {
    /// The previous owner ended without releasing the mutex
    /// (`WAIT_ABANDONED`): the data it guards may be inconsistent.
    pub fn was_abandoned(&self) -> bool {
        self.abandoned
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        let _ = self.mutex.release();
    }
}

impl Event {
    /// `CreateEvent`.
    pub fn create(name: Option<&str>, reset: Reset, initially_signaled: bool) -> Result<Event> {
        Self::create_with(name, reset, initially_signaled, &CreateOptions::default())
    }

    pub fn create_with(
        name: Option<&str>,
        reset: Reset,
        initially_signaled: bool,
        options: &CreateOptions,
    ) -> Result<Event> {
        let init = SyncInit::Event {
            manual_reset: reset == Reset::Manual,
            signaled: initially_signaled,
        };
        SyncObject::create(name, init, options).map(|object| Event { object })
    }

    /// `SetEvent`.
    #[inline]
    pub fn set(&self) -> Result<()> {
        set_event(&self.object, self.manual_reset(), "SetEvent")
    }

    /// `ResetEvent`.
    pub fn reset(&self) -> Result<()> {
        self.modify("ResetEvent", RemoteOp::ResetEvent, |slot| {
            ops::reset_event(slot, ops::Patience::Forever)
        })
    }

    /// `PulseEvent`: releases the threads waiting now (all for a
    /// manual-reset event, one for an auto-reset event) and leaves the event
    /// non-signaled.
    pub fn pulse(&self) -> Result<()> {
        let manual = self.manual_reset();
        self.modify("PulseEvent", RemoteOp::PulseEvent, |slot| {
            ops::pulse_event(slot, manual, ops::Patience::Forever)
        })
    }

    fn modify(&self, what: &str, op: RemoteOp, local: impl FnOnce(&Slot) -> bool) -> Result<()> {
        self.object
            .change(EVENT_MODIFY_STATE, what, op, &[], (0, 0), |slot| {
                local(slot);
                Ok(0)
            })?;
        Ok(())
    }

    fn manual_reset(&self) -> bool {
        matches!(self.object.kind, Kind::Event { manual_reset: true })
    }
}

impl Semaphore {
    /// `CreateSemaphore`: `initial` must not exceed `maximum`, which must be
    /// positive (`ERROR_INVALID_PARAMETER`).
    pub fn create(name: Option<&str>, initial: u32, maximum: u32) -> Result<Semaphore> {
        Self::create_with(name, initial, maximum, &CreateOptions::default())
    }

    pub fn create_with(
        name: Option<&str>,
        initial: u32,
        maximum: u32,
        options: &CreateOptions,
    ) -> Result<Semaphore> {
        let init = SyncInit::Semaphore { initial, maximum };
        SyncObject::create(name, init, options).map(|object| Semaphore { object })
    }

    /// `ReleaseSemaphore`: adds `count` and returns the previous count. Past
    /// the maximum it fails with `ERROR_TOO_MANY_POSTS` and changes nothing.
    #[inline]
    pub fn release(&self, count: u32) -> Result<u32> {
        release_semaphore(&self.object, count, "ReleaseSemaphore").map_err(|e| {
            let what = format!(
                "releasing semaphore handle {:#x} by {count}",
                self.object.handle.0
            );
            e.within(&what)
        })
    }
}

impl WaitableTimer {
    /// `CreateWaitableTimer`: a manual-reset (notification) timer releases
    /// every waiter and stays signaled; an auto-reset (synchronization) timer
    /// releases one waiter per expiry.
    pub fn create(name: Option<&str>, reset: Reset) -> Result<WaitableTimer> {
        Self::create_with(name, reset, &CreateOptions::default())
    }

    pub fn create_with(
        name: Option<&str>,
        reset: Reset,
        options: &CreateOptions,
    ) -> Result<WaitableTimer> {
        let init = SyncInit::Timer {
            manual_reset: reset == Reset::Manual,
        };
        SyncObject::create(name, init, options).map(|object| WaitableTimer { object })
    }

    /// `SetWaitableTimer` with Windows' arguments: `due` in 100 ns units,
    /// negative for a time relative to now, positive for an absolute
    /// `FILETIME` (UTC); `period_ms` 0 for a one-shot timer. The timer
    /// becomes non-signaled and is re-armed.
    pub fn set(&self, due: i64, period_ms: u32) -> Result<()> {
        // Windows' period is a LONG: a negative one is refused.
        if period_ms > i32::MAX as u32 {
            return Err(Error::new(
                ERROR_INVALID_PARAMETER,
                format!("SetWaitableTimer: a period of {period_ms} ms"),
            ));
        }
        let timer = (
            clock::due_from_filetime(due),
            u64::from(period_ms) * 1_000_000,
        );
        let (what, op) = ("SetWaitableTimer", RemoteOp::SetTimer);
        self.object
            .change(TIMER_MODIFY_STATE, what, op, &[], timer, |slot| {
                let me = owner::current()?;
                ops::set_timer(slot, &me, timer.0, timer.1, ops::Patience::Forever);
                Ok(0)
            })?;
        Ok(())
    }

    /// Arms the timer to fire after `delay`, then every `period` if given.
    pub fn set_after(&self, delay: Duration, period: Option<Duration>) -> Result<()> {
        let due = -i64::try_from(delay.as_nanos() / 100).unwrap_or(i64::MAX);
        // Whole milliseconds, as Windows takes them; a shorter period is 1 ms
        // (not 0, which would make the timer one-shot).
        let period_ms = period.map_or(0, |p| {
            u32::try_from(p.as_nanos().div_ceil(1_000_000))
                .map_or(i32::MAX as u32, |ms| ms.min(i32::MAX as u32))
        });
        // A zero relative due time means "now", which -0 cannot express.
        self.set(due.min(-1), period_ms)
    }

    /// `CancelWaitableTimer`: disarms the timer; its signaled state stays.
    pub fn cancel(&self) -> Result<()> {
        let (what, op) = ("CancelWaitableTimer", RemoteOp::CancelTimer);
        self.object
            .change(TIMER_MODIFY_STATE, what, op, &[], (0, 0), |slot| {
                ops::cancel_timer(slot, &owner::current()?, ops::Patience::Forever);
                Ok(0)
            })?;
        Ok(())
    }
}
