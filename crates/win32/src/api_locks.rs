//! In-process locks: `CRITICAL_SECTION`, `SRWLOCK`, `CONDITION_VARIABLE` and
//! `InitOnceExecuteOnce`. They live in the caller's memory, laid out as in
//! the SDK, and wait on private futexes: no broker, no handle, no system call
//! when uncontended.
//!
//! - A critical section is a three-state futex lock (free, held, held with
//!   waiters) in `LockCount`, owned per thread (`OwningThread`, recursive by
//!   `RecursionCount`), spinning `SpinCount` times before it sleeps.
//! - A slim reader/writer lock is one 32-bit word in the first half of its
//!   pointer: a reader count or the writer mark, and a bit saying that
//!   somebody sleeps on it.
//! - A condition variable is a 32-bit sequence number: a sleeper notes it,
//!   releases its lock and sleeps while it is unchanged; a wake bumps it.
//! - A one-time initialization keeps its state in the two low bits of its
//!   pointer and the context in the others, as Windows does.
#![allow(non_snake_case, non_camel_case_types, clippy::missing_safety_doc)]

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use objmgr_proto::error::*;
use objmgr_proto::sync::INFINITE;
use rustix::thread::futex;

use crate::api_sync::exports;
use crate::last_error::{fail, guard};
use crate::types::*;

/// `RTL_CRITICAL_SECTION` as the SDK lays it out (40 bytes on LP64).
#[repr(C)]
pub struct CRITICAL_SECTION {
    DebugInfo: *mut c_void,
    /// 0 free, 1 held, 2 held with sleepers.
    LockCount: AtomicU32,
    RecursionCount: AtomicI32,
    OwningThread: AtomicUsize,
    LockSemaphore: *mut c_void,
    SpinCount: AtomicUsize,
}

const FREE: u32 = 0;
const HELD: u32 = 1;
const CONTENDED: u32 = 2;
/// Windows' default spin count is 0 on one CPU and the caller's choice
/// otherwise; the high bit of the documented value is a flag, not a count.
const SPIN_COUNT_MASK: usize = 0x00FF_FFFF;

thread_local! {
    /// This thread's id, read without a system call after the first time.
    static THREAD_ID: Cell<usize> = const { Cell::new(0) };
}

fn thread_id() -> usize {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            id.set(rustix::thread::gettid().as_raw_nonzero().get() as usize);
        }
        id.get()
    })
}

/// Sleeps while `word` holds `expected` (or until `deadline`); spurious
/// returns are allowed, the callers look again.
fn sleep_on(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let timeout = match deadline {
        None => None,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            Some(rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            })
        }
    };
    let _ = futex::wait(word, futex::Flags::PRIVATE, expected, timeout.as_ref());
}

fn wake(word: &AtomicU32, count: u32) {
    let _ = futex::wake(word, futex::Flags::PRIVATE, count);
}

fn deadline_after(ms: DWORD) -> Option<Instant> {
    (ms != INFINITE).then(|| Instant::now() + Duration::from_millis(u64::from(ms)))
}

/// The critical section at `cs`.
///
/// # Safety
/// `cs` points to a `CRITICAL_SECTION` that lives as long as the call.
unsafe fn section<'a>(cs: *mut CRITICAL_SECTION) -> Option<&'a CRITICAL_SECTION> {
    // SAFETY: per the contract; all fields touched concurrently are atomics.
    unsafe { cs.as_ref() }
}

unsafe fn initialize_section(cs: *mut CRITICAL_SECTION, spin: usize) -> BOOL {
    if cs.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let value = CRITICAL_SECTION {
        DebugInfo: std::ptr::null_mut(),
        LockCount: AtomicU32::new(FREE),
        RecursionCount: AtomicI32::new(0),
        OwningThread: AtomicUsize::new(0),
        LockSemaphore: std::ptr::null_mut(),
        SpinCount: AtomicUsize::new(spin & SPIN_COUNT_MASK),
    };
    // SAFETY: `cs` points to writable memory for a CRITICAL_SECTION.
    unsafe { cs.write(value) };
    TRUE
}

