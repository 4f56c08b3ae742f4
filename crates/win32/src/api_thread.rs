//! Thread control: `CREATE_SUSPENDED` with `ResumeThread`/`SuspendThread`,
//! asynchronous procedure calls (`QueueUserAPC`, run by the thread's next
//! alertable wait: `SleepEx`, `WaitFor*ObjectEx`, `SignalObjectAndWait`),
//! and `GetThreadId`.
//!
//! Each thread that can be suspended or that gets APCs has a [`Control`],
//! found by its Linux thread id:
//! - a suspend count, on which the thread sleeps (a futex) while it is
//!   above 0. A thread started suspended sleeps there before its start
//!   routine; another thread is stopped where it runs by a real-time signal
//!   whose handler sleeps there (`SIGRTMIN + 7`). Threads started by
//!   `CreateThread` and the calling thread can be suspended; others have no
//!   place to sleep and `SuspendThread` refuses them (`ERROR_NOT_SUPPORTED`).
//! - a queue of APCs and an auto-reset event that an alertable wait waits
//!   on beside its objects: `QueueUserAPC` queues, then sets the event.
//!
//! A process's main thread started with `CREATE_SUSPENDED` is stopped
//! before its program starts (see `api_process`); `ResumeThread` of it
//! continues the process.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use objmgr::handle::Object;
use objmgr::{Event, Reset};
use objmgr_proto::error::*;
use rustix::thread::futex;

use crate::api_sync::exports;
use crate::last_error::{fail, guard};
use crate::table::{self, Entry};
use crate::types::*;

/// What `ResumeThread`/`SuspendThread` return on failure.
const FAILED_COUNT: DWORD = u32::MAX;
/// Windows' limit on a suspend count (`MAXIMUM_SUSPEND_COUNT`).
const MAXIMUM_SUSPEND_COUNT: u32 = 127;
/// `WAIT_IO_COMPLETION`: an alertable wait ran APCs.
pub(crate) const WAIT_IO_COMPLETION: DWORD = 0xC0;

type ApcFn = unsafe extern "C" fn(usize);
/// A waitable timer's completion routine (`PTIMERAPCROUTINE`).
pub(crate) type TimerApcFn = unsafe extern "C" fn(*mut std::ffi::c_void, DWORD, DWORD);
/// A queued APC: the routine with its arguments.
type Apc = Box<dyn FnOnce() + Send>;

/// One thread's suspend count and APC queue.
pub(crate) struct Control {
    suspend: AtomicU32,
    apcs: Mutex<VecDeque<Apc>>,
    /// The auto-reset event its alertable waits include (made on first use).
    alert: OnceLock<Event>,
    /// Whether the thread itself registered (it can then be stopped where
    /// it runs: its signal handler finds this control).
    registered: AtomicBool,
}

impl Control {
    fn new(suspend: u32) -> Control {
        Control {
            suspend: AtomicU32::new(suspend),
            apcs: Mutex::new(VecDeque::new()),
            alert: OnceLock::new(),
            registered: AtomicBool::new(false),
        }
    }

    /// The event alertable waits include.
    pub(crate) fn alert(&self) -> Result<&Event, Win32Error> {
        if let Some(event) = self.alert.get() {
            return Ok(event);
        }
        let event = Event::create(None, Reset::Auto, false).map_err(|e| e.code())?;
        // Made by another thread meanwhile: that one stays, this one closes.
        Ok(self.alert.get_or_init(|| event))
    }

    /// Runs the queued APCs (also those they queue); whether any ran.
    pub(crate) fn run_pending(&self) -> bool {
        let mut ran = false;
        loop {
            let next = self
                .apcs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            let Some(apc) = next else {
                return ran;
            };
            apc();
            ran = true;
        }
    }

    /// Sleeps while the suspend count is above 0.
    /// Queues `apc` and wakes the thread's alertable wait, if any.
    fn queue(&self, apc: Apc) -> Result<(), Win32Error> {
        let alert = self.alert()?;
        self.apcs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(apc);
        alert.set().map_err(|e| e.code())
    }

    fn wait_while_suspended(&self) {
        loop {
            let count = self.suspend.load(Ordering::Acquire);
            if count == 0 {
                return;
            }
            let _ = futex::wait(&self.suspend, futex::Flags::PRIVATE, count, None);
        }
    }
}

/// Controls by Linux thread id.
static CONTROLS: Mutex<Option<HashMap<u32, Arc<Control>>>> = Mutex::new(None);

