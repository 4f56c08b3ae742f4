//! Operations on one object's state: everything `SetEvent`, `ReleaseMutex`,
//! `ReleaseSemaphore`, `SetWaitableTimer` and a successful wait do, as atomic
//! read-modify-writes of the state word, plus the broker's slot set-up and
//! clean-up after a dead process.
//!
//! Per kind, the low half of the state word holds:
//! - event: bit 0 signaled, bits 1..8 unclaimed pulses (auto-reset), bits
//!   8.. a generation bumped by pulses and by a manual-reset event's set;
//! - mutex: the owner's [`Token`], 0 when free, `ABANDONED`
//!   when free after its owner died; the recursion count is in the slot;
//! - semaphore: the count (the maximum is in the slot);
//! - waitable timer: bit 0 signaled, bits 1.. the set generation; the due time
//!   and period are in the slot and change only under the slot lock.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use objmgr_proto::ObjectType;
use objmgr_proto::error::{
    ERROR_INVALID_PARAMETER, ERROR_NOT_OWNER, ERROR_SIGNAL_REFCOUNT_EXCEEDED, ERROR_TOO_MANY_POSTS,
    Win32Error,
};
use objmgr_proto::sync::SyncInit;
use rustix::thread::futex;

use crate::arena::Slot;
use crate::clock;
use crate::state::*;

/// What kind of object a slot holds. Fixed for the slot's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Event {
        manual_reset: bool,
    },
    Mutex,
    Semaphore,
    Timer {
        manual_reset: bool,
    },
    /// Signaled once the process has exited; the exit code is in `maximum`.
    Process,
    /// Signaled once the thread has exited; the exit code is in `maximum`.
    Thread,
    /// A job: signaled once it was terminated (`TerminateJobObject`, or its
    /// end-of-job time limit); waiting takes nothing.
    Job,
}

const MANUAL_RESET_FLAG: u32 = 0x100;

impl Kind {
    pub fn from_init(init: SyncInit) -> Kind {
        match init {
            SyncInit::Event { manual_reset, .. } => Kind::Event { manual_reset },
            SyncInit::Mutex { .. } => Kind::Mutex,
            SyncInit::Semaphore { .. } => Kind::Semaphore,
            SyncInit::Timer { manual_reset } => Kind::Timer { manual_reset },
        }
    }

    /// A kind whose slot the broker initializes itself (see [`init_exit_slot`]).
    pub fn is_exit_object(self) -> bool {
        matches!(self, Kind::Process | Kind::Thread | Kind::Job)
    }

    pub fn object_type(self) -> ObjectType {
        match self {
            Kind::Event { .. } => ObjectType::Event,
            Kind::Mutex => ObjectType::Mutex,
            Kind::Semaphore => ObjectType::Semaphore,
            Kind::Timer { .. } => ObjectType::WaitableTimer,
            Kind::Process => ObjectType::Process,
            Kind::Job => ObjectType::Job,
            Kind::Thread => ObjectType::Thread,
        }
    }

    /// The code stored in [`Slot::kind`] and sent on the wire.
    pub fn code(self) -> u32 {
        let manual = match self {
            Kind::Event { manual_reset } | Kind::Timer { manual_reset } => manual_reset,
            _ => false,
        };
        u32::from(self.object_type().code()) | if manual { MANUAL_RESET_FLAG } else { 0 }
    }

    pub fn from_code(code: u32) -> Option<Kind> {
        let manual_reset = code & MANUAL_RESET_FLAG != 0;
        if code & !(MANUAL_RESET_FLAG | 0xFF) != 0 {
            return None;
        }
        match ObjectType::from_code(code as u8)? {
            ObjectType::Event => Some(Kind::Event { manual_reset }),
            ObjectType::Mutex if !manual_reset => Some(Kind::Mutex),
            ObjectType::Semaphore if !manual_reset => Some(Kind::Semaphore),
            ObjectType::WaitableTimer => Some(Kind::Timer { manual_reset }),
            ObjectType::Process if !manual_reset => Some(Kind::Process),
            ObjectType::Job if !manual_reset => Some(Kind::Job),
            ObjectType::Thread if !manual_reset => Some(Kind::Thread),
            _ => None,
        }
    }
}

/// Identifies a thread as a mutex owner and lock holder: the broker-assigned
/// tag of its process (1..=65535) and a thread number unique in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(u32);

impl Token {
    const TAG_SHIFT: u32 = 15;
    /// Threads one process can have using sync objects at the same time.
    pub const MAX_THREADS: u32 = 1 << Self::TAG_SHIFT;

    pub fn new(tag: u16, thread: u32) -> Option<Token> {
        (tag != 0 && thread < Self::MAX_THREADS)
            .then(|| Token((u32::from(tag) << Self::TAG_SHIFT) | thread))
    }

    pub fn from_raw(raw: u32) -> Option<Token> {
        (raw != 0 && raw & ABANDONED == 0).then_some(Token(raw))
    }

    #[inline]
    pub fn raw(self) -> u32 {
        self.0
    }

    #[inline]
    pub fn tag(self) -> u16 {
        (self.0 >> Self::TAG_SHIFT) as u16
    }
}

