//! Handles found by their value with one load, for callers that keep
//! handles as plain numbers (the C ABI's `HANDLE`s).
//!
//! Such a caller owns each handle's [`Object`] in a table of its own, and
//! *publishes* the ones it may wait on or signal here: a synchronization
//! object whose state lies in one of the process's domain arenas. Each is
//! one word of a process-wide array indexed by handle value, packing the
//! object's type, the two rights its fast operations need, its arena and
//! slot, and the broker session (generation) it belongs to. Domain arenas
//! stay mapped for the life of the process, so the word alone rebuilds the
//! handle, and a handle closed by another thread under a running call can
//! never free memory that the call touches (it acts on whatever the slot
//! holds then, as a use of a closed handle does on Windows).
//!
//! The contract for a caller: publish a handle only while it owns the
//! object under that value, and [`withdraw`] it before the handle is
//! closed or forgotten; [`publish`] itself clears the value's word for an
//! object it cannot hold, so publishing every object a value comes to name
//! keeps the table true. Only the process's first 16 domain arenas (one
//! per broker session) can be named; handles in later ones take the
//! caller's slower way.
//!
//! Every operation here runs the very code of the Rust API, on a view of
//! the handle made from the word. A value that is not published, and a
//! handle that lacks a right or names another type, is answered `None`: the
//! caller then goes its own, slower way, which reports the exact error.

use std::mem::ManuallyDrop;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use objmgr_proto::access::{AccessMask, SYNCHRONIZE};
use objmgr_proto::wire::Handle;
use objmgr_sync::Arena;
use objmgr_sync::ops::Kind;

use crate::handle::Object;
use crate::sync::{SlotRef, SyncObject, WaitOutcome};
use crate::{Event, Mutex, Result, Semaphore};

/// Handle values below `4 * PUBLISHED_VALUES` can be published (the broker
/// hands out small multiples of 4, lowest first).
const PUBLISHED_VALUES: usize = 4096;

/// The published handles, by value / 4; 0 where none is.
static PUBLISHED: [AtomicU64; PUBLISHED_VALUES] = [const { AtomicU64::new(0) }; PUBLISHED_VALUES];

/// The process's first domain arenas, in the order they were mapped.
static ARENAS: [OnceLock<&'static Arena>; 1 << ARENA_BITS] =
    [const { OnceLock::new() }; 1 << ARENA_BITS];

/// The kinds a word can hold; a word stores the position + 1.
const KINDS: [Kind; 9] = [
    Kind::Event {
        manual_reset: false,
    },
    Kind::Event { manual_reset: true },
    Kind::Mutex,
    Kind::Semaphore,
    Kind::Timer {
        manual_reset: false,
    },
    Kind::Timer { manual_reset: true },
    Kind::Process,
    Kind::Thread,
    Kind::Job,
];

/// The state-changing right of every synchronization type
/// (`EVENT_MODIFY_STATE`, `SEMAPHORE_MODIFY_STATE`, `TIMER_MODIFY_STATE`).
const MODIFY_STATE: u32 = 0x0002;

/// The layout of a word, from its lowest bit.
const KIND_BITS: u32 = 4;
const CAN_SYNCHRONIZE: u64 = 1 << KIND_BITS;
const CAN_MODIFY: u64 = 1 << (KIND_BITS + 1);
const ARENA_SHIFT: u32 = KIND_BITS + 2;
const ARENA_BITS: u32 = 4;
const SLOT_SHIFT: u32 = ARENA_SHIFT + ARENA_BITS;
const SLOT_BITS: u32 = 20;
const GENERATION_SHIFT: u32 = SLOT_SHIFT + SLOT_BITS;
const _: () = assert!(objmgr_sync::arena::ARENA_SLOTS <= 1 << SLOT_BITS);

/// Records that `arena`, the process's domain arena number `number` (0 for
/// the first mapped), stays mapped for the rest of the process.
pub(crate) fn number_arena(number: usize, arena: &'static Arena) {
    if let Some(place) = ARENAS.get(number) {
        let _ = place.set(arena);
    }
}

/// The place of handle `value` in [`PUBLISHED`].
#[inline]
fn place(value: u32) -> Option<&'static AtomicU64> {
    if value & 3 != 0 {
        return None;
    }
    PUBLISHED.get((value >> 2) as usize)
}

/// Makes `object` (the handle its owner keeps under its value) found by
/// value if it can be; otherwise (not a synchronization object in a domain
/// arena) makes sure that nothing is found under its value.
pub fn publish(object: &Object) {
    let value = object.handle_value();
    let word = object.sync_object().and_then(pack).unwrap_or(0);
    if let Some(place) = place(value) {
        place.store(word, Ordering::Release);
    }
}

/// Stops finding handle `value` by value: call it before the handle is
/// closed (or forgotten), so that no new object under the same value is
/// ever taken for the old one.
pub fn withdraw(value: u32) {
    if let Some(place) = place(value) {
        place.store(0, Ordering::Release);
    }
}