fn with_controls<T>(f: impl FnOnce(&mut HashMap<u32, Arc<Control>>) -> T) -> T {
    crate::fork::guard();
    let _unstoppable = NoSuspend::new();
    let mut controls = CONTROLS.lock().unwrap_or_else(|p| p.into_inner());
    f(controls.get_or_insert_with(HashMap::new))
}

/// The controls, locked (for the `fork()` handlers).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(CONTROLS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The control of thread `tid`, made if it has none.
fn control_of(tid: u32) -> Arc<Control> {
    with_controls(|c| {
        c.entry(tid)
            .or_insert_with(|| Arc::new(Control::new(0)))
            .clone()
    })
}

fn current_tid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// This thread's registration: its control's suspend count for the signal
/// handler, and the entry it removes when the thread ends.
struct Registration(u32);

impl Drop for Registration {
    fn drop(&mut self) {
        SUSPEND_WORD.set(std::ptr::null());
        with_controls(|c| c.remove(&self.0));
    }
}

thread_local! {
    static REGISTRATION: RefCell<Option<Registration>> = const { RefCell::new(None) };
    /// The suspend count the signal handler sleeps on (const-initialized,
    /// no destructor: safe to read in a signal handler).
    static SUSPEND_WORD: Cell<*const AtomicU32> = const { Cell::new(std::ptr::null()) };
}

/// Makes `control` the calling thread's (registered under its id).
fn register(control: &Arc<Control>) {
    let tid = current_tid();
    with_controls(|c| c.insert(tid, control.clone()));
    SUSPEND_WORD.set(&control.suspend);
    control.registered.store(true, Ordering::Release);
    let _ = REGISTRATION.try_with(|r| *r.borrow_mut() = Some(Registration(tid)));
}

/// The calling thread's control, registered.
pub(crate) fn current() -> Arc<Control> {
    let control = control_of(current_tid());
    if !control.registered.load(Ordering::Acquire) {
        register(&control);
    }
    control
}

/// A control for a thread `CreateThread` is about to start (suspended, or
/// not), which the thread adopts with [`adopt`] before its routine.
pub(crate) fn for_new_thread(suspended: bool) -> Arc<Control> {
    Arc::new(Control::new(u32::from(suspended)))
}

/// Run by a new thread first: makes `control` its own.
pub(crate) fn adopt(control: &Arc<Control>) {
    register(control);
}

/// Run by a new thread after [`adopt`]: waits while it is suspended.
pub(crate) fn wait_until_resumed(control: &Control) {
    control.wait_while_suspended();
}