/// The thread performing an operation.
///
/// `pid` and `tid` come first and together: taking a mutex stores them as
/// one 8-byte word, and in the other order a copy of an `Actor` was split
/// as (token, pid) + tid, so that reading (pid, tid) back spanned two
/// stores and stalled on a failed store-to-load forward (a third of an
/// uncontended wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Actor {
    /// Shown as the owner of mutexes it holds.
    pub pid: u32,
    pub tid: u32,
    pub token: Token,
}

/// How a wait was satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    Signaled,
    /// A mutex whose owner died holding it; the caller owns it now.
    Abandoned,
}

/// A successful take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub acquired: Acquired,
    /// A mutex the caller did not own before.
    pub new_owner: bool,
}

/// Backs off while another thread holds a slot lock: spin briefly, then yield,
/// then sleep, since the holder may be preempted on the same CPU (or dead and
/// not yet cleaned up by the broker).
#[derive(Debug, Default)]
pub(crate) struct Backoff(u32);

/// Rounds of [`Backoff`] that spin or yield before it starts to sleep.
const YIELDS_UNTIL: u32 = 100;

impl Backoff {
    /// Past the spins and yields, into sleeps: a lock held this long is
    /// held by a thread that does not run (a stopped process).
    pub(crate) fn is_long(&self) -> bool {
        self.0 >= YIELDS_UNTIL
    }