/// Takes the section for this thread: recursion for its owner, a spin
/// then a sleep for the others.
fn enter(cs: &CRITICAL_SECTION, me: usize) {
    if cs.OwningThread.load(Ordering::Relaxed) == me {
        cs.RecursionCount.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if cs
        .LockCount
        .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        enter_contended(cs);
    }
    cs.OwningThread.store(me, Ordering::Relaxed);
    cs.RecursionCount.store(1, Ordering::Relaxed);
}

#[cold]
fn enter_contended(cs: &CRITICAL_SECTION) {
    for _ in 0..cs.SpinCount.load(Ordering::Relaxed) {
        if cs.LockCount.load(Ordering::Relaxed) == FREE
            && cs
                .LockCount
                .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        std::hint::spin_loop();
    }
    // Held with sleepers from now on: whoever leaves wakes one.
    while cs.LockCount.swap(CONTENDED, Ordering::Acquire) != FREE {
        sleep_on(&cs.LockCount, CONTENDED, None);
    }
}

fn try_enter(cs: &CRITICAL_SECTION, me: usize) -> BOOL {
    if cs.OwningThread.load(Ordering::Relaxed) == me {
        cs.RecursionCount.fetch_add(1, Ordering::Relaxed);
        return TRUE;
    }
    if cs
        .LockCount
        .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return FALSE;
    }
    cs.OwningThread.store(me, Ordering::Relaxed);
    cs.RecursionCount.store(1, Ordering::Relaxed);
    TRUE
}

fn leave(cs: &CRITICAL_SECTION) {
    if cs.RecursionCount.fetch_sub(1, Ordering::Relaxed) > 1 {
        return;
    }
    cs.OwningThread.store(0, Ordering::Relaxed);
    if cs.LockCount.swap(FREE, Ordering::Release) == CONTENDED {
        wake(&cs.LockCount, 1);
    }
}

/// The 32-bit word of an `SRWLOCK`, `CONDITION_VARIABLE` or `INIT_ONCE`
/// (each one pointer, of which the first half is used).
///
/// # Safety
/// `p` points to such an object, which lives as long as the call.
unsafe fn word<'a>(p: *mut c_void) -> Option<&'a AtomicU32> {
    // SAFETY: per the contract; the object is pointer-sized and aligned.
    unsafe { p.cast::<AtomicU32>().as_ref() }
}

const SRW_SLEEPERS: u32 = 1 << 31;
const SRW_VALUE: u32 = !SRW_SLEEPERS;
const SRW_WRITER: u32 = SRW_VALUE;

fn srw_try(lock: &AtomicU32, exclusive: bool) -> bool {
    let mut s = lock.load(Ordering::Relaxed);
    loop {
        let value = s & SRW_VALUE;
        let next = if exclusive {
            if value != 0 {
                return false;
            }
            s | SRW_WRITER
        } else {
            if value >= SRW_WRITER - 1 {
                return false;
            }
            s + 1
        };
        match lock.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => s = now,
        }
    }
}

fn srw_acquire(lock: &AtomicU32, exclusive: bool) {
    while !srw_try(lock, exclusive) {
        let s = lock.fetch_or(SRW_SLEEPERS, Ordering::Relaxed) | SRW_SLEEPERS;
        let value = s & SRW_VALUE;
        let busy = if exclusive {
            value != 0
        } else {
            value >= SRW_WRITER - 1
        };
        if busy {
            sleep_on(lock, s, None);
        }
    }
}

fn srw_release(lock: &AtomicU32, exclusive: bool) {
    let before = if exclusive {
        lock.fetch_and(SRW_SLEEPERS, Ordering::Release)
    } else {
        lock.fetch_sub(1, Ordering::Release)
    };
    let last = exclusive || before & SRW_VALUE == 1;
    if last && before & SRW_SLEEPERS != 0 {
        // Everybody looks again; those still blocked set the bit anew.
        lock.fetch_and(!SRW_SLEEPERS, Ordering::Relaxed);
        wake(lock, i32::MAX as u32);
    }
}

