//! Encodings of the 64-bit state word (see the crate docs).

/// The low half: object state and futex word.
pub(crate) const LO: u64 = 0xFFFF_FFFF;

pub(crate) const fn lo(s: u64) -> u32 {
    s as u32
}

/// The token of the thread holding the slot's lock, or 0.
pub(crate) const fn holder(s: u64) -> u32 {
    (s >> 32) as u32
}

pub(crate) const fn with_lo(s: u64, lo: u32) -> u64 {
    (s & !LO) | lo as u64
}

pub(crate) const fn with_holder(s: u64, holder: u32) -> u64 {
    (s & LO) | ((holder as u64) << 32)
}

// Events and timers: bit 0 is the signaled state.
pub(crate) const SIGNALED: u32 = 1;
// Events: unclaimed pulses of an auto-reset event, bits 1..8 (at most one
// per registered waiter, so at most 127).
pub(crate) const PULSE_ONE: u32 = 2;
pub(crate) const PULSES: u32 = 0xFE;
// Events: the generation, bits 8..32. It changes when a pulse happens and
// when a manual-reset event becomes signaled, so a waiter that slept through
// a short-lived signal still sees that it happened.
pub(crate) const EVENT_GEN_ONE: u32 = 1 << 8;
// Timers: the set generation, bits 1..32; it changes on every SetWaitableTimer
// so that sleeping waiters wake and take the new due time.
pub(crate) const TIMER_GEN_ONE: u32 = 2;

pub(crate) const fn event_gen(lo: u32) -> u32 {
    lo & !(SIGNALED | PULSES)
}

pub(crate) const fn pulses(lo: u32) -> u32 {
    (lo & PULSES) / PULSE_ONE
}

// Mutexes: the low half is the owner's token (never 0), or 0 when free, or
// ABANDONED when free because its owner died holding it.
pub(crate) const ABANDONED: u32 = 1 << 31;
