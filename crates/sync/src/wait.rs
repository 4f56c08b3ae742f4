//! Waiting on one or many objects: `WaitForSingleObject`,
//! `WaitForMultipleObjects` (any and all) and the wait half of
//! `SignalObjectAndWait`.
//!
//! A wait first tries to take a signal with atomics alone; only when nothing
//! is signaled does it register as a waiter and sleep on the objects' futex
//! words (`futex_waitv` for several). It sleeps on exactly the values its
//! last failed attempt decided on: any change since makes the kernel refuse
//! to sleep, and a change after the attempt read a value wakes it, because
//! signalers wake every registered waiter. (Sleeping on values read *before*
//! the attempt would lose a wake-up when an object is taken and given back
//! in between: the value looks unchanged, but the wake came too early.)
//!
//! Without `futex_waitv` (Linux before 5.16), a thread waiting on several
//! objects sleeps on the *doorbell* instead, a futex word in slot 0 of the
//! arena that every signaler rings (bumps and wakes) when such a thread is
//! registered; it reads the doorbell before each attempt and sleeps on that
//! value, so a signal after the attempt read its object rings a bell it
//! will not sleep through. Such waits wake for any signal in the arena, and
//! try again.
//!
//! Wait-all locks its objects in slot order, checks that all can be taken,
//! and takes them all before unlocking: no other waiter can take one of them
//! in between, so the objects are acquired all at once or not at all.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU8, AtomicU32};

use objmgr_proto::error::{
    ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_SIGNAL_REFCOUNT_EXCEEDED, Win32Error,
};
use objmgr_proto::sync::MAXIMUM_WAIT_OBJECTS;
use rustix::io::Errno;
use rustix::thread::futex;

use crate::arena::{Slot, doorbell_of};
use crate::clock;
use crate::lifeline;
use crate::ops::{
    Acquired, Actor, Kind, MutexEffect, Patience, Took, complete, evaluate, fire_due_timer,
    lock_within, timer_due, try_take_observing, unlock,
};
use crate::state::{event_gen, holder, lo, with_lo};

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Object `n` was signaled (wait-all: all were; `n` is 0).
    Object(usize),
    /// Mutex `n` was abandoned by its owner; the caller owns it now
    /// (wait-all: all objects were acquired; `n` is an abandoned one).
    Abandoned(usize),
    /// The timeout elapsed first.
    Timeout,
}

/// A finished wait: the outcome and which of the objects are mutexes the
/// caller newly owns (bit `n` for object `n`), so it can abandon them if the
/// thread exits holding them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waited {
    pub outcome: WaitOutcome,
    pub new_owner_mask: u64,
}

/// An object to wait on: its state and kind.
pub type Object<'a> = (&'a Slot, Kind);

/// Waits until one object (`all` = false) or every object (`all` = true) can
/// be taken, and takes it (them). `deadline` is in monotonic nanoseconds
/// (`None` = forever; a past deadline polls once).
///
/// Errors: no objects, more than 64, or the same object twice in a wait-all
/// (`ERROR_INVALID_PARAMETER`); a mutex acquired recursively too many times
/// (`ERROR_SIGNAL_REFCOUNT_EXCEEDED`).
pub fn wait(
    objects: &[Object<'_>],
    all: bool,
    deadline: Option<u64>,
    me: &Actor,
) -> Result<Waited, Win32Error> {
    wait_after(objects, all, deadline, me, || Ok::<(), Win32Error>(())).map_err(|e| match e {
        Failed::Before(e) | Failed::Wait(e) => e,
    })
}

/// Why [`wait_after`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failed<E> {
    /// `before` failed; nothing was waited on.
    Before(E),
    /// The wait itself failed.
    Wait(Win32Error),
}