/// The word for `sync`, if it can have one.
fn pack(sync: &SyncObject) -> Option<u64> {
    let SlotRef::Domain(slot) = sync.state else {
        return None;
    };
    let kind = KINDS.iter().position(|&k| k == sync.kind)? as u64 + 1;
    let (arena, index) = ARENAS
        .iter()
        .enumerate()
        .find_map(|(number, arena)| Some((number as u64, arena.get()?.position(slot)?)))?;
    if sync.generation >> (64 - GENERATION_SHIFT) != 0 {
        return None;
    }
    let rights = if sync.access.contains(SYNCHRONIZE) {
        CAN_SYNCHRONIZE
    } else {
        0
    } | if sync.access.contains(MODIFY_STATE) {
        CAN_MODIFY
    } else {
        0
    };
    Some(
        kind | rights
            | (arena << ARENA_SHIFT)
            | (u64::from(index) << SLOT_SHIFT)
            | (sync.generation << GENERATION_SHIFT),
    )
}

/// The handle published under `value`, if it has the rights `needs` (a
/// word's `CAN_*` bits) and `kind_of` accepts its kind (given by its place
/// in [`KINDS`]), made again from its word. It never closes anything.
#[inline]
fn view(
    value: u32,
    needs: u64,
    kind_of: impl FnOnce(usize) -> Option<Kind>,
) -> Option<ManuallyDrop<SyncObject>> {
    let word = place(value)?.load(Ordering::Acquire);
    if word & needs != needs {
        return None;
    }
    let kind = kind_of(((word & ((1 << KIND_BITS) - 1)) as usize).checked_sub(1)?)?;
    let arena = ARENAS[((word >> ARENA_SHIFT) & ((1 << ARENA_BITS) - 1)) as usize].get()?;
    let slot = arena.slot(((word >> SLOT_SHIFT) & ((1 << SLOT_BITS) - 1)) as u32)?;
    let mut access = 0;
    if word & CAN_SYNCHRONIZE != 0 {
        access |= SYNCHRONIZE;
    }
    if word & CAN_MODIFY != 0 {
        access |= MODIFY_STATE;
    }
    Some(ManuallyDrop::new(SyncObject {
        handle: Handle(value),
        generation: word >> GENERATION_SHIFT,
        access: AccessMask(access),
        kind,
        state: SlotRef::Domain(slot),
        existed: false,
        // A view closes nothing, even if it were dropped.
        closed: AtomicBool::new(true),
    }))
}

/// A `kind_of` for [`view`] that accepts `kind` only.
#[inline]
fn only(kind: Kind) -> impl FnOnce(usize) -> Option<Kind> {
    move |index| (KINDS.get(index) == Some(&kind)).then_some(kind)
}

/// `WaitForSingleObject` on the handle published under `value`; `then`
/// makes the caller's answer of the outcome. (Answers are made inside,
/// here and in the `with_*` functions, so that a small one comes back in a
/// register: a `Result` rewrapped in an `Option` came back through memory in
/// pieces that the next load spanned, which stalled it.)
#[inline]
pub fn wait<T>(
    value: u32,
    timeout: Option<Duration>,
    then: impl FnOnce(Result<WaitOutcome>) -> T,
) -> Option<T> {
    let object = view(value, CAN_SYNCHRONIZE, |index| KINDS.get(index).copied())?;
    Some(then(crate::sync::wait_one(&object, timeout)))
}

/// Runs `f` on the mutex published under `value`.
#[inline]
pub fn with_mutex<T>(value: u32, f: impl FnOnce(&Mutex) -> T) -> Option<T> {
    let object = view(value, 0, only(Kind::Mutex))?;
    Some(f(&ManuallyDrop::new(Mutex::from_object(
        ManuallyDrop::into_inner(object),
    ))))
}

/// Runs `f`, an operation that needs `SEMAPHORE_MODIFY_STATE`, on the
/// semaphore published under `value`.
#[inline]
pub fn with_semaphore<T>(value: u32, f: impl FnOnce(&Semaphore) -> T) -> Option<T> {
    let object = view(value, CAN_MODIFY, only(Kind::Semaphore))?;
    Some(f(&ManuallyDrop::new(Semaphore::from_object(
        ManuallyDrop::into_inner(object),
    ))))
}

/// Runs `f`, an operation that needs `EVENT_MODIFY_STATE`, on the event
/// published under `value`.
#[inline]
pub fn with_event<T>(value: u32, f: impl FnOnce(&Event) -> T) -> Option<T> {
    let object = view(value, CAN_MODIFY, |index| match KINDS.get(index) {
        Some(&Kind::Event { manual_reset }) => Some(Kind::Event { manual_reset }),
        _ => None,
    })?;
    Some(f(&ManuallyDrop::new(Event::from_object(
        ManuallyDrop::into_inner(object),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_code() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert_eq!(KINDS.iter().position(|k| k == kind), Some(i));
        }
        assert!(KINDS.len() < 1 << KIND_BITS);
    }

    #[test]
    fn a_value_that_is_not_published_is_not_found() {
        assert!(wait(4 * PUBLISHED_VALUES as u32, None, |_| ()).is_none());
        assert!(wait(6, None, |_| ()).is_none());
        assert!(with_mutex(40, |_| ()).is_none());
        withdraw(40);
        assert!(with_event(40, |_| ()).is_none());
    }
}
