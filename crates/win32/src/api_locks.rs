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
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use objmgr_proto::Win32Error;
use objmgr_proto::error::*;
use objmgr_proto::sync::INFINITE;
use rustix::thread::futex;

use crate::api_sync::exports;
use crate::ffi;
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

/// `RTL_CRITICAL_SECTION_FLAG_FORCE_DEBUG_INFO`: a real debug block.
const FORCE_DEBUG_INFO: DWORD = 0x1000_0000;
/// What `DebugInfo` holds without one (Windows 8 and later).
const NO_DEBUG_INFO: *mut c_void = usize::MAX as *mut c_void;
/// `sizeof(RTL_CRITICAL_SECTION_DEBUG)` on LP64.
const DEBUG_INFO_SIZE: usize = 48;

unsafe fn initialize_section(cs: *mut CRITICAL_SECTION, spin: usize, flags: DWORD) -> BOOL {
    if cs.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let debug_info = if flags & FORCE_DEBUG_INFO != 0 {
        let block = crate::api_heap::alloc(DEBUG_INFO_SIZE, true);
        if block.is_null() {
            return FALSE;
        }
        // SAFETY: a zeroed block of the debug structure's size, whose second
        // field points back to its section.
        unsafe { block.cast::<*mut c_void>().add(1).write(cs.cast()) };
        block
    } else {
        NO_DEBUG_INFO
    };
    let value = CRITICAL_SECTION {
        DebugInfo: debug_info,
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

/// `DeleteCriticalSection`: frees a forced debug block.
unsafe fn delete_section(cs: *mut CRITICAL_SECTION) {
    if cs.is_null() {
        return;
    }
    // SAFETY: a CRITICAL_SECTION per the Win32 contract.
    let debug_info = unsafe { (*cs).DebugInfo };
    if !debug_info.is_null() && debug_info != NO_DEBUG_INFO {
        // SAFETY: made by `initialize_section` with the heap allocator.
        unsafe { crate::api_heap::free(debug_info) };
    }
    // SAFETY: as above.
    unsafe { (*cs).DebugInfo = std::ptr::null_mut() };
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

/// The words of unaligned lock objects, by address.
static UNALIGNED: std::sync::Mutex<Option<HashMap<usize, &'static [AtomicU32; 2]>>> =
    std::sync::Mutex::new(None);

/// The unaligned objects' table, locked (for the `fork()` handlers).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(UNALIGNED.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Forgets the thread id cached before a `fork()` (the child's thread has
/// its own).
pub(crate) fn forget_thread_id() {
    let _ = THREAD_ID.try_with(|id| id.set(0));
}

/// The two 32-bit words of an `SRWLOCK` or `CONDITION_VARIABLE` (each one
/// pointer): in the object itself when it is aligned, as it is unless a
/// packed structure holds it; otherwise in words of their own kept for that
/// address (futexes need alignment), made on first use and never freed.
///
/// # Safety
/// `p` is NULL or points to such an object, which lives as long as the call.
unsafe fn words<'a>(p: *mut c_void) -> Option<&'a [AtomicU32; 2]> {
    if p.is_null() {
        return None;
    }
    if (p as usize).is_multiple_of(std::mem::align_of::<usize>()) {
        // SAFETY: per the contract: one aligned pointer-sized object.
        return Some(unsafe { &*p.cast::<[AtomicU32; 2]>() });
    }
    crate::fork::guard();
    let mut table = UNALIGNED.lock().unwrap_or_else(|e| e.into_inner());
    let words = table
        .get_or_insert_with(HashMap::new)
        .entry(p as usize)
        .or_insert_with(|| Box::leak(Box::new([AtomicU32::new(0), AtomicU32::new(0)])));
    Some(*words)
}

/// An `SRWLOCK`: its state word and the count of writers waiting for it.
struct Srw<'a> {
    state: &'a AtomicU32,
    writers_waiting: &'a AtomicU32,
}

/// # Safety
/// As [`words`].
unsafe fn srw<'a>(p: *mut c_void) -> Option<Srw<'a>> {
    // SAFETY: per the contract.
    unsafe { words(p) }.map(|[state, writers_waiting]| Srw {
        state,
        writers_waiting,
    })
}

/// # Safety
/// As [`words`].
unsafe fn word<'a>(p: *mut c_void) -> Option<&'a AtomicU32> {
    // SAFETY: per the contract.
    unsafe { words(p) }.map(|[first, _]| first)
}

const SRW_SLEEPERS: u32 = 1 << 31;
const SRW_VALUE: u32 = !SRW_SLEEPERS;
const SRW_WRITER: u32 = SRW_VALUE;

impl Srw<'_> {
    /// Takes the lock if it is free for this mode: a reader also waits
    /// for writers already waiting (writers are preferred, as on Windows).
    fn try_acquire(&self, exclusive: bool) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let value = s & SRW_VALUE;
            let next = if exclusive {
                if value != 0 {
                    return false;
                }
                s | SRW_WRITER
            } else {
                if value >= SRW_WRITER - 1 || self.writers_waiting.load(Ordering::Relaxed) != 0 {
                    return false;
                }
                s + 1
            };
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    fn acquire(&self, exclusive: bool) {
        if self.try_acquire(exclusive) {
            return;
        }
        if exclusive {
            self.writers_waiting.fetch_add(1, Ordering::Relaxed);
        }
        while !self.try_acquire(exclusive) {
            let s = self.state.fetch_or(SRW_SLEEPERS, Ordering::Relaxed) | SRW_SLEEPERS;
            let value = s & SRW_VALUE;
            let busy = if exclusive {
                value != 0
            } else {
                value >= SRW_WRITER - 1 || self.writers_waiting.load(Ordering::Relaxed) != 0
            };
            if busy {
                sleep_on(self.state, s, None);
            }
        }
        if exclusive {
            // Readers held back for it go on once it leaves (its release
            // wakes them).
            self.writers_waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn release(&self, exclusive: bool) {
        let before = if exclusive {
            self.state.fetch_and(SRW_SLEEPERS, Ordering::Release)
        } else {
            self.state.fetch_sub(1, Ordering::Release)
        };
        let last = exclusive || before & SRW_VALUE == 1;
        if last && before & SRW_SLEEPERS != 0 {
            // Everybody looks again; those still blocked set the bit anew.
            self.state.fetch_and(!SRW_SLEEPERS, Ordering::Relaxed);
            wake(self.state, i32::MAX as u32);
        }
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
/// A blocking initialization runs; others wait.
const ONCE_SYNC: usize = 1;
const ONCE_DONE: usize = 2;
/// Asynchronous initializations run (any may complete it).
const ONCE_ASYNC: usize = 3;
const ONCE_STATE: usize = 3;
/// `InitOnceBeginInitialize` flags.
const INIT_ONCE_CHECK_ONLY: DWORD = 1;
const INIT_ONCE_ASYNC: DWORD = 2;
/// `InitOnceComplete` flag.
const INIT_ONCE_INIT_FAILED: DWORD = 4;

type InitOnceFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut *mut c_void) -> BOOL;

/// The `INIT_ONCE` at `once`: its whole value, and its first 32 bits (which
/// hold the state on this little-endian ABI) for sleeping on.
///
/// # Safety
/// `once` is NULL or points to an `INIT_ONCE` that lives as long as the call.
unsafe fn once_words<'a>(once: *mut c_void) -> Option<(&'a AtomicUsize, &'a AtomicU32)> {
    if once.is_null() || !(once as usize).is_multiple_of(std::mem::align_of::<usize>()) {
        return None;
    }
    // SAFETY: per the contract, aligned for both.
    unsafe { Some((&*once.cast::<AtomicUsize>(), &*once.cast::<AtomicU32>())) }
}

/// `InitOnceBeginInitialize`: `Ok(None)` when this caller is to initialize
/// (pending), `Ok(Some(context))` when it is done.
fn begin_once(
    state: &AtomicUsize,
    low: &AtomicU32,
    flags: DWORD,
) -> Result<Option<usize>, Win32Error> {
    if flags & !(INIT_ONCE_CHECK_ONLY | INIT_ONCE_ASYNC) != 0
        || flags == INIT_ONCE_CHECK_ONLY | INIT_ONCE_ASYNC
    {
        return Err(ERROR_INVALID_PARAMETER);
    }
    loop {
        let s = state.load(Ordering::Acquire);
        match (s & ONCE_STATE, flags) {
            (ONCE_DONE, _) => return Ok(Some(s & !ONCE_STATE)),
            (_, INIT_ONCE_CHECK_ONLY) => return Err(ERROR_GEN_FAILURE),
            (ONCE_IDLE, 0) | (ONCE_IDLE, INIT_ONCE_ASYNC) => {
                let next = if flags == 0 { ONCE_SYNC } else { ONCE_ASYNC };
                if state
                    .compare_exchange(s, next, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(None);
                }
            }
            (ONCE_ASYNC, INIT_ONCE_ASYNC) => return Ok(None),
            (ONCE_SYNC, 0) => sleep_on(low, s as u32, None),
            _ => return Err(ERROR_INVALID_PARAMETER), // sync and async mixed
        }
    }
}

/// `InitOnceComplete`.
fn complete_once(
    state: &AtomicUsize,
    low: &AtomicU32,
    flags: DWORD,
    context: usize,
) -> Result<(), Win32Error> {
    if flags & !(INIT_ONCE_ASYNC | INIT_ONCE_INIT_FAILED) != 0
        || flags == INIT_ONCE_ASYNC | INIT_ONCE_INIT_FAILED
        || context & ONCE_STATE != 0
        || (flags & INIT_ONCE_INIT_FAILED != 0 && context != 0)
    {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let s = state.load(Ordering::Acquire);
    let expected = if flags & INIT_ONCE_ASYNC != 0 {
        ONCE_ASYNC
    } else {
        ONCE_SYNC
    };
    match s & ONCE_STATE {
        current if current == expected => {}
        ONCE_DONE if flags & INIT_ONCE_ASYNC != 0 => return Err(ERROR_ALREADY_EXISTS),
        ONCE_IDLE | ONCE_DONE => return Err(ERROR_GEN_FAILURE),
        _ => return Err(ERROR_INVALID_PARAMETER),
    }
    let end = if flags & INIT_ONCE_INIT_FAILED != 0 {
        ONCE_IDLE
    } else {
        context | ONCE_DONE
    };
    match state.compare_exchange(s, end, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            wake(low, i32::MAX as u32);
            Ok(())
        }
        // Another asynchronous initializer completed first.
        Err(_) => Err(ERROR_ALREADY_EXISTS),
    }
}

unsafe fn begin_initialize(
    once: *mut c_void,
    flags: DWORD,
    pending: *mut BOOL,
    context: *mut *mut c_void,
) -> BOOL {
    // SAFETY: an INIT_ONCE per the Win32 contract.
    let Some((state, low)) = (unsafe { once_words(once) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    match begin_once(state, low, flags) {
        Ok(done) => {
            // SAFETY: NULL or writable per the Win32 contract.
            unsafe {
                ffi::put(pending, BOOL::from(done.is_none()));
                if let Some(made) = done {
                    ffi::put(context, made as *mut c_void);
                }
            }
            TRUE
        }
        Err(code) => fail(code, FALSE),
    }
}

unsafe fn complete(once: *mut c_void, flags: DWORD, context: *mut c_void) -> BOOL {
    // SAFETY: an INIT_ONCE per the Win32 contract.
    let Some((state, low)) = (unsafe { once_words(once) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    match complete_once(state, low, flags, context as usize) {
        Ok(()) => TRUE,
        Err(code) => fail(code, FALSE),
    }
}

/// Runs `init` once per `once` (a blocking initialization); every other
/// caller waits for it and gets the context it stored. The callback gets
/// the caller's context pointer, as on Windows; a failed callback leaves the
/// object to be initialized again and the last error as the callback left it.
unsafe fn execute_once(
    once: *mut c_void,
    init: Option<InitOnceFn>,
    parameter: *mut c_void,
    context: *mut *mut c_void,
) -> BOOL {
    // SAFETY: an INIT_ONCE per the Win32 contract.
    let (Some((state, low)), Some(init)) = (unsafe { once_words(once) }, init) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    match begin_once(state, low, 0) {
        Ok(Some(made)) => {
            // SAFETY: NULL or writable per the Win32 contract.
            unsafe { ffi::put(context, made as *mut c_void) };
            TRUE
        }
        Ok(None) => {
            // SAFETY: the caller's callback, with the arguments Windows
            // passes it.
            let ok = unsafe { init(once, parameter, context) };
            if ok == FALSE {
                let _ = complete_once(state, low, INIT_ONCE_INIT_FAILED, 0);
                return FALSE;
            }
            // SAFETY: NULL or readable per the Win32 contract.
            let made = unsafe { ffi::get(context.cast_const()) }.map_or(0, |p| p as usize);
            match complete_once(state, low, 0, made & !ONCE_STATE) {
                Ok(()) => TRUE,
                Err(code) => fail(code, FALSE),
            }
        }
        Err(code) => fail(code, FALSE),
    }
}

exports! {
    fn InitializeCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => { initialize_section(cs, 0, 0); };
    fn InitializeCriticalSectionAndSpinCount(cs: *mut CRITICAL_SECTION, spin: DWORD) -> BOOL = FALSE
        => initialize_section(cs, spin as usize, 0);
    fn InitializeCriticalSectionEx(cs: *mut CRITICAL_SECTION, spin: DWORD, flags: DWORD) -> BOOL = FALSE
        => initialize_section(cs, spin as usize, flags);
    fn SetCriticalSectionSpinCount(cs: *mut CRITICAL_SECTION, spin: DWORD) -> DWORD = 0
        => match section(cs) {
            Some(cs) => cs.SpinCount.swap(spin as usize & SPIN_COUNT_MASK, Ordering::Relaxed) as DWORD,
            None => 0,
        };
    fn DeleteCriticalSection(cs: *mut CRITICAL_SECTION) -> () = () => delete_section(cs);
    fn EnterCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => if let Some(cs) = section(cs) { enter(cs, thread_id()) };
    fn TryEnterCriticalSection(cs: *mut CRITICAL_SECTION) -> BOOL = FALSE
        => section(cs).map_or(FALSE, |cs| try_enter(cs, thread_id()));
    fn LeaveCriticalSection(cs: *mut CRITICAL_SECTION) -> () = ()
        => if let Some(cs) = section(cs) { leave(cs) };

    fn InitializeSRWLock(lock: *mut c_void) -> () = ()
        => if let Some(l) = srw(lock) { l.state.store(0, Ordering::Relaxed); l.writers_waiting.store(0, Ordering::Relaxed) };
    fn AcquireSRWLockExclusive(lock: *mut c_void) -> () = ()
        => if let Some(l) = srw(lock) { l.acquire(true) };
    fn AcquireSRWLockShared(lock: *mut c_void) -> () = ()
        => if let Some(l) = srw(lock) { l.acquire(false) };
    fn ReleaseSRWLockExclusive(lock: *mut c_void) -> () = ()
        => if let Some(l) = srw(lock) { l.release(true) };
    fn ReleaseSRWLockShared(lock: *mut c_void) -> () = ()
        => if let Some(l) = srw(lock) { l.release(false) };
    fn TryAcquireSRWLockExclusive(lock: *mut c_void) -> u8 = 0
        => srw(lock).map_or(0, |l| u8::from(l.try_acquire(true)));
    fn TryAcquireSRWLockShared(lock: *mut c_void) -> u8 = 0
        => srw(lock).map_or(0, |l| u8::from(l.try_acquire(false)));

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
        => match (word(cv), srw(lock)) {
            (Some(cv), Some(lock)) => {
                let exclusive = flags & LOCKMODE_SHARED == 0;
                sleep_condition(cv, ms, || lock.release(exclusive), || lock.acquire(exclusive))
            }
            _ => fail(ERROR_INVALID_PARAMETER, FALSE),
        };

    fn InitOnceInitialize(once: *mut c_void) -> () = ()
        => if let Some(state) = once.cast::<AtomicUsize>().as_ref() { state.store(ONCE_IDLE, Ordering::Relaxed) };
    fn InitOnceExecuteOnce(once: *mut c_void, init: Option<InitOnceFn>, parameter: *mut c_void, context: *mut *mut c_void) -> BOOL = FALSE
        => execute_once(once, init, parameter, context);
    fn InitOnceBeginInitialize(once: *mut c_void, flags: DWORD, pending: *mut BOOL, context: *mut *mut c_void) -> BOOL = FALSE
        => begin_initialize(once, flags, pending, context);
    fn InitOnceComplete(once: *mut c_void, flags: DWORD, context: *mut c_void) -> BOOL = FALSE
        => complete(once, flags, context);
}