    pub(crate) fn snooze(&mut self) {
        if self.0 < 6 {
            for _ in 0..(1 << self.0) {
                std::hint::spin_loop();
            }
        } else if self.0 < YIELDS_UNTIL {
            rustix::thread::sched_yield();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        self.0 = self.0.saturating_add(1);
    }
}

/// Wakes every thread sleeping on `slot`, if any registered. Waking all (not
/// one) is what makes mixed waits safe: a thread woken for an object it then
/// cannot take (a wait-all missing another object) does not swallow the
/// wake-up another waiter needed. Exactly-once semantics come from the CAS.
///
/// Threads waiting on several objects where the kernel has no `futex_waitv`
/// sleep on the arena's doorbell instead (see [`crate::wait`]): it is rung
/// too when any such thread is registered.
#[inline]
pub(crate) fn wake_all(slot: &Slot) {
    if slot.waiters.load(SeqCst) > 0 {
        let _ = futex::wake(slot.futex_word(), futex::Flags::empty(), i32::MAX as u32);
        if let Some(bell) = crate::arena::doorbell_of(slot)
            && bell.waiters.load(SeqCst) > 0
        {
            let _ = bell
                .state
                .fetch_update(SeqCst, SeqCst, |s| Some(with_lo(s, lo(s).wrapping_add(1))));
            let _ = futex::wake(bell.futex_word(), futex::Flags::empty(), i32::MAX as u32);
        }
    }
}

/// Initializes a free slot for a new object (broker side).
pub fn init_slot(slot: &Slot, init: SyncInit, owner: Option<Actor>) {
    let kind = Kind::from_init(init);
    slot.kind.store(kind.code(), SeqCst);
    slot.waiters.store(0, SeqCst);
    slot.due.store(0, SeqCst);
    slot.period.store(0, SeqCst);
    slot.recursion.store(0, SeqCst);
    slot.owner_pid.store(0, SeqCst);
    slot.owner_tid.store(0, SeqCst);
    slot.maximum.store(0, SeqCst);
    let lo = match init {
        SyncInit::Event { signaled, .. } => u32::from(signaled),
        SyncInit::Mutex { owned } => match owner.filter(|_| owned) {
            Some(owner) => {
                slot.recursion.store(1, SeqCst);
                slot.owner_pid.store(owner.pid, SeqCst);
                slot.owner_tid.store(owner.tid, SeqCst);
                owner.token.raw()
            }
            None => 0,
        },
        SyncInit::Semaphore { initial, maximum } => {
            slot.maximum.store(maximum, SeqCst);
            initial
        }
        SyncInit::Timer { .. } => 0,
    };
    slot.state.store(u64::from(lo), SeqCst);
}

/// Initializes a free slot for a process or thread object (broker side):
/// running, or already exited with `exit_code`.
/// `pid` is the process's (or the thread's process's) id, kept in `owner_pid`.
pub fn init_exit_slot(slot: &Slot, kind: Kind, pid: u32, exit_code: Option<u32>) {
    slot.kind.store(kind.code(), SeqCst);
    slot.waiters.store(0, SeqCst);
    slot.due.store(0, SeqCst);
    slot.period.store(0, SeqCst);
    slot.recursion.store(0, SeqCst);
    slot.owner_pid.store(pid, SeqCst);
    slot.owner_tid.store(0, SeqCst);
    slot.maximum.store(exit_code.unwrap_or(0), SeqCst);
    slot.state.store(u64::from(exit_code.is_some()), SeqCst);
}

/// Marks a process or thread as exited with `exit_code` and releases its
/// waiters. Only the first exit counts (a thread cannot exit twice).
pub fn mark_exited(slot: &Slot, exit_code: u32) {
    let exit_kind = Kind::from_code(slot.kind.load(SeqCst)).is_some_and(Kind::is_exit_object);
    if !exit_kind || lo(slot.state.load(SeqCst)) & SIGNALED != 0 {
        return;
    }
    // The code first: whoever sees the signal must see the code.
    slot.maximum.store(exit_code, SeqCst);
    slot.state.fetch_or(u64::from(SIGNALED), SeqCst);
    wake_all(slot);
}

/// A process or thread's exit code, or `None` while it runs.
pub fn exit_code(slot: &Slot) -> Option<u32> {
    (lo(slot.state.load(SeqCst)) & SIGNALED != 0).then(|| slot.maximum.load(SeqCst))
}

/// Clears a slot whose object was destroyed (broker side).
pub fn clear_slot(slot: &Slot) {
    slot.state.store(0, SeqCst);
    slot.kind.store(0, SeqCst);
    slot.waiters.store(0, SeqCst);
}

/// What taking one signal from an object does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub(crate) lo: u32,
    pub(crate) acquired: Acquired,
    pub(crate) effect: MutexEffect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MutexEffect {
    None,
    /// The caller becomes the owner.
    NewOwner,
    /// The caller owned it already: one more level of recursion.
    Recursion,
}

/// Whether `me` can take a signal from an object in state `lo`, and the new
/// state if so. `pulse_gen` is the event generation the waiter last saw: a
/// newer one means a pulse happened while it waited. Timers are taken only
/// once signaled; firing a due timer is [`fire_due_timer`]'s job.
#[inline]
pub(crate) fn evaluate(kind: Kind, lo: u32, pulse_gen: Option<u32>, me: Token) -> Option<Step> {
    let signaled = |lo| {
        Some(Step {
            lo,
            acquired: Acquired::Signaled,
            effect: MutexEffect::None,
        })
    };
    match kind {
        Kind::Event { manual_reset } => {
            let pulsed = pulse_gen.is_some_and(|g| g != event_gen(lo));
            if lo & SIGNALED != 0 {
                signaled(if manual_reset { lo } else { lo & !SIGNALED })
            } else if pulsed && manual_reset {
                signaled(lo)
            } else if pulsed && pulses(lo) > 0 {
                signaled(lo - PULSE_ONE)
            } else {
                None
            }
        }
        Kind::Semaphore => (lo > 0).then(|| Step {
            lo: lo - 1,
            acquired: Acquired::Signaled,
            effect: MutexEffect::None,
        }),
        Kind::Mutex => {
            let (acquired, effect) = match lo {
                0 => (Acquired::Signaled, MutexEffect::NewOwner),
                ABANDONED => (Acquired::Abandoned, MutexEffect::NewOwner),
                owner if owner == me.raw() => (Acquired::Signaled, MutexEffect::Recursion),
                _ => return None,
            };
            Some(Step {
                lo: me.raw(),
                acquired,
                effect,
            })
        }
        Kind::Timer { manual_reset } if lo & SIGNALED != 0 => {
            signaled(if manual_reset { lo } else { lo & !SIGNALED })
        }
        Kind::Timer { .. } => None,
        // An exited process or thread stays signaled; waiting takes nothing.
        Kind::Process | Kind::Thread | Kind::Job => (lo & SIGNALED != 0).then_some(Step {
            lo,
            acquired: Acquired::Signaled,
            effect: MutexEffect::None,
        }),
    }
}

/// Records what a successful take means beyond the state word (mutex owner
/// bookkeeping). Runs in the taking thread, which is then the owner.
#[inline]
pub(crate) fn complete(slot: &Slot, step: Step, me: &Actor) -> Result<(), Win32Error> {
    // Relaxed: only the owner reads the recursion count to decide anything,
    // and the owner fields are for display; the state word's CAS orders the
    // ownership itself.
    match step.effect {
        MutexEffect::None => {}
        MutexEffect::NewOwner => {
            slot.recursion.store(1, Relaxed);
            slot.owner_pid.store(me.pid, Relaxed);
            slot.owner_tid.store(me.tid, Relaxed);
        }
        MutexEffect::Recursion => {
            let depth = slot.recursion.load(Relaxed);
            if depth >= i32::MAX as u32 {
                return Err(ERROR_SIGNAL_REFCOUNT_EXCEEDED);
            }
            slot.recursion.store(depth + 1, Relaxed);
        }
    }
    Ok(())
}

/// Whether an armed timer has reached its due time (signaled or not: a
/// periodic timer that stays signaled still moves on to its next period).
pub(crate) fn timer_due(slot: &Slot) -> bool {
    let due = slot.due.load(SeqCst);
    due != 0 && clock::now() >= due
}

/// How long an operation may spin behind another thread's slot lock (held
/// for a few instructions by a wait-all, unless its process is stopped).
/// Whatever the patience, it first spins and yields for a while (tens of
/// microseconds): a lock held only for an instant must never make a poll
/// miss a signaled object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// As long as it takes (an untimed wait).
    Forever,
    /// Until this `CLOCK_MONOTONIC` instant (ns).
    Until(u64),
    /// Only that first while: for a fast path, which then leaves the rest
    /// to a full wait with its own deadline, and for each object of a
    /// multi-object wait, which must not wait long behind one of them.
    Brief,
    /// Not at all: give up at the first sight of another thread's lock (a
    /// multi-object wait that found one stuck already).
    Now,
}

/// Counts down a [`Patience`] while spinning.
struct Spin {
    backoff: Backoff,
    patience: Patience,
}

impl Spin {
    fn new(patience: Patience) -> Spin {
        Spin {
            backoff: Backoff::default(),
            patience,
        }
    }