/// [`wait`], running `before` first, once the objects' state has been read:
/// `SignalObjectAndWait` signals in `before`, and a pulse of a waited-on
/// event after the signal releases this waiter as if it was waiting already.
pub fn wait_after<E>(
    objects: &[Object<'_>],
    all: bool,
    deadline: Option<u64>,
    me: &Actor,
    before: impl FnOnce() -> Result<(), E>,
) -> Result<Waited, Failed<E>> {
    let mut local = Local::new(objects, all, me).map_err(Failed::Wait)?;
    wait_with(objects, deadline, None, &mut local, before)
}

/// How a wait takes what it waits for: [`Local`] with atomics on memory the
/// process may write, or a broker that does it on the waiter's behalf for
/// objects the waiter maps read-only.
pub trait Attempts {
    /// Tries once to take the objects; when nothing was taken, `observed`
    /// holds the values the decision was made on (the only ones it is safe
    /// to sleep on). `seen`: the values of the last sleep, against which
    /// pulses are detected.
    fn attempt(
        &mut self,
        seen: &[u32],
        observed: &mut [u32],
        patience: Patience,
    ) -> Result<Attempt, Win32Error>;
    /// Makes signalers wake this thread from now on. Called once, after the
    /// first attempt failed and before the next.
    fn register(&mut self) -> Result<(), Win32Error>;
    /// The wait is over: signalers need not wake this thread any more.
    fn unregister(&mut self);
    /// The futex word to sleep on instead of the objects' (a doorbell).
    fn doorbell(&self) -> Option<&'static Slot> {
        None
    }
    /// Whether an attempt costs more than a look at the objects' state (a
    /// request to the broker): then a sleep that ended with every state
    /// word unchanged (a timeout of `recheck`) is followed by another
    /// sleep, not by an attempt.
    fn costly(&self) -> bool {
        false
    }
}

/// Attempts made here, with atomics on the objects' state (which this
/// process maps writable).
#[derive(Debug)]
pub struct Local<'a, 'b> {
    objects: &'a [Object<'b>],
    all: bool,
    me: &'a Actor,
    /// Lock order for wait-all: by slot address.
    order: [u8; MAXIMUM_WAIT_OBJECTS],
    /// The doorbell slept on (kernels without `futex_waitv`), once registered.
    bell: Option<&'static Slot>,
    registered: bool,
}

impl<'a, 'b> Local<'a, 'b> {
    /// Checks the objects (1 to 64; no object twice in a wait-all:
    /// `ERROR_INVALID_PARAMETER`, as Windows refuses it) and works out the
    /// lock order.
    pub fn new(
        objects: &'a [Object<'b>],
        all: bool,
        me: &'a Actor,
    ) -> Result<Local<'a, 'b>, Win32Error> {
        let n = objects.len();
        if n == 0 || n > MAXIMUM_WAIT_OBJECTS {
            return Err(ERROR_INVALID_PARAMETER);
        }
        let mut order = [0u8; MAXIMUM_WAIT_OBJECTS];
        if all && n > 1 {
            for (i, o) in order[..n].iter_mut().enumerate() {
                *o = i as u8;
            }
            order[..n].sort_unstable_by_key(|&i| objects[i as usize].0 as *const Slot as usize);
            if order[..n]
                .windows(2)
                .any(|w| std::ptr::eq(objects[w[0] as usize].0, objects[w[1] as usize].0))
            {
                return Err(ERROR_INVALID_PARAMETER);
            }
        }
        Ok(Local {
            objects,
            all,
            me,
            order,
            bell: None,
            registered: false,
        })
    }
}

impl Attempts for Local<'_, '_> {
    #[inline(always)]
    fn attempt(
        &mut self,
        seen: &[u32],
        observed: &mut [u32],
        patience: Patience,
    ) -> Result<Attempt, Win32Error> {
        let n = self.objects.len();
        if self.all && n > 1 {
            attempt_all(
                self.objects,
                seen,
                observed,
                &self.order[..n],
                self.me,
                patience,
            )
        } else {
            attempt_any(self.objects, seen, observed, self.me, patience)
        }
    }

    fn register(&mut self) -> Result<(), Win32Error> {
        if self.objects.len() > 1 && !has_waitv() {
            self.bell = shared_doorbell(self.objects);
        }
        for (slot, _) in self.objects {
            slot.waiters.fetch_add(1, SeqCst);
        }
        if let Some(bell) = self.bell {
            bell.waiters.fetch_add(1, SeqCst);
        }
        self.registered = true;
        Ok(())
    }

    fn unregister(&mut self) {
        if !std::mem::take(&mut self.registered) {
            return;
        }
        for (slot, _) in self.objects {
            slot.waiters.fetch_sub(1, SeqCst);
        }
        if let Some(bell) = self.bell {
            bell.waiters.fetch_sub(1, SeqCst);
        }
    }

    fn doorbell(&self) -> Option<&'static Slot> {
        self.bell
    }
}

