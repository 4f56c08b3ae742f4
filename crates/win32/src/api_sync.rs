//! Synchronization: `CreateMutex`, `CreateEvent`, `CreateSemaphore`,
//! `CreateWaitableTimer` (A/W and `Ex`), `Open*`, the signal functions,
//! `WaitForSingleObject(Ex)`, `WaitForMultipleObjects(Ex)`,
//! `SignalObjectAndWait`.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_char;
use std::time::Duration;

use objmgr::by_value;
use objmgr::handle::Object;
use objmgr::{CreateOptions, Error, Event, Mutex, Reset, Semaphore, WaitOutcome, WaitableTimer};
use objmgr_proto::Win32Error;
use objmgr_proto::access::{
    EVENT_ALL_ACCESS, MUTEX_ALL_ACCESS, SEMAPHORE_ALL_ACCESS, TIMER_ALL_ACCESS,
};
use objmgr_proto::error::*;
use objmgr_proto::sync::{
    CREATE_EVENT_INITIAL_SET, CREATE_EVENT_MANUAL_RESET, CREATE_MUTEX_INITIAL_OWNER,
    CREATE_WAITABLE_TIMER_MANUAL_RESET, INFINITE, MAXIMUM_WAIT_OBJECTS, WAIT_ABANDONED_0,
    WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};

use crate::ffi::{self, handle_value};
use crate::last_error::{SetLastError, fail, guard, or_fail};
use crate::table::{self, Entry};
use crate::types::*;

/// Names arrive as ANSI or UTF-16; creators share everything else.
pub(crate) enum Name {
    Ansi(*const c_char),
    Wide(*const WCHAR),
}

impl Name {
    /// The name (`None` for NULL), exactly as given: one that is not valid
    /// UTF-8 (A functions) or UTF-16 (W functions, unpaired surrogates) is
    /// `ERROR_INVALID_NAME`, so that two different names never open the
    /// same object.
    ///
    /// # Safety
    /// The pointer is NULL or a NUL-terminated string.
    pub(crate) unsafe fn read(self) -> Result<Option<String>, Win32Error> {
        // SAFETY: per this function's contract.
        let exact = unsafe {
            match self {
                Name::Ansi(p) => ffi::ansi_exact(p),
                Name::Wide(p) => ffi::wide_exact(p),
            }
        };
        exact.map_err(|()| ERROR_INVALID_NAME)
    }
}

/// `bInheritHandle` of optional security attributes.
pub(crate) unsafe fn inheritable(attributes: *const SECURITY_ATTRIBUTES) -> bool {
    // SAFETY: NULL or a valid SECURITY_ATTRIBUTES per the Win32 contract.
    !attributes.is_null() && unsafe { (*attributes).bInheritHandle } != 0
}

/// What every `Create*` shares: read the name and the inherit flag, create,
/// register the handle, and set the last error as `Create*` does
/// (`ERROR_ALREADY_EXISTS` when the name existed, else 0).
///
/// # Safety
/// `attrs` and the name are NULL or valid, per the Win32 contract.
pub(crate) unsafe fn create<T>(
    attrs: *const SECURITY_ATTRIBUTES,
    name: Name,
    access: u32,
    make: impl FnOnce(Option<&str>, &CreateOptions) -> Result<T, Error>,
    existed: impl FnOnce(&T) -> bool,
    wrap: impl FnOnce(T) -> Object,
) -> HANDLE {
    // SAFETY: per this function's contract.
    let (inherit, name) = unsafe { (inheritable(attrs), name.read()) };
    let name = match name {
        Ok(name) => name,
        Err(code) => return fail(code, std::ptr::null_mut()),
    };
    // SAFETY: per this function's contract.
    let security = match unsafe { crate::api_security::requested_security(attrs) } {
        Ok(security) => security,
        Err(code) => return fail(code, std::ptr::null_mut()),
    };
    let options = CreateOptions {
        inheritable: inherit,
        access: Some(access),
        security,
    };
    match make(name.as_deref(), &options) {
        Ok(object) => created(existed(&object), wrap(object)),
        Err(e) => fail(e.code(), std::ptr::null_mut()),
    }
}