    /// Waits a little; `false` once patience has run out.
    fn again(&mut self) -> bool {
        if self.patience == Patience::Now {
            return false;
        }
        if self.backoff.is_long() {
            let done = match self.patience {
                Patience::Forever => false,
                Patience::Until(deadline) => clock::now() >= deadline,
                Patience::Brief | Patience::Now => true,
            };
            if done {
                return false;
            }
        }
        self.backoff.snooze();
        true
    }
}

/// Takes one signal from the object if it has one, without sleeping. Respects
/// other threads' slot locks (a wait-all may be checking this object),
/// spinning behind one for no longer than `patience` allows (then `None`).
#[inline]
pub fn try_take(
    slot: &Slot,
    kind: Kind,
    me: &Actor,
    pulse_gen: Option<u32>,
    patience: Patience,
) -> Result<Option<Taken>, Win32Error> {
    Ok(
        match try_take_observing(slot, kind, me, pulse_gen, &mut 0, patience)? {
            Took::Taken(taken) => Some(taken),
            Took::Nothing | Took::GaveUp => None,
        },
    )
}

/// Takes a signal from a semaphore or an event, which no thread can own, so
/// that taking one needs no identity: one load and at most one
/// compare-and-swap. `false` when there is nothing to take, the slot is
/// locked (a wait-all is at work), the swap lost a race, or `kind` is
/// another kind: the caller then goes the full way ([`try_take`]).
#[inline(always)]
pub fn try_take_unowned(slot: &Slot, kind: Kind) -> bool {
    if !matches!(kind, Kind::Semaphore | Kind::Event { .. }) {
        return false;
    }
    let s = slot.state.load(SeqCst);
    if holder(s) != 0 {
        return false;
    }
    // Neither kind looks at the taker's token.
    let Some(step) = evaluate(kind, lo(s), None, Token(u32::MAX)) else {
        return false;
    };
    // A manual-reset event stays as it is: the load was the take.
    step.lo == lo(s)
        || slot
            .state
            .compare_exchange(s, with_lo(s, step.lo), SeqCst, SeqCst)
            .is_ok()
}

/// What [`try_take_observing`] did.
pub(crate) enum Took {
    Taken(Taken),
    /// Nothing to take in the state stored in `observed`.
    Nothing,
    /// Gave up behind another thread's lock: the state is unknown (the
    /// holder may let go without changing it), so the caller must not sleep
    /// on `observed`.
    GaveUp,
}

/// [`try_take`], storing in `observed` the state it found nothing to take
/// in: a waiter must sleep on exactly that value (sleeping on an older one
/// could miss a change that came and went in between). While another thread
/// holds the slot lock it spins, but only as `patience` allows: a lock
/// holder that is stopped (`SIGSTOP`, a debugger) must not stretch a timed
/// wait.
#[inline(always)]
pub(crate) fn try_take_observing(
    slot: &Slot,
    kind: Kind,
    me: &Actor,
    pulse_gen: Option<u32>,
    observed: &mut u32,
    patience: Patience,
) -> Result<Took, Win32Error> {
    let mut spin = Spin::new(patience);
    loop {
        let s = slot.state.load(SeqCst);
        let held = holder(s);
        if held != 0 && held != me.token.raw() {
            if !spin.again() {
                *observed = lo(s);
                return Ok(Took::GaveUp);
            }
            continue;
        }
        if matches!(kind, Kind::Timer { .. }) && timer_due(slot) {
            let _ = fire_due_timer(slot, me, held != 0, patience);
            continue;
        }
        let Some(step) = evaluate(kind, lo(s), pulse_gen, me.token) else {
            *observed = lo(s);
            return Ok(Took::Nothing);
        };
        if step.effect == MutexEffect::Recursion
            || slot
                .state
                .compare_exchange(s, with_lo(s, step.lo), SeqCst, SeqCst)
                .is_ok()
        {
            complete(slot, step, me)?;
            return Ok(Took::Taken(Taken {
                acquired: step.acquired,
                new_owner: step.effect == MutexEffect::NewOwner,
            }));
        }
        // Lost a race: fine, unless it keeps happening longer than
        // `patience` allows (a process rewriting the word on purpose).
        if !spin.again() {
            *observed = lo(s);
            return Ok(Took::GaveUp);
        }
    }
}

/// Takes the slot lock, spinning while another thread holds it, but no
/// longer than `patience` allows (then `false`, and the lock is not taken).
pub(crate) fn lock_within(slot: &Slot, me: &Actor, patience: Patience) -> bool {
    let mut spin = Spin::new(patience);
    loop {
        let s = slot.state.load(SeqCst);
        if holder(s) == 0
            && slot
                .state
                .compare_exchange(s, with_holder(s, me.token.raw()), SeqCst, SeqCst)
                .is_ok()
        {
            return true;
        }
        if !spin.again() {
            return false;
        }
    }
}

/// Releases the slot lock `me` holds.
pub(crate) fn unlock(slot: &Slot) {
    slot.state.fetch_and(LO, SeqCst);
}

/// Changes the low half of a slot `me` has locked (other threads may still
/// give signals meanwhile, so this is a CAS loop).
fn update_locked(slot: &Slot, f: impl Fn(u32) -> u32) {
    let _ = slot
        .state
        .fetch_update(SeqCst, SeqCst, |s| Some(with_lo(s, f(lo(s)))));
}