impl Drop for Local<'_, '_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The wait loop: attempt, register, then sleep on what the last attempt
/// saw and attempt again until done or `deadline`. `recheck`: the longest
/// sleep before attempting again even if nothing woke the waiter (for
/// objects whose futex words other users map, which can move sleepers off
/// them with `FUTEX_CMP_REQUEUE`: such a thread must not sleep forever).
pub fn wait_with<E>(
    objects: &[Object<'_>],
    deadline: Option<u64>,
    recheck: Option<u64>,
    attempts: &mut impl Attempts,
    before: impl FnOnce() -> Result<(), E>,
) -> Result<Waited, Failed<E>> {
    let n = objects.len();
    if n == 0 || n > MAXIMUM_WAIT_OBJECTS {
        return Err(Failed::Wait(ERROR_INVALID_PARAMETER));
    }
    // Read before anything else: a caller's `before` checks that its handles
    // are still alive after this, so a cut after that check ends the sleep.
    let life = lifeline::current();
    // `seen`: the values of the last sleep (pulses are detected against
    // them); `observed`: the values the last failed attempt decided on, the
    // only values it is safe to sleep on.
    let mut seen = [0u32; MAXIMUM_WAIT_OBJECTS];
    let seen = &mut seen[..n];
    snapshot(objects, seen);
    before().map_err(Failed::Before)?;
    let mut observed = [0u32; MAXIMUM_WAIT_OBJECTS];
    let observed = &mut observed[..n];
    // One object: spin behind its lock as long as the wait may last. Several:
    // never wait long behind one object's lock while others may be taken,
    // nor hold some locks while waiting for another (see `Attempt::Busy`).
    let patience = match (n, deadline) {
        (1, None) => Patience::Forever,
        (1, Some(d)) => Patience::Until(d),
        _ => Patience::Brief,
    };
    if let Attempt::Done(done) = attempts
        .attempt(seen, observed, patience)
        .map_err(Failed::Wait)?
    {
        return Ok(done);
    }
    if deadline.is_some_and(|d| clock::now() >= d) {
        attempts.unregister();
        return Ok(timed_out());
    }

    // Registered before the next attempt: a signaler that changes a value
    // after that attempt read it sees us and wakes us; one that changed it
    // before, the attempt saw.
    attempts.register().map_err(Failed::Wait)?;
    let bell = attempts.doorbell();
    let result = (|| {
        // While a lock stays held: how long to sleep before looking again.
        let mut poll_ns = 0u64;
        // The last sleep ended with nothing changed: no need to attempt.
        let mut unchanged = false;
        loop {
            // Read before the attempt: a signal the attempt misses rings it later.
            let rung = bell.map(|b| lo(b.state.load(SeqCst)));
            // Once a lock was found stuck, do not spin behind it again.
            let now_patience = if poll_ns > 0 { Patience::Now } else { patience };
            let busy = if unchanged {
                false
            } else {
                match attempts.attempt(seen, observed, now_patience)? {
                    Attempt::Done(done) => return Ok(done),
                    Attempt::NotYet => false,
                    Attempt::Busy => true,
                }
            };
            let now = clock::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(timed_out());
            }
            let wake_at = earliest_timer(objects)
                .into_iter()
                .chain(deadline)
                .chain(recheck.map(|r| now.saturating_add(r)))
                .min();
            if busy {
                // An unlock changes no futex word and wakes nobody: sleep as
                // usual (a signal on any object still wakes at once), but look
                // again after a while, longer each time the lock stays held.
                poll_ns = (poll_ns * 2).clamp(MIN_POLL_NS, POLL_NS);
                let look_again = now + poll_ns;
                let until = wake_at.map_or(look_again, |w| w.min(look_again));
                sleep(objects, observed, Some(until), bell.zip(rung), life)?;
                continue; // pulses still count from before
            }
            poll_ns = 0;
            sleep(objects, observed, wake_at, bell.zip(rung), life)?;
            seen.copy_from_slice(observed);
            unchanged = attempts.costly()
                && objects
                    .iter()
                    .zip(observed.iter())
                    .all(|((slot, _), &v)| lo(slot.state.load(SeqCst)) == v)
                && earliest_timer(objects).is_none_or(|due| clock::now() < due);
        }
    })();
    attempts.unregister();
    result.map_err(Failed::Wait)
}

/// The first pause of a wait that found a slot lock stuck (it doubles up to
/// [`POLL_NS`] while the lock stays held).
const MIN_POLL_NS: u64 = 50_000;