/// Sleeps on `cv` having released a lock with `release`; takes it again
/// with `reacquire`. FALSE with `ERROR_TIMEOUT` when `ms` passed.
fn sleep_condition(
    cv: &AtomicU32,
    ms: DWORD,
    release: impl FnOnce(),
    reacquire: impl FnOnce(),
) -> BOOL {
    let seen = cv.load(Ordering::Acquire);
    let deadline = deadline_after(ms);
    release();
    sleep_on(cv, seen, deadline);
    reacquire();
    let woken = cv.load(Ordering::Acquire) != seen;
    if !woken && deadline.is_some_and(|d| Instant::now() >= d) {
        return fail(ERROR_TIMEOUT, FALSE);
    }
    TRUE
}

fn wake_condition(cv: &AtomicU32, all: bool) {
    cv.fetch_add(1, Ordering::Release);
    wake(cv, if all { i32::MAX as u32 } else { 1 });
}

/// `CONDITION_VARIABLE_LOCKMODE_SHARED`.
const LOCKMODE_SHARED: ULONG = 1;

const ONCE_IDLE: usize = 0;
const ONCE_RUNNING: usize = 1;
const ONCE_DONE: usize = 2;
const ONCE_STATE: usize = 3;

type InitOnceFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut *mut c_void) -> BOOL;

