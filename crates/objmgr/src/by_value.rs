//! Handles found by their value with one load, for callers that keep
//! handles as plain numbers (the C ABI's `HANDLE`s).
//!
//! Such a caller owns each handle's [`Object`] in a table of its own, and
//! *publishes* the ones it may wait on or signal here: a synchronization
//! object whose state lies in one of the process's domain arenas. Each is
//! one entry of a process-wide array indexed by handle value: the address
//! of the object's slot, tagged in its low bits (slots are 64-byte aligned)
//! with the object's type and the two rights its fast operations need, and
//! the broker session (generation) it belongs to. Domain arenas stay mapped
//! for the life of the process, so the entry alone rebuilds the handle, the
//! slot is one load away (an arena number and a slot index, which took three
//! dependent loads to reach the slot, cost 0.8 ns more per release-and-wait
//! pair), and a handle closed by another
//! thread under a running call can never free memory that the call touches
//! (it acts on whatever the slot holds then, as a use of a closed handle
//! does on Windows; racing a close and a new publish under the same value,
//! it may even pair the old slot with the new entry's generation).
//!
//! The contract for a caller: publish a handle only while it owns the
//! object under that value, and [`withdraw`] it before the handle is
//! closed or forgotten; [`publish`] itself clears the value's entry for an
//! object it cannot hold, so publishing every object a value comes to name
//! keeps the table true.
//!
//! Every operation here runs the very code of the Rust API, on a view of
//! the handle made from the entry. A value that is not published, and a
//! handle that lacks a right or names another type, is answered `None`: the
//! caller then goes its own, slower way, which reports the exact error.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use objmgr_proto::access::{AccessMask, SYNCHRONIZE};
use objmgr_proto::wire::Handle;
use objmgr_sync::Slot;
use objmgr_sync::ops::Kind;

use crate::handle::Object;
use crate::sync::{SlotRef, SyncObject, WaitOutcome};
use crate::{Event, Mutex, Result, Semaphore};

/// Handle values below `4 * PUBLISHED_VALUES` can be published (the broker
/// hands out small multiples of 4, lowest first).
const PUBLISHED_VALUES: usize = 4096;

/// A published handle.
struct Entry {
    /// The slot's address, tagged (see [`TAG_BITS`]); null when none.
    slot: AtomicPtr<Slot>,
    /// The broker session the handle belongs to.
    generation: AtomicU64,
}

/// The published handles, by value / 4.
static PUBLISHED: [Entry; PUBLISHED_VALUES] = [const {
    Entry {
        slot: AtomicPtr::new(std::ptr::null_mut()),
        generation: AtomicU64::new(0),
    }
}; PUBLISHED_VALUES];

/// The kinds an entry can hold; its tag stores the position + 1.
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

/// The tag in a slot address's low bits: the kind's place in [`KINDS`] + 1
/// in the lowest four, then the two rights.
const TAG_BITS: usize = 63;
const KIND_BITS: usize = 15;
const CAN_SYNCHRONIZE: usize = 1 << 4;
const CAN_MODIFY: usize = 1 << 5;
const _: () = assert!(KINDS.len() <= KIND_BITS);
const _: () = assert!(objmgr_sync::arena::SLOT_SIZE > TAG_BITS);

/// The entry of handle `value`.
#[inline]
fn entry(value: u32) -> Option<&'static Entry> {
    if value & 3 != 0 {
        return None;
    }
    PUBLISHED.get((value >> 2) as usize)
}

/// Makes `object` (the handle its owner keeps under its value) found by
/// value if it can be; otherwise (not a synchronization object in a domain
/// arena) makes sure that nothing is found under its value.
pub fn publish(object: &Object) {
    let Some(entry) = entry(object.handle_value()) else {
        return;
    };
    match object.sync_object().and_then(tagged) {
        Some((slot, generation)) => {
            entry.generation.store(generation, Ordering::Relaxed);
            // Release: whoever finds the slot finds its generation too.
            entry.slot.store(slot, Ordering::Release);
        }
        None => entry.slot.store(std::ptr::null_mut(), Ordering::Release),
    }
}

/// Stops finding handle `value` by value: call it before the handle is
/// closed (or forgotten), so that no new object under the same value is
/// ever taken for the old one.
pub fn withdraw(value: u32) {
    if let Some(entry) = entry(value) {
        entry.slot.store(std::ptr::null_mut(), Ordering::Release);
    }
}

/// The tagged slot address and the generation for `sync`, if it can be
/// published.
fn tagged(sync: &SyncObject) -> Option<(*mut Slot, u64)> {
    let SlotRef::Domain(slot) = sync.state else {
        return None;
    };
    let kind = KINDS.iter().position(|&k| k == sync.kind)? + 1;
    let mut tag = kind;
    if sync.access.contains(SYNCHRONIZE) {
        tag |= CAN_SYNCHRONIZE;
    }
    if sync.access.contains(MODIFY_STATE) {
        tag |= CAN_MODIFY;
    }
    let address = std::ptr::from_ref::<Slot>(slot).cast_mut();
    if address.addr() & TAG_BITS != 0 {
        return None; // not where a slot of an arena can be
    }
    Some((address.map_addr(|a| a | tag), sync.generation))
}

/// The handle published under `value`, if it has the rights `needs` (an
/// entry's `CAN_*` bits) and `kind_of` accepts its kind (given by its place
/// in [`KINDS`]), made again from its entry. It never closes anything.
#[inline]
fn view(
    value: u32,
    needs: usize,
    kind_of: impl FnOnce(usize) -> Option<Kind>,
) -> Option<ManuallyDrop<SyncObject>> {
    let entry = entry(value)?;
    let tagged = entry.slot.load(Ordering::Acquire);
    let tag = tagged.addr() & TAG_BITS;
    if tag & needs != needs {
        return None;
    }
    let kind = kind_of((tag & KIND_BITS).checked_sub(1)?)?;
    // SAFETY: a non-null entry holds the address of a slot of a domain arena
    // (`tagged` took it from a `SlotRef::Domain`, a `&'static Slot`; such
    // arenas are leaked, never unmapped) with its provenance, tagged in bits
    // that a slot's alignment leaves zero: untagged, it is that `'static`
    // slot again.
    let slot: &'static Slot = unsafe { tagged.map_addr(|a| a & !TAG_BITS).as_ref() }?;
    let mut access = 0;
    if tag & CAN_SYNCHRONIZE != 0 {
        access |= SYNCHRONIZE;
    }
    if tag & CAN_MODIFY != 0 {
        access |= MODIFY_STATE;
    }
    Some(ManuallyDrop::new(SyncObject {
        handle: Handle(value),
        generation: entry.generation.load(Ordering::Relaxed),
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