/// The Linux thread id and process id a thread handle names; refused for a
/// thread that exited when it must be `live` (its id may be another's now).
fn thread_of(h: HANDLE, live: bool) -> Result<(u32, u32), Win32Error> {
    if h == CURRENT_THREAD {
        return Ok((current_tid(), std::process::id()));
    }
    let entry = table::object(h)?;
    match &*entry {
        // An exited thread's id may belong to another thread by now.
        Entry::Object(Object::Thread(t))
            if live
                && t.exit_code()
                    .is_ok_and(|c| c != objmgr_proto::process::STILL_ACTIVE) =>
        {
            Err(ERROR_INVALID_HANDLE)
        }
        Entry::Object(Object::Thread(t)) => match t.thread_id() {
            0 => Err(ERROR_INVALID_HANDLE),
            tid => Ok((tid, t.process_id())),
        },
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

/// The real-time signal that stops a running thread.
fn suspend_signal() -> i32 {
    libc::SIGRTMIN() + 7
}

extern "C" fn on_suspend_signal(_: i32) {
    // SAFETY: errno is per thread; saved and restored around the futex.
    let errno = unsafe { *libc::__errno_location() };
    let word = SUSPEND_WORD.with(Cell::get);
    // SAFETY: set by `register` to the suspend count of this thread's
    // control, which the map keeps alive while the thread is registered.
    if let Some(word) = unsafe { word.as_ref() } {
        loop {
            let count = word.load(Ordering::Acquire);
            if count == 0 {
                break;
            }
            let _ = futex::wait(word, futex::Flags::PRIVATE, count, None);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Whether the suspend signal's handler is installed (then locks that
/// `ResumeThread` takes are held with the signal blocked).
static HANDLER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Blocks the suspend signal in this thread while it lives: held around
/// the library's locks that `ResumeThread` (and `fork`) need, so that a
/// thread is never stopped holding one (which would leave its resumer
/// waiting for it for ever). Free until a thread was first suspended.
pub(crate) struct NoSuspend(Option<libc::sigset_t>);

impl NoSuspend {
    pub(crate) fn new() -> NoSuspend {
        if !HANDLER_INSTALLED.load(Ordering::Acquire) {
            return NoSuspend(None);
        }
        // SAFETY: builds a signal set on the stack and changes this
        // thread's mask, keeping the old one to restore.
        unsafe {
            let mut block: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut block);
            libc::sigaddset(&mut block, suspend_signal());
            if libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old) != 0 {
                return NoSuspend(None);
            }
            NoSuspend(Some(old))
        }
    }
}

impl Drop for NoSuspend {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the mask saved by `new` (a pending suspend
            // signal is delivered now, outside the lock).
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
        }
    }
}

/// Installs the suspend signal's handler once (only where the program has
/// none of its own).
fn install_handler() -> Result<(), Win32Error> {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let ok = *INSTALLED.get_or_init(|| {
        // SAFETY: reads the current action of a real-time signal.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above; NULL new action only queries.
        if unsafe { libc::sigaction(suspend_signal(), std::ptr::null(), &mut old) } != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return false;
        }
        // SAFETY: a zeroed sigaction is valid; the handler only reads a
        // thread-local pointer and waits on a futex.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_suspend_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: installs that handler for the library's own signal.
        let installed =
            unsafe { libc::sigaction(suspend_signal(), &action, std::ptr::null_mut()) == 0 };
        HANDLER_INSTALLED.store(installed, Ordering::Release);
        installed
    });
    if ok { Ok(()) } else { Err(ERROR_NOT_SUPPORTED) }
}

fn suspend(h: HANDLE) -> DWORD {
    let (tid, pid) = match thread_of(h, true) {
        Ok(ids) => ids,
        Err(code) => return fail(code, FAILED_COUNT),
    };
    if pid != std::process::id() {
        return crate::api_process::suspend_child(pid, tid);
    }
    let me = tid == current_tid();
    let control = if me { current() } else { control_of(tid) };
    if !me && !control.registered.load(Ordering::Acquire) {
        // No handler could find its suspend count: nothing to stop it with.
        return fail(ERROR_NOT_SUPPORTED, FAILED_COUNT);
    }
    let previous = match control
        .suspend
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAXIMUM_SUSPEND_COUNT).then_some(n + 1)
        }) {
        Ok(previous) => previous,
        Err(_) => return fail(ERROR_SIGNAL_REFCOUNT_EXCEEDED, FAILED_COUNT),
    };
    if me {
        control.wait_while_suspended();
    } else if previous == 0 {
        let undo = |code| {
            let _ = control
                .suspend
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            fail(code, FAILED_COUNT)
        };
        if let Err(code) = install_handler() {
            return undo(code);
        }
        // SAFETY: a signal to a thread of this process, whose handler was
        // installed above.
        if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, suspend_signal()) } != 0 {
            return undo(ERROR_INVALID_HANDLE);
        }
    }
    previous
}

fn resume(h: HANDLE) -> DWORD {
    let (tid, pid) = match thread_of(h, true) {
        Ok(ids) => ids,
        Err(code) => return fail(code, FAILED_COUNT),
    };
    if pid != std::process::id() {
        return crate::api_process::resume_child(pid, tid);
    }
    let Some(control) = with_controls(|c| c.get(&tid).cloned()) else {
        return 0; // never suspended
    };
    let previous = control
        .suspend
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .unwrap_or(0);
    if previous == 1 {
        let _ = futex::wake(&control.suspend, futex::Flags::PRIVATE, i32::MAX as u32);
    }
    previous
}

fn queue_apc(routine: Option<ApcFn>, h: HANDLE, data: usize) -> DWORD {
    let Some(routine) = routine else {
        return fail(ERROR_INVALID_PARAMETER, 0);
    };
    let (tid, pid) = match thread_of(h, true) {
        Ok(ids) => ids,
        Err(code) => return fail(code, 0),
    };
    if pid != std::process::id() {
        // The routine is an address in that process: objmgr cannot run it there.
        return fail(ERROR_NOT_SUPPORTED, 0);
    }
    let control = if tid == current_tid() {
        current()
    } else {
        control_of(tid)
    };
    // SAFETY: the caller's APC routine with its own argument, run in the
    // thread it was queued to, as Windows runs it.
    let apc: Apc = Box::new(move || unsafe { routine(data) });
    match control.queue(apc) {
        Ok(()) => 1,
        Err(code) => fail(code, 0),
    }
}