/// Runs `init` once per `once`; every other caller waits for it and gets
/// the context it stored.
unsafe fn execute_once(
    once: *mut c_void,
    init: Option<InitOnceFn>,
    parameter: *mut c_void,
    context: *mut *mut c_void,
) -> BOOL {
    // SAFETY: `once` points to an INIT_ONCE (one pointer) per the contract.
    let (Some(state), Some(init)) = (unsafe { once.cast::<AtomicUsize>().as_ref() }, init) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    // SAFETY: the same object, its first 32 bits (where the state bits are
    // on this little-endian ABI) are what the sleepers wait on.
    let Some(low) = (unsafe { word(once) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    loop {
        let s = state.load(Ordering::Acquire);
        match s & ONCE_STATE {
            ONCE_DONE => {
                if !context.is_null() {
                    // SAFETY: a writable pointer per the contract.
                    unsafe { context.write((s & !ONCE_STATE) as *mut c_void) };
                }
                return TRUE;
            }
            ONCE_IDLE => {
                if state
                    .compare_exchange(s, ONCE_RUNNING, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                let mut made: *mut c_void = std::ptr::null_mut();
                // SAFETY: the caller's callback, with the arguments Windows
                // passes it.
                let ok = unsafe { init(once, parameter, &mut made) };
                let end = if ok != FALSE {
                    (made as usize & !ONCE_STATE) | ONCE_DONE
                } else {
                    ONCE_IDLE
                };
                state.store(end, Ordering::Release);
                wake(low, i32::MAX as u32);
                if ok == FALSE {
                    return FALSE;
                }
                if !context.is_null() {
                    // SAFETY: as above.
                    unsafe { context.write(made) };
                }
                return TRUE;
            }
            _ => sleep_on(low, s as u32, None),
        }
    }
}

exports! {
    fn InitializeCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => { initialize_section(cs, 0); };
    fn InitializeCriticalSectionAndSpinCount(cs: *mut CRITICAL_SECTION, spin: DWORD) -> BOOL = FALSE
        => initialize_section(cs, spin as usize);
    fn InitializeCriticalSectionEx(cs: *mut CRITICAL_SECTION, spin: DWORD, flags: DWORD) -> BOOL = FALSE
        => { let _ = flags; initialize_section(cs, spin as usize) };
    fn SetCriticalSectionSpinCount(cs: *mut CRITICAL_SECTION, spin: DWORD) -> DWORD = 0
        => match section(cs) {
            Some(cs) => cs.SpinCount.swap(spin as usize & SPIN_COUNT_MASK, Ordering::Relaxed) as DWORD,
            None => 0,
        };
    fn DeleteCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => { initialize_section(cs, 0); };
    fn EnterCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => if let Some(cs) = section(cs) { enter(cs, thread_id()) };
    fn TryEnterCriticalSection(cs: *mut CRITICAL_SECTION) -> BOOL = FALSE
        => section(cs).map_or(FALSE, |cs| try_enter(cs, thread_id()));
    fn LeaveCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => if let Some(cs) = section(cs) { leave(cs) };

    fn InitializeSRWLock(lock: *mut c_void) -> () = ()
        => if let Some(w) = word(lock) { w.store(0, Ordering::Relaxed) };
    fn AcquireSRWLockExclusive(lock: *mut c_void) -> () = ()
        => if let Some(w) = word(lock) { srw_acquire(w, true) };
    fn AcquireSRWLockShared(lock: *mut c_void) -> () = ()
        => if let Some(w) = word(lock) { srw_acquire(w, false) };
    fn ReleaseSRWLockExclusive(lock: *mut c_void) -> () = ()
        => if let Some(w) = word(lock) { srw_release(w, true) };
    fn ReleaseSRWLockShared(lock: *mut c_void) -> () = ()
        => if let Some(w) = word(lock) { srw_release(w, false) };
    fn TryAcquireSRWLockExclusive(lock: *mut c_void) -> u8 = 0
        => word(lock).map_or(0, |w| u8::from(srw_try(w, true)));
    fn TryAcquireSRWLockShared(lock: *mut c_void) -> u8 = 0
        => word(lock).map_or(0, |w| u8::from(srw_try(w, false)));

    fn InitializeConditionVariable(cv: *mut c_void) -> () = ()
        => if let Some(w) = word(cv) { w.store(0, Ordering::Relaxed) };
    fn WakeConditionVariable(cv: *mut c_void) -> () = ()
        => if let Some(w) = word(cv) { wake_condition(w, false) };
    fn WakeAllConditionVariable(cv: *mut c_void) -> () = ()
        => if let Some(w) = word(cv) { wake_condition(w, true) };
    fn SleepConditionVariableCS(cv: *mut c_void, cs: *mut CRITICAL_SECTION, ms: DWORD) -> BOOL = FALSE
        => match (word(cv), section(cs)) {
            (Some(cv), Some(cs)) => {
                // The whole recursion is given up and taken back, as on Windows.
                let me = thread_id();
                let depth = cs.RecursionCount.load(Ordering::Relaxed);
                sleep_condition(
                    cv,
                    ms,
                    || { cs.RecursionCount.store(1, Ordering::Relaxed); leave(cs) },
                    || { enter(cs, me); cs.RecursionCount.store(depth, Ordering::Relaxed) },
                )
            }
            _ => fail(ERROR_INVALID_PARAMETER, FALSE),
        };
    fn SleepConditionVariableSRW(cv: *mut c_void, lock: *mut c_void, ms: DWORD, flags: ULONG) -> BOOL = FALSE
        => match (word(cv), word(lock)) {
            (Some(cv), Some(lock)) => {
                let exclusive = flags & LOCKMODE_SHARED == 0;
                sleep_condition(cv, ms, || srw_release(lock, exclusive), || srw_acquire(lock, exclusive))
            }
            _ => fail(ERROR_INVALID_PARAMETER, FALSE),
        };

    fn InitOnceInitialize(once: *mut c_void) -> () = ()
        => if let Some(state) = once.cast::<AtomicUsize>().as_ref() { state.store(ONCE_IDLE, Ordering::Relaxed) };
    fn InitOnceExecuteOnce(once: *mut c_void, init: Option<InitOnceFn>, parameter: *mut c_void, context: *mut *mut c_void) -> BOOL = FALSE
        => execute_once(once, init, parameter, context);
}