/// The end of every successful `Create*`: `GetLastError` says whether the
/// name existed (`ERROR_ALREADY_EXISTS`) or not (0), and the handle.
pub(crate) fn created(existed: bool, object: Object) -> HANDLE {
    SetLastError(if existed {
        ERROR_ALREADY_EXISTS.code()
    } else {
        0
    });
    table::insert_object(object)
}

fn reset(manual: bool) -> Reset {
    if manual { Reset::Manual } else { Reset::Auto }
}

unsafe fn create_mutex(
    attrs: *const SECURITY_ATTRIBUTES,
    owned: bool,
    name: Name,
    access: u32,
) -> HANDLE {
    // SAFETY: the caller passes the Win32 arguments through.
    unsafe {
        create(
            attrs,
            name,
            access,
            |n, o| Mutex::create_with(n, owned, o),
            Mutex::existed,
            Object::Mutex,
        )
    }
}

unsafe fn create_event(
    attrs: *const SECURITY_ATTRIBUTES,
    manual: bool,
    initial: bool,
    name: Name,
    access: u32,
) -> HANDLE {
    let make =
        |n: Option<&str>, o: &CreateOptions| Event::create_with(n, reset(manual), initial, o);
    // SAFETY: the caller passes the Win32 arguments through.
    unsafe { create(attrs, name, access, make, Event::existed, Object::Event) }
}

unsafe fn create_semaphore(
    attrs: *const SECURITY_ATTRIBUTES,
    initial: LONG,
    maximum: LONG,
    name: Name,
    access: u32,
) -> HANDLE {
    if initial < 0 || maximum <= 0 || initial > maximum {
        return fail(ERROR_INVALID_PARAMETER, std::ptr::null_mut());
    }
    let make = |n: Option<&str>, o: &CreateOptions| {
        Semaphore::create_with(n, initial as u32, maximum as u32, o)
    };
    // SAFETY: the caller passes the Win32 arguments through.
    unsafe {
        create(
            attrs,
            name,
            access,
            make,
            Semaphore::existed,
            Object::Semaphore,
        )
    }
}

unsafe fn create_timer(
    attrs: *const SECURITY_ATTRIBUTES,
    manual: bool,
    name: Name,
    access: u32,
) -> HANDLE {
    let make = |n: Option<&str>, o: &CreateOptions| WaitableTimer::create_with(n, reset(manual), o);
    // SAFETY: the caller passes the Win32 arguments through.
    unsafe {
        create(
            attrs,
            name,
            access,
            make,
            WaitableTimer::existed,
            Object::WaitableTimer,
        )
    }
}

/// `Open*`: a NULL name is `ERROR_INVALID_PARAMETER`, as on Windows.
pub(crate) unsafe fn open_named<T>(
    name: Name,
    open: impl FnOnce(&str) -> Result<T, Error>,
    wrap: impl FnOnce(T) -> Object,
) -> HANDLE {
    // SAFETY: the caller passes the Win32 name through.
    let name = match unsafe { name.read() } {
        Ok(Some(name)) => name,
        Ok(None) => return fail(ERROR_INVALID_PARAMETER, std::ptr::null_mut()),
        Err(code) => return fail(code, std::ptr::null_mut()),
    };
    match open(&name) {
        Ok(object) => table::insert_object(wrap(object)),
        Err(e) => fail(e.code(), std::ptr::null_mut()),
    }
}