/// A running completion routine of a waitable timer: stopped when the
/// timer is set again, cancelled or closed (through the same handle).
struct TimerRoutine {
    stopped: Mutex<bool>,
    wake: std::sync::Condvar,
    /// An APC of this timer waits to run: Windows queues no second one.
    queued: AtomicBool,
}

static TIMER_ROUTINES: Mutex<Option<HashMap<usize, Arc<TimerRoutine>>>> = Mutex::new(None);

/// The key of a timer handle: its value without the two low bits, which
/// Windows leaves to the application.
fn timer_key(h: HANDLE) -> usize {
    h as usize & !3
}

/// The timer routines, locked (for the `fork()` handlers: `CloseHandle`
/// takes the lock, and a child forked while another thread held it would
/// wait for it forever).
pub(crate) fn lock_timers_for_fork() -> Box<dyn std::any::Any> {
    Box::new(TIMER_ROUTINES.lock().unwrap_or_else(|p| p.into_inner()))
}

/// In a forked child: the parent's timer routines, whose threads the child
/// does not have (a routine's own lock may have been held by one of them
/// at the fork), are none of the child's.
pub(crate) fn forget_timer_routines() {
    drop(
        TIMER_ROUTINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    );
}

/// Stops the completion routine started through timer handle `h`, if any.
pub(crate) fn stop_timer_routine(h: HANDLE) {
    crate::fork::guard();
    let routine = TIMER_ROUTINES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .remove(&timer_key(h));
    if let Some(routine) = routine {
        *routine.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        routine.wake.notify_all();
    }
}

/// `SetWaitableTimer`'s completion routine: queued as an APC to the calling
/// thread each time the timer comes due (`due` as `SetWaitableTimer` takes
/// it: negative relative, positive absolute, in 100 ns), with the time it
/// came due as a `FILETIME`. It runs in that thread's alertable waits.
pub(crate) fn start_timer_routine(
    h: HANDLE,
    due: i64,
    period_ms: u32,
    routine: TimerApcFn,
    argument: usize,
) -> Result<(), Win32Error> {
    stop_timer_routine(h);
    let target = current();
    target.alert()?; // made now: the timer thread only queues
    let first = if due < 0 {
        std::time::Duration::from_nanos(due.unsigned_abs().saturating_mul(100))
    } else {
        std::time::Duration::from_nanos(
            (due.saturating_sub(crate::api_time::now_ticks()).max(0) as u64).saturating_mul(100),
        )
    };
    let state = Arc::new(TimerRoutine {
        stopped: Mutex::new(false),
        wake: std::sync::Condvar::new(),
        queued: AtomicBool::new(false),
    });
    TIMER_ROUTINES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(timer_key(h), state.clone());
    let period = std::time::Duration::from_millis(u64::from(period_ms));
    std::thread::Builder::new()
        .name("objmgr-timer-apc".into())
        .spawn(move || {
            let mut next = std::time::Instant::now() + first;
            loop {
                let mut stopped = state.stopped.lock().unwrap_or_else(|p| p.into_inner());
                while !*stopped {
                    let left = next.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    stopped = state
                        .wake
                        .wait_timeout(stopped, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                if *stopped {
                    return;
                }
                drop(stopped);
                let when = crate::api_time::now_ticks();
                if !state.queued.swap(true, Ordering::AcqRel) {
                    let pending = state.clone();
                    // SAFETY: the caller's completion routine with its own
                    // argument, run in the thread that set the timer.
                    let apc: Apc = Box::new(move || unsafe {
                        pending.queued.store(false, Ordering::Release);
                        routine(
                            argument as *mut std::ffi::c_void,
                            when as u32,
                            (when >> 32) as u32,
                        )
                    });
                    if target.queue(apc).is_err() {
                        return;
                    }
                }
                if period.is_zero() {
                    return;
                }
                next += period;
            }
        })
        .map(drop)
        .map_err(|_| ERROR_NOT_ENOUGH_MEMORY)
}

fn thread_id(h: HANDLE) -> DWORD {
    match thread_of(h, false) {
        Ok((tid, _)) => tid,
        Err(code) => fail(code, 0),
    }
}

exports! {
    fn ResumeThread(h: HANDLE) -> DWORD = FAILED_COUNT => resume(h);
    fn SuspendThread(h: HANDLE) -> DWORD = FAILED_COUNT => suspend(h);
    fn QueueUserAPC(routine: Option<ApcFn>, h: HANDLE, data: usize) -> DWORD = 0 => queue_apc(routine, h, data);
    fn GetThreadId(h: HANDLE) -> DWORD = 0 => thread_id(h);
}