/// Fires a timer whose due time has passed: signals it (if it is not still
/// signaled) and moves a periodic timer's due time to its next period after
/// now; missed periods are not queued, as on Windows. `locked`: the caller
/// holds the slot lock already; else it is taken, within `patience` (or the
/// timer is left alone for now).
///
/// `false`: another thread held the lock past `patience`.
pub(crate) fn fire_due_timer(slot: &Slot, me: &Actor, locked: bool, patience: Patience) -> bool {
    if !locked && !lock_within(slot, me, patience) {
        return false;
    }
    let mut fired = false;
    if timer_due(slot) {
        let due = slot.due.load(SeqCst);
        let period = slot.period.load(SeqCst);
        // Checked: the slot is shared memory, and nothing in it may make
        // this overflow (period 0: one-shot; one too long to reach disarms).
        let next = clock::now()
            .saturating_sub(due)
            .checked_div(period)
            .and_then(|passed| period.checked_mul(passed + 1))
            .and_then(|ahead| due.checked_add(ahead))
            .unwrap_or(0);
        slot.due.store(next, SeqCst);
        fired = lo(slot.state.load(SeqCst)) & SIGNALED == 0;
        update_locked(slot, |lo| lo | SIGNALED);
    }
    if !locked {
        unlock(slot);
    }
    if fired {
        wake_all(slot);
    }
    true
}

/// `SetEvent`. A manual-reset event's generation moves too, so that threads
/// waiting now are released even if it is reset before they run.
#[inline]
pub fn set_event(slot: &Slot, manual_reset: bool) {
    if set_event_state(slot, manual_reset) {
        wake_all(slot);
    }
}

/// [`set_event`]'s change of state alone: true if its waiters are to be
/// woken ([`wake_waiters`]). The broker, which signals for other users'
/// threads, notes that it signaled between the two, so that a broker that
/// dies in between is known to have done it.
#[inline]
pub fn set_event_state(slot: &Slot, manual_reset: bool) -> bool {
    let before = if manual_reset {
        slot.state
            .fetch_update(SeqCst, SeqCst, |s| {
                let l = lo(s);
                (l & SIGNALED == 0).then(|| with_lo(s, l.wrapping_add(EVENT_GEN_ONE) | SIGNALED))
            })
            .unwrap_or_else(|s| s)
    } else {
        slot.state.fetch_or(u64::from(SIGNALED), SeqCst)
    };
    lo(before) & SIGNALED == 0
}

/// Wakes the threads sleeping on `slot` (after a change of state made with
/// one of the `*_state` functions).
pub fn wake_waiters(slot: &Slot) {
    wake_all(slot);
}

/// Changes an event's low half with `f`, waiting while a wait-all holds the
/// slot lock: a wait-all that found the event signaled must be able to take
/// it, so signals are only ever removed between wait-alls. `false`: another
/// thread held the lock longer than `patience` allows; nothing changed.
fn update_unlocked(slot: &Slot, patience: Patience, f: impl Fn(u32) -> u32) -> bool {
    let mut spin = Spin::new(patience);
    loop {
        let s = slot.state.load(SeqCst);
        if holder(s) != 0 {
            if !spin.again() {
                return false;
            }
            continue;
        }
        if slot
            .state
            .compare_exchange(s, with_lo(s, f(lo(s))), SeqCst, SeqCst)
            .is_ok()
        {
            return true;
        }
        if !spin.again() {
            return false;
        }
    }
}

/// `ResetEvent`. `false`: a slot lock was held past `patience`, nothing done.
#[inline]
pub fn reset_event(slot: &Slot, patience: Patience) -> bool {
    lo(slot.state.load(SeqCst)) & SIGNALED == 0
        || update_unlocked(slot, patience, |l| l & !SIGNALED)
}

/// `PulseEvent`: releases the threads waiting now (all of them for a
/// manual-reset event, one for an auto-reset event) and leaves the event
/// non-signaled. `false`: a slot lock was held past `patience`, nothing done.
pub fn pulse_event(slot: &Slot, manual_reset: bool, patience: Patience) -> bool {
    let done = update_unlocked(slot, patience, |l| {
        let next = event_gen(l).wrapping_add(EVENT_GEN_ONE);
        if manual_reset {
            next
        } else {
            // One more pulse to claim, but never more than threads waiting.
            let waiting = slot.waiters.load(SeqCst).min(PULSES / PULSE_ONE);
            next | ((pulses(l) + 1).min(waiting) * PULSE_ONE)
        }
    });
    if done {
        wake_all(slot);
    }
    done
}

/// `ReleaseSemaphore`: adds `count` (> 0) and returns the previous count;
/// fails with `ERROR_TOO_MANY_POSTS`, changing nothing, past the maximum.
#[inline]
pub fn release_semaphore(slot: &Slot, count: u32) -> Result<u32, Win32Error> {
    let before = release_semaphore_state(slot, count)?;
    wake_all(slot);
    Ok(before)
}