/// What one attempt at a wait found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Done(Waited),
    /// Nothing to take; `observed` holds what the decision was made on.
    NotYet,
    /// Nothing taken while another thread held the lock of one of several
    /// objects (a wait-all checking it, or one whose process is stopped):
    /// the state behind that lock is unknown, so look again rather than
    /// sleep.
    Busy,
}

fn timed_out() -> Waited {
    Waited {
        outcome: WaitOutcome::Timeout,
        new_owner_mask: 0,
    }
}

fn snapshot(objects: &[Object<'_>], into: &mut [u32]) {
    for ((slot, _), v) in objects.iter().zip(into.iter_mut()) {
        *v = lo(slot.state.load(SeqCst));
    }
}

fn pulse_gen(kind: Kind, seen: u32) -> Option<u32> {
    matches!(kind, Kind::Event { .. }).then(|| event_gen(seen))
}

fn finished(index: usize, acquired: Acquired, new_owner_mask: u64) -> Waited {
    Waited {
        outcome: match acquired {
            Acquired::Signaled => WaitOutcome::Object(index),
            Acquired::Abandoned => WaitOutcome::Abandoned(index),
        },
        new_owner_mask,
    }
}

/// Wait-any: the lowest-numbered object that can be taken, taken; if none,
/// `observed` holds the state each object was found in.
#[inline(always)]
fn attempt_any(
    objects: &[Object<'_>],
    seen: &[u32],
    observed: &mut [u32],
    me: &Actor,
    patience: Patience,
) -> Result<Attempt, Win32Error> {
    let mut busy = false;
    for (i, &(slot, kind)) in objects.iter().enumerate() {
        // Skip at the cost of one load what plainly has nothing to take.
        let s = slot.state.load(SeqCst);
        let idle = holder(s) == 0
            && evaluate(kind, lo(s), pulse_gen(kind, seen[i]), me.token).is_none()
            && !(matches!(kind, Kind::Timer { .. }) && timer_due(slot));
        if idle {
            observed[i] = lo(s);
            continue;
        }
        let generation = pulse_gen(kind, seen[i]);
        match try_take_observing(slot, kind, me, generation, &mut observed[i], patience)? {
            Took::Taken(taken) => {
                let mask = if taken.new_owner { 1u64 << i } else { 0 };
                return Ok(Attempt::Done(finished(i, taken.acquired, mask)));
            }
            Took::Nothing => {}
            Took::GaveUp => busy = true,
        }
    }
    Ok(if busy { Attempt::Busy } else { Attempt::NotYet })
}

/// Wait-all: all objects taken together, or none; then `observed` holds
/// the states the decision was made on.
fn attempt_all(
    objects: &[Object<'_>],
    seen: &[u32],
    observed: &mut [u32],
    order: &[u8],
    me: &Actor,
    patience: Patience,
) -> Result<Attempt, Win32Error> {
    // Timers fire when someone looks: fire the due ones first, so that the
    // sleep below never waits for a due time that has passed already.
    let mut busy = false;
    for &(slot, kind) in objects {
        if matches!(kind, Kind::Timer { .. }) && timer_due(slot) {
            busy |= !fire_due_timer(slot, me, false, patience);
        }
    }
    // Cheap check without locks first: most failed attempts end here.
    let mut all_takeable = true;
    for (i, &(slot, kind)) in objects.iter().enumerate() {
        observed[i] = lo(slot.state.load(SeqCst));
        all_takeable &= evaluate(kind, observed[i], pulse_gen(kind, seen[i]), me.token).is_some();
    }
    if !all_takeable {
        return Ok(if busy { Attempt::Busy } else { Attempt::NotYet });
    }
    for (locked, &i) in order.iter().enumerate() {
        // Spin (briefly) for the first lock only: never while holding others.
        let patience = if locked == 0 { patience } else { Patience::Now };
        if !lock_within(objects[i as usize].0, me, patience) {
            // Held by another thread for longer than an instant (a stopped
            // process): give back what was taken, so that nobody waits on
            // us meanwhile, and look again.
            for &j in order[..locked].iter().rev() {
                unlock(objects[j as usize].0);
            }
            return Ok(Attempt::Busy);
        }
    }
    let result = take_all_locked(objects, seen, observed, me);
    for &i in order.iter().rev() {
        unlock(objects[i as usize].0);
    }
    Ok(match result? {
        Some(done) => Attempt::Done(done),
        None => Attempt::NotYet,
    })
}

fn take_all_locked(
    objects: &[Object<'_>],
    seen: &[u32],
    observed: &mut [u32],
    me: &Actor,
) -> Result<Option<Waited>, Win32Error> {
    let mut steps = [None; MAXIMUM_WAIT_OBJECTS];
    let mut missing = false;
    for (i, &(slot, kind)) in objects.iter().enumerate() {
        if matches!(kind, Kind::Timer { .. }) {
            let _ = fire_due_timer(slot, me, true, Patience::Forever); // locked already
        }
        let s = slot.state.load(SeqCst);
        observed[i] = lo(s);
        steps[i] = evaluate(kind, lo(s), pulse_gen(kind, seen[i]), me.token);
        missing |= steps[i].is_none();
    }
    if missing {
        return Ok(None);
    }
    let too_deep = objects.iter().zip(&steps).any(|(&(slot, _), step)| {
        step.is_some_and(|s| s.effect == MutexEffect::Recursion)
            && slot.recursion.load(SeqCst) >= i32::MAX as u32
    });
    if too_deep {
        return Err(ERROR_SIGNAL_REFCOUNT_EXCEEDED);
    }
    // Every object can be taken and we hold every lock: take them. Other
    // threads can only give signals meanwhile, which never makes a take fail.
    let mut abandoned = None;
    let mut mask = 0u64;
    for (i, &(slot, kind)) in objects.iter().enumerate() {
        let mut step = steps[i].expect("evaluated above");
        if step.effect != MutexEffect::Recursion {
            // Other threads may give signals meanwhile (a release, a set),
            // so the step is worked out again from the value it replaces:
            // a take computed from an older value would undo them.
            let _ = slot.state.fetch_update(SeqCst, SeqCst, |s| {
                let again = evaluate(kind, lo(s), pulse_gen(kind, seen[i]), me.token)?;
                step = again;
                Some(with_lo(s, again.lo))
            });
            // (`None` would need a process that writes the arena behind our
            // back: signals are only removed from unlocked slots.)
        }
        complete(slot, step, me)?;
        if step.effect == MutexEffect::NewOwner {
            mask |= 1 << i;
        }
        if step.acquired == Acquired::Abandoned && abandoned.is_none() {
            abandoned = Some(i);
        }
    }
    Ok(Some(match abandoned {
        Some(i) => finished(i, Acquired::Abandoned, mask),
        None => finished(0, Acquired::Signaled, mask),
    }))
}

/// The earliest due time of an armed, unsignaled timer among the objects: the
/// waiter wakes then to fire it (timers are evaluated lazily).
fn earliest_timer(objects: &[Object<'_>]) -> Option<u64> {
    objects
        .iter()
        .filter(|(_, kind)| matches!(kind, Kind::Timer { .. }))
        .map(|(slot, _)| slot.due.load(SeqCst))
        .filter(|&due| due != 0)
        .min()
}

/// The doorbell of the arena all `objects` live in (`None` if they live in
/// none that has one, or in several: such waits poll).
fn shared_doorbell(objects: &[Object<'_>]) -> Option<&'static Slot> {
    let bell = doorbell_of(objects[0].0)?;
    objects
        .iter()
        .all(|(slot, _)| doorbell_of(slot).is_some_and(|b| std::ptr::eq(b, bell)))
        .then_some(bell)
}

/// Whether the kernel has `futex_waitv` (Linux 5.16 and later). Setting
/// `OBJMGR_FUTEX_WAITV=0` makes a process behave as if it had not, to try
/// the doorbell on any kernel; processes that differ in this still work
/// together, since signalers ring the doorbell whenever anyone sleeps on it.
pub fn has_waitv() -> bool {
    static KNOWN: AtomicU8 = AtomicU8::new(0); // 0: not asked yet, 1: yes, 2: no
    match KNOWN.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let refused = std::env::var_os("OBJMGR_FUTEX_WAITV").is_some_and(|v| v == "0");
            // With no entries, a kernel that has it says EINVAL; one that has
            // not says ENOSYS, and a seccomp filter may say EPERM.
            let probe = futex::waitv(
                &[],
                futex::WaitvFlags::empty(),
                None,
                futex::ClockId::Monotonic,
            );
            let yes = !refused && probe == Err(Errno::INVAL);
            KNOWN.store(if yes { 1 } else { 2 }, Relaxed);
            yes
        }
    }
}

/// The longest sleep of a multi-object wait that has neither `futex_waitv`
/// nor a doorbell (objects outside any registered arena) before it looks
/// again.
const POLL_NS: u64 = 1_000_000;

/// Sleeps until a word of `objects` (or `bell`) may have left its
/// `expected` value, or `until` passes; fails with `ERROR_INVALID_HANDLE`
/// if the lifeline moves from `life` (see [`lifeline`]).
fn sleep(
    objects: &[Object<'_>],
    expected: &[u32],
    until: Option<u64>,
    bell: Option<(&Slot, u32)>,
    life: u32,
) -> Result<(), Win32Error> {
    let on_one = |word: &AtomicU32, value: u32, until: Option<u64>| {
        futex::wait_bitset(
            word,
            futex::Flags::empty(),
            value,
            until.map(clock::timespec).as_ref(),
            std::num::NonZeroU32::MAX,
        )
    };
    let timeout = until.map(clock::timespec);
    // A cut wakes one word of the sleep: that wakes the whole sleep.
    let watched = bell.map_or(objects[0].0.futex_word(), |(b, _)| b.futex_word());
    let result = lifeline::sleep_on(watched, life, || {
        if let [(slot, _)] = objects {
            on_one(slot.futex_word(), expected[0], until)
        } else if let Some((bell, rung)) = bell {
            on_one(bell.futex_word(), rung, until)
        } else if !has_waitv() {
            let soon = clock::now() + POLL_NS;
            on_one(
                objects[0].0.futex_word(),
                expected[0],
                Some(until.map_or(soon, |u| u.min(soon))),
            )
        } else {
            let mut waits = [futex::Wait::new(); MAXIMUM_WAIT_OBJECTS];
            for (w, ((slot, _), &v)) in waits.iter_mut().zip(objects.iter().zip(expected)) {
                w.val = u64::from(v);
                w.uaddr =
                    futex::WaitPtr::new(std::ptr::from_ref(slot.futex_word()).cast_mut().cast());
                w.flags = futex::WaitFlags::SIZE_U32;
            }
            futex::waitv(
                &waits[..objects.len()],
                futex::WaitvFlags::empty(),
                timeout.as_ref(),
                futex::ClockId::Monotonic,
            )
            .map(|_| ())
        }
    })
    .map_err(|lifeline::Cut| ERROR_INVALID_HANDLE)?;
    match result {
        Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => Ok(()),
        Err(e) => Err(Win32Error::from_errno(e.raw_os_error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Token, init_slot, release_mutex, release_semaphore, set_event};
    use objmgr_proto::sync::SyncInit;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn actor(thread: u32) -> Actor {
        Actor {
            token: Token::new(1, thread).unwrap(),
            pid: 1,
            tid: thread,
        }
    }

    fn slot(init: SyncInit) -> Slot {
        let slot = Slot::new();
        init_slot(&slot, init, None);
        slot
    }

    const SEM1: SyncInit = SyncInit::Semaphore {
        initial: 1,
        maximum: 1,
    };

    #[test]
    fn wait_all_is_atomic_between_threads() {
        let objects = [
            slot(SEM1),
            slot(SyncInit::Mutex { owned: false }),
            slot(SEM1),
        ];
        let holders: [AtomicU32; 3] = Default::default();
        let violations = AtomicU32::new(0);
        let sets: [&[usize]; 5] = [&[0, 1], &[1, 2], &[0, 2], &[0, 1, 2], &[2]];
        std::thread::scope(|s| {
            for (t, set) in sets.iter().enumerate() {
                let (objects, holders, violations) = (&objects, &holders, &violations);
                s.spawn(move || {
                    let me = actor(t as u32);
                    let list: Vec<Object<'_>> = set
                        .iter()
                        .map(|&i| {
                            let kind = if i == 1 { Kind::Mutex } else { Kind::Semaphore };
                            (&objects[i], kind)
                        })
                        .collect();
                    for _ in 0..2000 {
                        let done = wait(&list, true, None, &me).unwrap();
                        assert_eq!(done.outcome, WaitOutcome::Object(0));
                        for &i in *set {
                            if holders[i].fetch_add(1, Ordering::SeqCst) != 0 {
                                violations.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        for &i in *set {
                            holders[i].fetch_sub(1, Ordering::SeqCst);
                            if i == 1 {
                                release_mutex(&objects[i], &me).unwrap();
                            } else {
                                release_semaphore(&objects[i], 1).unwrap();
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(violations.load(Ordering::SeqCst), 0);
        // Every unit is back, none lost or duplicated.
        assert_eq!(lo(objects[0].state.load(SeqCst)), 1);
        assert_eq!(lo(objects[1].state.load(SeqCst)), 0);
        assert_eq!(lo(objects[2].state.load(SeqCst)), 1);
    }

    #[test]
    fn a_wait_all_never_undoes_a_release_made_meanwhile() {
        // Releases land while wait-alls hold the semaphore's slot lock; every
        // unit must be either taken or still there at the end.
        const RELEASES: u32 = 20_000;
        let sem = slot(SyncInit::Semaphore {
            initial: 0,
            maximum: 2 * RELEASES,
        });
        let open = slot(SyncInit::Event {
            manual_reset: true,
            signaled: true,
        });
        let taken = AtomicU32::new(0);
        let releasers_done = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..RELEASES / 2 {
                        release_semaphore(&sem, 1).unwrap();
                    }
                    releasers_done.fetch_add(1, Ordering::SeqCst);
                });
            }
            for t in 0..2 {
                let (sem, open, taken, releasers_done) = (&sem, &open, &taken, &releasers_done);
                s.spawn(move || {
                    let me = actor(t);
                    let list = [
                        (sem, Kind::Semaphore),
                        (open, Kind::Event { manual_reset: true }),
                    ];
                    loop {
                        let deadline = clock::now() + 50_000_000;
                        match wait(&list, true, Some(deadline), &me).unwrap().outcome {
                            WaitOutcome::Object(0) => {
                                taken.fetch_add(1, Ordering::SeqCst);
                            }
                            _ if releasers_done.load(Ordering::SeqCst) == 2 => break,
                            _ => {}
                        }
                    }
                });
            }
        });
        let left = lo(sem.state.load(SeqCst));
        assert_eq!(taken.load(Ordering::SeqCst) + left, RELEASES);
    }

    #[test]
    fn one_set_of_an_auto_reset_event_releases_one_thread() {
        let event = slot(SyncInit::Event {
            manual_reset: false,
            signaled: false,
        });
        let kind = Kind::Event {
            manual_reset: false,
        };
        let released = AtomicU32::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (event, released) = (&event, &released);
                s.spawn(move || {
                    wait(&[(event, kind)], false, None, &actor(t)).unwrap();
                    released.fetch_add(1, Ordering::SeqCst);
                });
            }
            while event.waiters.load(SeqCst) < 4 {
                std::thread::yield_now();
            }
            for n in 1..=4 {
                set_event(&event, false);
                while released.load(Ordering::SeqCst) < n {
                    std::thread::yield_now();
                }
                // Give a wrongly released second thread the chance to show.
                std::thread::sleep(std::time::Duration::from_millis(5));
                assert_eq!(released.load(Ordering::SeqCst), n);
            }
        });
    }

    #[test]
    fn a_stopped_lock_holder_does_not_stretch_a_timed_wait() {
        // A slot locked by a wait-all of a thread that never moves on (a
        // stopped process): timed waits and polls end at their deadline.
        // `b` (free) sits below `a` (locked), so the wait-all, which locks in
        // address order, takes `b` first and must give it back.
        let slots = [slot(SEM1), slot(SEM1)];
        let (b, a) = (&slots[0], &slots[1]);
        let stopped = actor(9).token.raw();
        a.state.store(crate::state::with_holder(1, stopped), SeqCst);
        let (done, results) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(move || {
                let me = actor(0);
                let kind = Kind::Semaphore;
                // WaitForSingleObject's fast path gives up soon, too.
                let taken = crate::ops::try_take(a, kind, &me, None, Patience::Brief);
                assert_eq!(taken.map(|t| t.is_none()), Ok(true));
                let poll = wait(&[(a, kind)], false, Some(clock::now()), &me);
                let timed = wait(&[(a, kind)], false, Some(clock::now() + 20_000_000), &me);
                let all = wait(
                    &[(b, kind), (a, kind)],
                    true,
                    Some(clock::now() + 20_000_000),
                    &me,
                );
                // The wait-all gave back the lock it took on the free slot.
                let b_after_all = b.state.load(SeqCst);
                // Untimed, and `a` comes first: a wait-any takes `b` at once
                // instead of waiting behind `a`'s lock.
                let any = wait(&[(a, kind), (b, kind)], false, None, &me);
                done.send((poll, timed, all, b_after_all, any)).unwrap();
            });
            let outcome = results.recv_timeout(std::time::Duration::from_secs(10));
            a.state.store(1, SeqCst); // the holder moves on at last
            let (poll, timed, all, b_after_all, any) =
                outcome.expect("the waits ended at their deadlines");
            for result in [poll, timed, all] {
                assert_eq!(result.unwrap().outcome, WaitOutcome::Timeout);
            }
            assert_eq!((holder(b_after_all), lo(b_after_all)), (0, 1));
            assert_eq!(any.unwrap().outcome, WaitOutcome::Object(1));
        });
    }

    #[test]
    fn the_futex_waitv_probe_matches_what_the_call_does() {
        // A real two-entry call on values that are not there returns EAGAIN
        // where futex_waitv works; where the probe said no, it must fail
        // otherwise (missing, or filtered), unless only told to say no.
        let words = [
            std::sync::atomic::AtomicU32::new(1),
            std::sync::atomic::AtomicU32::new(1),
        ];
        let mut waits = [futex::Wait::new(); 2];
        for (w, word) in waits.iter_mut().zip(&words) {
            w.val = 0;
            w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            w.flags = futex::WaitFlags::SIZE_U32;
        }
        let real = futex::waitv(
            &waits,
            futex::WaitvFlags::empty(),
            None,
            futex::ClockId::Monotonic,
        );
        if has_waitv() {
            assert_eq!(real, Err(Errno::AGAIN));
        } else if std::env::var_os("OBJMGR_FUTEX_WAITV").is_none() {
            assert!(matches!(real, Err(e) if e != Errno::AGAIN), "{real:?}");
        }
    }

    #[test]
    fn timeouts_and_polls() {
        let event = slot(SyncInit::Event {
            manual_reset: true,
            signaled: false,
        });
        let kind = Kind::Event { manual_reset: true };
        let me = actor(0);
        let poll = wait(&[(&event, kind)], false, Some(0), &me).unwrap();
        assert_eq!(poll.outcome, WaitOutcome::Timeout);
        let start = clock::now();
        let timed = wait(
            &[(&event, kind), (&event, kind)],
            false,
            Some(start + 30_000_000),
            &me,
        );
        assert_eq!(timed.unwrap().outcome, WaitOutcome::Timeout);
        assert!(clock::now() >= start + 30_000_000);
        assert_eq!(
            wait(&[], false, None, &me).unwrap_err(),
            ERROR_INVALID_PARAMETER
        );
    }

    #[test]
    fn signal_and_wait_sees_a_pulse_right_after_the_signal() {
        let event = slot(SyncInit::Event {
            manual_reset: true,
            signaled: false,
        });
        let kind = Kind::Event { manual_reset: true };
        // The pulse happens inside `before`, after the state was read: the
        // waiter counts as waiting already, so the pulse releases it.
        let done = wait_after(&[(&event, kind)], false, Some(0), &actor(0), || {
            crate::ops::pulse_event(&event, true, Patience::Forever);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(done.outcome, WaitOutcome::Object(0));
    }

    #[test]
    fn no_wake_up_is_lost_when_objects_are_taken_and_given_back_quickly() {
        // Threads churn two binary semaphores: some take both at once, some
        // one. A waiter that slept on a stale value misses its wake-up and
        // sleeps until its deadline although the objects are free: every
        // wait here must end long before its (huge) deadline. (This caught
        // the lost wake-up of sleeping on values read before the attempt in
        // two of three runs.)
        let objects = [slot(SEM1), slot(SEM1)];
        let sets: [&[usize]; 6] = [&[0, 1], &[0], &[1], &[0, 1], &[1], &[0]];
        std::thread::scope(|s| {
            for (t, set) in sets.iter().enumerate() {
                let objects = &objects;
                s.spawn(move || {
                    let me = actor(t as u32 + 1);
                    let list: Vec<Object<'_>> = set
                        .iter()
                        .map(|&i| (&objects[i], Kind::Semaphore))
                        .collect();
                    for _ in 0..20_000 {
                        let deadline = clock::now() + 2_000_000_000;
                        let done = wait(&list, set.len() > 1, Some(deadline), &me).unwrap();
                        assert_eq!(done.outcome, WaitOutcome::Object(0));
                        assert!(clock::now() < deadline, "a wake-up was lost");
                        for &i in *set {
                            release_semaphore(&objects[i], 1).unwrap();
                        }
                    }
                });
            }
        });
    }
}