macro_rules! exports {
    ($( $(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $fallback:expr => $body:expr; )*) => {
        $(
            $(#[$m])*
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
                guard($fallback, || {
                    // SAFETY: the C caller passes arguments per the Win32
                    // contract of this function.
                    #[allow(unused_unsafe)]
                    unsafe { $body }
                })
            }
        )*
    };
}
pub(crate) use exports;

const NULL: HANDLE = std::ptr::null_mut();

exports! {
    fn CreateMutexA(a: *const SECURITY_ATTRIBUTES, owned: BOOL, name: *const c_char) -> HANDLE = NULL
        => create_mutex(a, owned != 0, Name::Ansi(name), MUTEX_ALL_ACCESS);
    fn CreateMutexW(a: *const SECURITY_ATTRIBUTES, owned: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => create_mutex(a, owned != 0, Name::Wide(name), MUTEX_ALL_ACCESS);
    fn CreateMutexExA(a: *const SECURITY_ATTRIBUTES, name: *const c_char, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => create_mutex(a, flags & CREATE_MUTEX_INITIAL_OWNER != 0, Name::Ansi(name), access);
    fn CreateMutexExW(a: *const SECURITY_ATTRIBUTES, name: *const WCHAR, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => create_mutex(a, flags & CREATE_MUTEX_INITIAL_OWNER != 0, Name::Wide(name), access);
    fn OpenMutexA(access: DWORD, inherit: BOOL, name: *const c_char) -> HANDLE = NULL
        => open_named(Name::Ansi(name), |n| Mutex::open_with(n, access, inherit != 0), Object::Mutex);
    fn OpenMutexW(access: DWORD, inherit: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => open_named(Name::Wide(name), |n| Mutex::open_with(n, access, inherit != 0), Object::Mutex);

    fn CreateEventA(a: *const SECURITY_ATTRIBUTES, manual: BOOL, initial: BOOL, name: *const c_char) -> HANDLE = NULL
        => create_event(a, manual != 0, initial != 0, Name::Ansi(name), EVENT_ALL_ACCESS);
    fn CreateEventW(a: *const SECURITY_ATTRIBUTES, manual: BOOL, initial: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => create_event(a, manual != 0, initial != 0, Name::Wide(name), EVENT_ALL_ACCESS);
    fn CreateEventExA(a: *const SECURITY_ATTRIBUTES, name: *const c_char, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => create_event(a, flags & CREATE_EVENT_MANUAL_RESET != 0, flags & CREATE_EVENT_INITIAL_SET != 0, Name::Ansi(name), access);
    fn CreateEventExW(a: *const SECURITY_ATTRIBUTES, name: *const WCHAR, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => create_event(a, flags & CREATE_EVENT_MANUAL_RESET != 0, flags & CREATE_EVENT_INITIAL_SET != 0, Name::Wide(name), access);
    fn OpenEventA(access: DWORD, inherit: BOOL, name: *const c_char) -> HANDLE = NULL
        => open_named(Name::Ansi(name), |n| Event::open_with(n, access, inherit != 0), Object::Event);
    fn OpenEventW(access: DWORD, inherit: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => open_named(Name::Wide(name), |n| Event::open_with(n, access, inherit != 0), Object::Event);

    fn CreateSemaphoreA(a: *const SECURITY_ATTRIBUTES, initial: LONG, maximum: LONG, name: *const c_char) -> HANDLE = NULL
        => create_semaphore(a, initial, maximum, Name::Ansi(name), SEMAPHORE_ALL_ACCESS);
    fn CreateSemaphoreW(a: *const SECURITY_ATTRIBUTES, initial: LONG, maximum: LONG, name: *const WCHAR) -> HANDLE = NULL
        => create_semaphore(a, initial, maximum, Name::Wide(name), SEMAPHORE_ALL_ACCESS);
    fn CreateSemaphoreExA(a: *const SECURITY_ATTRIBUTES, initial: LONG, maximum: LONG, name: *const c_char, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => if flags != 0 { fail(ERROR_INVALID_PARAMETER, NULL) } else { create_semaphore(a, initial, maximum, Name::Ansi(name), access) };
    fn CreateSemaphoreExW(a: *const SECURITY_ATTRIBUTES, initial: LONG, maximum: LONG, name: *const WCHAR, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => if flags != 0 { fail(ERROR_INVALID_PARAMETER, NULL) } else { create_semaphore(a, initial, maximum, Name::Wide(name), access) };
    fn OpenSemaphoreA(access: DWORD, inherit: BOOL, name: *const c_char) -> HANDLE = NULL
        => open_named(Name::Ansi(name), |n| Semaphore::open_with(n, access, inherit != 0), Object::Semaphore);
    fn OpenSemaphoreW(access: DWORD, inherit: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => open_named(Name::Wide(name), |n| Semaphore::open_with(n, access, inherit != 0), Object::Semaphore);

    fn CreateWaitableTimerA(a: *const SECURITY_ATTRIBUTES, manual: BOOL, name: *const c_char) -> HANDLE = NULL
        => create_timer(a, manual != 0, Name::Ansi(name), TIMER_ALL_ACCESS);
    fn CreateWaitableTimerW(a: *const SECURITY_ATTRIBUTES, manual: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => create_timer(a, manual != 0, Name::Wide(name), TIMER_ALL_ACCESS);
    fn CreateWaitableTimerExA(a: *const SECURITY_ATTRIBUTES, name: *const c_char, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => create_timer(a, flags & CREATE_WAITABLE_TIMER_MANUAL_RESET != 0, Name::Ansi(name), access);
    fn CreateWaitableTimerExW(a: *const SECURITY_ATTRIBUTES, name: *const WCHAR, flags: DWORD, access: DWORD) -> HANDLE = NULL
        => create_timer(a, flags & CREATE_WAITABLE_TIMER_MANUAL_RESET != 0, Name::Wide(name), access);
    fn OpenWaitableTimerA(access: DWORD, inherit: BOOL, name: *const c_char) -> HANDLE = NULL
        => open_named(Name::Ansi(name), |n| WaitableTimer::open_with(n, access, inherit != 0), Object::WaitableTimer);
    fn OpenWaitableTimerW(access: DWORD, inherit: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => open_named(Name::Wide(name), |n| WaitableTimer::open_with(n, access, inherit != 0), Object::WaitableTimer);

    fn SetEvent(h: HANDLE) -> BOOL = FALSE => event_op(h, Event::set);
    fn ResetEvent(h: HANDLE) -> BOOL = FALSE => event_op(h, Event::reset);
    fn PulseEvent(h: HANDLE) -> BOOL = FALSE => event_op(h, Event::pulse);
    fn ReleaseMutex(h: HANDLE) -> BOOL = FALSE => release_mutex(h);
    fn ReleaseSemaphore(h: HANDLE, count: LONG, previous: *mut LONG) -> BOOL = FALSE
        => release_semaphore(h, count, previous);
    fn SetWaitableTimer(h: HANDLE, due: *const i64, period: LONG, routine: Option<crate::api_thread::TimerApcFn>, arg: *const std::ffi::c_void, resume: BOOL) -> BOOL = FALSE
        => set_timer(h, due, period, routine, arg, resume);
    fn CancelWaitableTimer(h: HANDLE) -> BOOL = FALSE => {
        crate::api_thread::stop_timer_routine(h);
        with_object(h, |o| match o {
            Object::WaitableTimer(t) => t.cancel(),
            _ => Err(Error::new(ERROR_INVALID_HANDLE, "not a waitable timer")),
        })
    };

    fn WaitForSingleObject(h: HANDLE, ms: DWORD) -> DWORD = WAIT_FAILED => wait_single(h, ms);
    fn WaitForSingleObjectEx(h: HANDLE, ms: DWORD, alertable: BOOL) -> DWORD = WAIT_FAILED
        => if alertable != 0 { wait_alertable(&[h], false, ms) } else { wait_single(h, ms) };
    fn WaitForMultipleObjects(n: DWORD, handles: *const HANDLE, all: BOOL, ms: DWORD) -> DWORD = WAIT_FAILED
        => wait_multiple(n, handles, all != 0, ms, false);
    fn WaitForMultipleObjectsEx(n: DWORD, handles: *const HANDLE, all: BOOL, ms: DWORD, alertable: BOOL) -> DWORD = WAIT_FAILED
        => wait_multiple(n, handles, all != 0, ms, alertable != 0);
    fn SignalObjectAndWait(signal: HANDLE, wait_on: HANDLE, ms: DWORD, alertable: BOOL) -> DWORD = WAIT_FAILED
        => signal_and_wait(signal, wait_on, ms, alertable != 0);
}

/// Runs `op` on the object behind `h`; `TRUE` or `FALSE` with the error.
fn with_object(h: HANDLE, op: impl FnOnce(&Object) -> Result<(), Error>) -> BOOL {
    or_fail(on_object(h, op).map(|()| TRUE), FALSE)
}

/// Runs `op` on the object behind `h` in the handle table: the way for a
/// handle not published to [`by_value`] (kept out of line, so that the
/// published case stays small).
#[inline(never)]
fn on_object<T>(h: HANDLE, op: impl FnOnce(&Object) -> Result<T, Error>) -> Result<T, Error> {
    table::with_entry(h, |entry| match entry {
        Entry::Object(object) => op(object),
        Entry::File(_) => Err(Error::new(ERROR_INVALID_HANDLE, "a file handle")),
    })
    .unwrap_or_else(|code| Err(Error::new(code, "no such handle")))
}

#[inline]
fn event_op(h: HANDLE, op: fn(&Event) -> objmgr::Result<()>) -> BOOL {
    let done = |result: objmgr::Result<()>| or_fail(result.map(|()| TRUE), FALSE);
    match handle_value(h).and_then(|v| by_value::with_event(v, |e| done(op(e)))) {
        Some(answer) => answer,
        None => done(on_object(h, |o| match o {
            Object::Event(e) => op(e),
            _ => Err(Error::new(ERROR_INVALID_HANDLE, "not an event")),
        })),
    }
}

#[inline]
fn release_mutex(h: HANDLE) -> BOOL {
    let done = |result: objmgr::Result<()>| or_fail(result.map(|()| TRUE), FALSE);
    match handle_value(h).and_then(|v| by_value::with_mutex(v, |m| done(m.release()))) {
        Some(answer) => answer,
        None => done(on_object(h, |o| match o {
            Object::Mutex(m) => m.release(),
            _ => Err(Error::new(ERROR_INVALID_HANDLE, "not a mutex")),
        })),
    }
}

#[inline]
unsafe fn release_semaphore(h: HANDLE, count: LONG, previous: *mut LONG) -> BOOL {
    if count <= 0 {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let count = count as u32;
    let done = |result: objmgr::Result<u32>| match result {
        Ok(before) => {
            // SAFETY: NULL or a writable LONG per the Win32 contract.
            unsafe { ffi::put(previous, before as LONG) };
            TRUE
        }
        Err(e) => fail(e.code(), FALSE),
    };
    match handle_value(h).and_then(|v| by_value::with_semaphore(v, |s| done(s.release(count)))) {
        Some(answer) => answer,
        None => done(on_object(h, |o| match o {
            Object::Semaphore(s) => s.release(count),
            _ => Err(Error::new(ERROR_INVALID_HANDLE, "not a semaphore")),
        })),
    }
}

unsafe fn set_timer(
    h: HANDLE,
    due: *const i64,
    period: LONG,
    routine: Option<crate::api_thread::TimerApcFn>,
    arg: *const std::ffi::c_void,
    _resume: BOOL,
) -> BOOL {
    // SAFETY: NULL or a readable LARGE_INTEGER per the Win32 contract.
    let Some(due) = (unsafe { ffi::get(due) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    if period < 0 {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let set = with_object(h, |o| match o {
        Object::WaitableTimer(t) => t.set(due, period as u32),
        _ => Err(Error::new(ERROR_INVALID_HANDLE, "not a waitable timer")),
    });
    if set == FALSE {
        return FALSE;
    }
    // Setting a timer again replaces its completion routine.
    crate::api_thread::stop_timer_routine(h);
    if let Some(routine) = routine
        && let Err(code) =
            crate::api_thread::start_timer_routine(h, due, period as u32, routine, arg as usize)
    {
        return fail(code, FALSE);
    }
    TRUE
}

fn timeout(ms: DWORD) -> Option<Duration> {
    (ms != INFINITE).then(|| Duration::from_millis(u64::from(ms)))
}

fn wait_code(outcome: WaitOutcome) -> DWORD {
    match outcome {
        WaitOutcome::Object(i) => WAIT_OBJECT_0 + i as DWORD,
        WaitOutcome::Abandoned(i) => WAIT_ABANDONED_0 + i as DWORD,
        WaitOutcome::Timeout => WAIT_TIMEOUT,
    }
}

unsafe fn wait_multiple(
    n: DWORD,
    handles: *const HANDLE,
    all: bool,
    ms: DWORD,
    alertable: bool,
) -> DWORD {
    if n == 0 || n as usize > MAXIMUM_WAIT_OBJECTS || handles.is_null() {
        return fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
    }
    // SAFETY: `n` handles are readable per the Win32 contract.
    let handles = unsafe { std::slice::from_raw_parts(handles, n as usize) };
    // WaitForSingleObject takes the pseudo-handles (and times out);
    // WaitForMultipleObjects refuses them, as Windows does.
    if handles.iter().any(|&h| never_signaled(h)) {
        return fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
    }
    if alertable {
        wait_alertable(handles, all, ms)
    } else {
        wait(handles, all, ms)
    }
}

/// Whether `h` stands for the calling process or thread, which cannot be
/// signaled while that thread waits: `WaitForSingleObject` on one only
/// times out.
fn never_signaled(h: HANDLE) -> bool {
    h == CURRENT_PROCESS || h == CURRENT_THREAD
}

/// Sleeps for a wait that nothing can satisfy: `WAIT_TIMEOUT` after `ms`.
#[cold]
#[inline(never)]
fn wait_out(ms: DWORD) -> DWORD {
    match timeout(ms) {
        Some(d) => std::thread::sleep(d),
        None => loop {
            std::thread::park();
        },
    }
    WAIT_TIMEOUT
}

/// `WaitForSingleObject`: the common case, kept small and without
/// allocating.
#[inline(always)]
fn wait_single(handle: HANDLE, ms: DWORD) -> DWORD {
    let done = |waited: objmgr::Result<WaitOutcome>| or_fail(waited.map(wait_code), WAIT_FAILED);
    match handle_value(handle).and_then(|v| by_value::wait(v, timeout(ms), done)) {
        Some(answer) => answer,
        None => wait_single_slowly(handle, ms),
    }
}

/// [`wait_single`] on a handle not published to [`by_value`].
#[inline(never)]
fn wait_single_slowly(handle: HANDLE, ms: DWORD) -> DWORD {
    if never_signaled(handle) {
        return wait_out(ms);
    }
    let result = table::with_entry(handle, |entry| match entry {
        Entry::Object(object) => match object.wait(timeout(ms)) {
            Some(waited) => or_fail(waited.map(wait_code), WAIT_FAILED),
            None => fail(ERROR_INVALID_HANDLE, WAIT_FAILED),
        },
        Entry::File(_) => fail(ERROR_INVALID_HANDLE, WAIT_FAILED),
    });
    result.unwrap_or_else(|code| fail(code, WAIT_FAILED))
}

fn wait(handles: &[HANDLE], all: bool, ms: DWORD) -> DWORD {
    if let [handle] = handles {
        return wait_single(*handle, ms);
    }
    let result = table::with_waitables(handles, None, |objects| {
        // Two or more objects here (one took the path above).
        let result = if all {
            objmgr::wait_all(objects, timeout(ms))
        } else {
            objmgr::wait_any(objects, timeout(ms))
        };
        or_fail(result.map(wait_code), WAIT_FAILED)
    });
    result.unwrap_or_else(|code| fail(code, WAIT_FAILED))
}

/// How often a wait for all objects looks at its thread's APC queue.
const APC_SLICE: Duration = Duration::from_millis(10);

/// An alertable wait: the thread's queued APCs run first, or as soon as one
/// is queued while it waits, and the wait returns `WAIT_IO_COMPLETION`;
/// otherwise it is the wait it would be. A wait for any object (or none:
/// `SleepEx`) also waits for the thread's APC event; a wait for all objects
/// looks at the queue every 10 ms.
pub(crate) fn wait_alertable(handles: &[HANDLE], all: bool, ms: DWORD) -> DWORD {
    let control = crate::api_thread::current();
    if control.run_pending() {
        return crate::api_thread::WAIT_IO_COMPLETION;
    }
    let alert = match control.alert() {
        Ok(event) => event,
        Err(code) => return fail(code, WAIT_FAILED),
    };
    let deadline = timeout(ms).map(|d| std::time::Instant::now() + d);
    let left = || deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
    let direct =
        !all && handles.len() < MAXIMUM_WAIT_OBJECTS && !handles.iter().any(|&h| never_signaled(h));
    loop {
        // Falls through only when the thread was alerted (or a slice ended).
        if direct {
            let waited = table::with_waitables(handles, Some(alert), |objects| {
                objmgr::wait_any(objects, left())
            });
            match waited {
                Ok(Ok(WaitOutcome::Object(i))) if i == handles.len() => {}
                Ok(Ok(outcome)) => return wait_code(outcome),
                Ok(Err(e)) => return or_fail(Err(e), WAIT_FAILED),
                Err(code) => return fail(code, WAIT_FAILED),
            }
        } else {
            let slice = left().map_or(APC_SLICE, |l| l.min(APC_SLICE));
            match wait(handles, all, slice.as_millis() as DWORD) {
                WAIT_TIMEOUT => {}
                result => return result,
            }
        }
        if control.run_pending() {
            return crate::api_thread::WAIT_IO_COMPLETION;
        }
        if left().is_some_and(|l| l.is_zero()) {
            return WAIT_TIMEOUT;
        }
    }
}

/// `SignalObjectAndWait`; alertable, the signal is given, then the wait
/// is an alertable one.
fn signal_and_wait(signal: HANDLE, wait_on: HANDLE, ms: DWORD, alertable: bool) -> DWORD {
    if !alertable {
        return signal_then_wait(signal, wait_on, ms);
    }
    let signaled = match table::object(signal) {
        Ok(entry) => match &*entry {
            Entry::Object(Object::Event(e)) => e.set(),
            Entry::Object(Object::Mutex(m)) => m.release(),
            Entry::Object(Object::Semaphore(s)) => s.release(1).map(drop),
            _ => return fail(ERROR_INVALID_HANDLE, WAIT_FAILED),
        },
        Err(code) => return fail(code, WAIT_FAILED),
    };
    if let Err(e) = signaled {
        return or_fail(Err(e), WAIT_FAILED);
    }
    wait_alertable(&[wait_on], false, ms)
}

fn signal_then_wait(signal: HANDLE, wait_on: HANDLE, ms: DWORD) -> DWORD {
    let (signal, wait_on) = match (table::object(signal), table::object(wait_on)) {
        (Ok(s), Ok(w)) => (s, w),
        (Err(code), _) | (_, Err(code)) => return fail(code, WAIT_FAILED),
    };
    let (Entry::Object(s), Entry::Object(w)) = (&*signal, &*wait_on) else {
        return fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
    };
    let (Some(s), Some(w)) = (s.waitable(), w.waitable()) else {
        return fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
    };
    or_fail(
        objmgr::signal_and_wait(s, w, timeout(ms)).map(wait_code),
        WAIT_FAILED,
    )
}