/// [`release_semaphore`]'s change of state alone (then [`wake_waiters`]).
#[inline]
pub fn release_semaphore_state(slot: &Slot, count: u32) -> Result<u32, Win32Error> {
    if count == 0 {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let maximum = slot.maximum.load(SeqCst);
    let before = slot
        .state
        .fetch_update(SeqCst, SeqCst, |s| {
            let current = lo(s);
            let next = u64::from(current) + u64::from(count);
            (next <= u64::from(maximum)).then(|| with_lo(s, next as u32))
        })
        .map_err(|_| ERROR_TOO_MANY_POSTS)?;
    Ok(lo(before))
}

/// `ReleaseMutex`. Returns true when the caller no longer owns the mutex
/// (its last recursion level was released).
#[inline]
pub fn release_mutex(slot: &Slot, me: &Actor) -> Result<bool, Win32Error> {
    let released = release_mutex_state(slot, me)?;
    if released {
        wake_all(slot);
    }
    Ok(released)
}

/// [`release_mutex`]'s change of state alone (then, when it returns true,
/// [`wake_waiters`]).
#[inline]
pub fn release_mutex_state(slot: &Slot, me: &Actor) -> Result<bool, Win32Error> {
    if lo(slot.state.load(SeqCst)) != me.token.raw() {
        return Err(ERROR_NOT_OWNER);
    }
    let depth = slot.recursion.load(Relaxed);
    if depth > 1 {
        slot.recursion.store(depth - 1, Relaxed);
        return Ok(false);
    }
    slot.recursion.store(0, Relaxed);
    slot.owner_pid.store(0, Relaxed);
    slot.owner_tid.store(0, Relaxed);
    // Only the owner changes an owned mutex's low half: clear it, keep any lock.
    slot.state.fetch_and(!LO, SeqCst);
    Ok(true)
}

/// The thread that owns mutex `slot`, if one does (none for another kind).
pub fn mutex_owner(slot: &Slot) -> Option<Token> {
    if Kind::from_code(slot.kind.load(SeqCst)) != Some(Kind::Mutex) {
        return None;
    }
    Token::from_raw(lo(slot.state.load(SeqCst)))
}

/// Abandons mutexes whose owner matches: the next thread to acquire one gets
/// `WAIT_ABANDONED`. Used when a thread exits holding a mutex.
pub fn abandon_mutex(slot: &Slot, owner: Token) -> bool {
    abandon_if(slot, |token| token == owner)
}

fn abandon_if(slot: &Slot, dead: impl Fn(Token) -> bool) -> bool {
    if Kind::from_code(slot.kind.load(SeqCst)) != Some(Kind::Mutex) {
        return false;
    }
    loop {
        let s = slot.state.load(SeqCst);
        if !Token::from_raw(lo(s)).is_some_and(&dead) {
            return false;
        }
        // Clear the owner's bookkeeping before the mutex can be taken: once
        // it reads ABANDONED, the next owner writes these fields.
        slot.recursion.store(0, SeqCst);
        slot.owner_pid.store(0, SeqCst);
        slot.owner_tid.store(0, SeqCst);
        if slot
            .state
            .compare_exchange(s, with_lo(s, ABANDONED), SeqCst, SeqCst)
            .is_ok()
        {
            break;
        }
    }
    wake_all(slot);
    true
}

/// Cleans up after a process that is gone (broker side): mutexes any of its
/// threads owned are abandoned and slot locks it held are released.
pub fn reap_client(slot: &Slot, tag: u16) {
    let dead = |raw: u32| Token::from_raw(raw).is_some_and(|t| t.tag() == tag);
    if dead(holder(slot.state.load(SeqCst))) {
        let _ = slot.state.fetch_update(SeqCst, SeqCst, |s| {
            dead(holder(s)).then(|| with_holder(s, 0))
        });
        wake_all(slot);
    }
    abandon_if(slot, |t| t.tag() == tag);
}

/// `SetWaitableTimer`: `due` in monotonic nanoseconds (see
/// [`clock::due_from_filetime`]), `period` in nanoseconds (0 = one-shot).
/// Resets the timer to non-signaled and re-arms it. `false`: another thread
/// held the slot lock past `patience`; nothing changed.
pub fn set_timer(slot: &Slot, me: &Actor, due: u64, period: u64, patience: Patience) -> bool {
    if !lock_within(slot, me, patience) {
        return false;
    }
    slot.due.store(due.max(1), SeqCst);
    slot.period.store(period, SeqCst);
    update_locked(slot, |lo| {
        (lo & !SIGNALED).wrapping_add(TIMER_GEN_ONE) & !SIGNALED
    });
    unlock(slot);
    wake_all(slot);
    true
}

/// `CancelWaitableTimer`: disarms the timer; its signaled state is
/// unchanged. `false`: a slot lock was held past `patience`, nothing done.
pub fn cancel_timer(slot: &Slot, me: &Actor, patience: Patience) -> bool {
    if !lock_within(slot, me, patience) {
        return false;
    }
    slot.due.store(0, SeqCst);
    slot.period.store(0, SeqCst);
    unlock(slot);
    true
}

/// The object's state word (the low half, the futex word): what a waiter
/// sleeps on and pulses count from.
pub fn state_word(slot: &Slot) -> u32 {
    lo(slot.state.load(SeqCst))
}

/// A snapshot of an object's state, for `objmgr ls`/`stat` and queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub kind: Kind,
    /// Whether a wait would be satisfied now (for a mutex: it is free).
    pub signaled: bool,
    /// Semaphore count and maximum; a process's or thread's exit code.
    pub count: u32,
    pub maximum: u32,
    /// Mutex owner (pid, tid) and recursion depth; abandoned and free.
    pub owner: Option<(u32, u32)>,
    pub recursion: u32,
    pub abandoned: bool,
    /// Timer due time (monotonic ns, 0 = not armed) and period (ns).
    pub due: u64,
    pub period: u64,
    pub waiters: u32,
}

/// Reads a slot's state without changing it. A timer past its due time reads
/// as signaled (timers fire lazily, when someone looks).
pub fn observe(slot: &Slot) -> Option<Observed> {
    let kind = Kind::from_code(slot.kind.load(SeqCst))?;
    let s = slot.state.load(SeqCst);
    let l = lo(s);
    let mut seen = Observed {
        kind,
        signaled: false,
        count: 0,
        maximum: 0,
        owner: None,
        recursion: 0,
        abandoned: false,
        due: slot.due.load(SeqCst),
        period: slot.period.load(SeqCst),
        waiters: slot.waiters.load(SeqCst),
    };
    match kind {
        Kind::Event { .. } => seen.signaled = l & SIGNALED != 0,
        Kind::Timer { .. } => seen.signaled = l & SIGNALED != 0 || timer_due(slot),
        Kind::Process | Kind::Thread | Kind::Job => {
            seen.signaled = l & SIGNALED != 0;
            seen.count = slot.maximum.load(SeqCst);
        }
        Kind::Semaphore => {
            seen.count = l;
            seen.maximum = slot.maximum.load(SeqCst);
            seen.signaled = l > 0;
        }
        Kind::Mutex => {
            seen.signaled = l == 0 || l == ABANDONED;
            seen.abandoned = l == ABANDONED;
            if !seen.signaled {
                seen.owner = Some((slot.owner_pid.load(SeqCst), slot.owner_tid.load(SeqCst)));
                seen.recursion = slot.recursion.load(SeqCst);
            }
        }
    }
    Some(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(tag: u16, thread: u32) -> Actor {
        Actor {
            token: Token::new(tag, thread).unwrap(),
            pid: 1,
            tid: thread,
        }
    }

    fn take(
        slot: &Slot,
        kind: Kind,
        me: &Actor,
        pulse_gen: Option<u32>,
    ) -> Result<Option<Acquired>, Win32Error> {
        try_take(slot, kind, me, pulse_gen, Patience::Forever).map(|t| t.map(|t| t.acquired))
    }

    fn slot_with(init: SyncInit) -> Slot {
        let slot = Slot::default();
        init_slot(&slot, init, Some(actor(1, 1)));
        slot
    }

    #[test]
    fn kind_codes_round_trip() {
        for kind in [
            Kind::Event { manual_reset: true },
            Kind::Event {
                manual_reset: false,
            },
            Kind::Mutex,
            Kind::Semaphore,
            Kind::Timer { manual_reset: true },
            Kind::Timer {
                manual_reset: false,
            },
        ] {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Kind::from_code(1), None); // a section
        assert_eq!(Kind::from_code(0x103), None); // a "manual-reset mutex"
    }

    #[test]
    fn tokens_never_collide_with_free_or_abandoned() {
        let t = Token::new(u16::MAX, Token::MAX_THREADS - 1).unwrap();
        assert_eq!(t.raw() & ABANDONED, 0);
        assert_eq!(t.tag(), u16::MAX);
        assert!(Token::new(0, 1).is_none());
        assert!(Token::new(1, Token::MAX_THREADS).is_none());
    }

    #[test]
    fn auto_reset_event_is_taken_once() {
        let me = actor(1, 1);
        let kind = Kind::Event {
            manual_reset: false,
        };
        let slot = slot_with(SyncInit::Event {
            manual_reset: false,
            signaled: true,
        });
        assert_eq!(take(&slot, kind, &me, None), Ok(Some(Acquired::Signaled)));
        assert_eq!(take(&slot, kind, &me, None), Ok(None));
        set_event(&slot, false);
        set_event(&slot, false);
        assert_eq!(take(&slot, kind, &me, None), Ok(Some(Acquired::Signaled)));
        assert_eq!(take(&slot, kind, &me, None), Ok(None));
    }

    #[test]
    fn pulse_releases_only_earlier_waiters() {
        let me = actor(1, 1);
        for manual_reset in [false, true] {
            let kind = Kind::Event { manual_reset };
            let slot = slot_with(SyncInit::Event {
                manual_reset,
                signaled: false,
            });
            // Three threads are waiting; two pulses come.
            slot.waiters.store(3, SeqCst);
            let before = event_gen(lo(slot.state.load(SeqCst)));
            assert!(pulse_event(&slot, manual_reset, Patience::Forever));
            assert!(pulse_event(&slot, manual_reset, Patience::Forever));
            let after = event_gen(lo(slot.state.load(SeqCst)));
            // A waiter that started after the pulses is not released.
            assert_eq!(take(&slot, kind, &me, Some(after)), Ok(None));
            // Those that were waiting before are: one per pulse if auto-reset.
            for _ in 0..2 {
                assert_eq!(
                    take(&slot, kind, &me, Some(before)),
                    Ok(Some(Acquired::Signaled))
                );
            }
            let third = take(&slot, kind, &me, Some(before));
            assert_eq!(third.unwrap().is_some(), manual_reset);
            assert!(!observe(&slot).unwrap().signaled);
        }
    }

    #[test]
    fn pulses_without_waiters_release_nobody_later() {
        let me = actor(1, 1);
        let kind = Kind::Event {
            manual_reset: false,
        };
        let slot = slot_with(SyncInit::Event {
            manual_reset: false,
            signaled: false,
        });
        let before = event_gen(lo(slot.state.load(SeqCst)));
        assert!(pulse_event(&slot, false, Patience::Forever));
        assert_eq!(take(&slot, kind, &me, Some(before)), Ok(None));
    }

    #[test]
    fn a_set_then_reset_still_releases_manual_reset_waiters() {
        let me = actor(1, 1);
        let kind = Kind::Event { manual_reset: true };
        let slot = slot_with(SyncInit::Event {
            manual_reset: true,
            signaled: false,
        });
        let before = event_gen(lo(slot.state.load(SeqCst)));
        set_event(&slot, true);
        assert!(reset_event(&slot, Patience::Forever));
        assert_eq!(
            take(&slot, kind, &me, Some(before)),
            Ok(Some(Acquired::Signaled))
        );
        let now = event_gen(lo(slot.state.load(SeqCst)));
        assert_eq!(take(&slot, kind, &me, Some(now)), Ok(None));
    }

    #[test]
    fn semaphore_counts_and_limits() {
        let me = actor(1, 1);
        let slot = slot_with(SyncInit::Semaphore {
            initial: 1,
            maximum: 3,
        });
        assert_eq!(release_semaphore(&slot, 2), Ok(1));
        assert_eq!(release_semaphore(&slot, 1), Err(ERROR_TOO_MANY_POSTS));
        assert_eq!(observe(&slot).unwrap().count, 3);
        for _ in 0..3 {
            assert!(take(&slot, Kind::Semaphore, &me, None).unwrap().is_some());
        }
        assert_eq!(take(&slot, Kind::Semaphore, &me, None), Ok(None));
        assert_eq!(release_semaphore(&slot, 0), Err(ERROR_INVALID_PARAMETER));
    }

    #[test]
    fn mutex_recursion_ownership_and_abandonment() {
        let a = actor(1, 1);
        let b = actor(1, 2);
        let other_process = actor(2, 1);
        let slot = slot_with(SyncInit::Mutex { owned: false });
        assert_eq!(
            take(&slot, Kind::Mutex, &a, None),
            Ok(Some(Acquired::Signaled))
        );
        assert_eq!(
            take(&slot, Kind::Mutex, &a, None),
            Ok(Some(Acquired::Signaled))
        );
        assert_eq!(take(&slot, Kind::Mutex, &b, None), Ok(None));
        assert_eq!(release_mutex(&slot, &b), Err(ERROR_NOT_OWNER));
        assert_eq!(release_mutex(&slot, &a), Ok(false));
        assert_eq!(release_mutex(&slot, &a), Ok(true));
        assert_eq!(release_mutex(&slot, &a), Err(ERROR_NOT_OWNER));
        // Owned by a process that dies: abandoned, and the next owner is told.
        assert!(take(&slot, Kind::Mutex, &b, None).unwrap().is_some());
        reap_client(&slot, 2); // someone else died: nothing happens
        assert!(!observe(&slot).unwrap().signaled);
        reap_client(&slot, 1);
        assert!(observe(&slot).unwrap().abandoned);
        assert_eq!(
            take(&slot, Kind::Mutex, &other_process, None),
            Ok(Some(Acquired::Abandoned))
        );
        assert_eq!(observe(&slot).unwrap().owner, Some((1, 1)));
        assert_eq!(release_mutex(&slot, &other_process), Ok(true));
        assert_eq!(
            take(&slot, Kind::Mutex, &a, None),
            Ok(Some(Acquired::Signaled))
        );
    }

    #[test]
    fn reaping_releases_a_dead_lock_holder() {
        let dead = actor(7, 3);
        let alive = actor(8, 1);
        let slot = slot_with(SyncInit::Semaphore {
            initial: 1,
            maximum: 1,
        });
        assert!(lock_within(&slot, &dead, Patience::Forever));
        reap_client(&slot, 7);
        assert_eq!(
            take(&slot, Kind::Semaphore, &alive, None),
            Ok(Some(Acquired::Signaled))
        );
    }

    #[test]
    fn timers_fire_lazily_and_keep_their_period() {
        let me = actor(1, 1);
        let kind = Kind::Timer {
            manual_reset: false,
        };
        let slot = slot_with(SyncInit::Timer {
            manual_reset: false,
        });
        assert_eq!(take(&slot, kind, &me, None), Ok(None));
        let now = clock::now();
        assert!(set_timer(
            &slot,
            &me,
            now - 1,
            1_000_000_000,
            Patience::Forever
        ));
        assert_eq!(take(&slot, kind, &me, None), Ok(Some(Acquired::Signaled)));
        assert_eq!(take(&slot, kind, &me, None), Ok(None));
        let next = slot.due.load(SeqCst);
        assert!(next > now && next <= now + 1_000_000_000);
        assert!(cancel_timer(&slot, &me, Patience::Forever));
        assert_eq!(slot.due.load(SeqCst), 0);
        assert_eq!(take(&slot, kind, &me, None), Ok(None));
    }
}
