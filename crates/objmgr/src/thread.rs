//! Threads with waitable handles and exit codes (`CreateThread`,
//! `GetExitCodeThread`): [`spawn`] starts a thread whose [`Thread`] handle
//! can be waited on, alone or with other objects, from any process it is
//! passed to.

use std::sync::atomic::Ordering;

use objmgr_proto::access::{ObjectType, THREAD_QUERY_LIMITED_INFORMATION};
use objmgr_proto::process::STILL_ACTIVE;
use objmgr_proto::wire::Request;
use objmgr_sync::ops;

use crate::connection::call;
use crate::error::*;
use crate::handle::{HANDLE_FLAG_PROTECT_FROM_CLOSE as PROTECT, set_handle_information};
use crate::sync::{SyncObject, waitable_type};

waitable_type!(
    /// A thread: signaled when it exits, with its exit code.
    Thread,
    ObjectType::Thread
);

/// The exit code of a thread whose function panicked.
pub const PANIC_EXIT_CODE: u32 = 0xE000_0001;

std::thread_local! {
    static OBJMGR_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This thread's own handle to its thread object, with its generation:
    /// set by [`spawn`] for its threads, made on first use for the others.
    static OWN: std::cell::Cell<Option<(u64, u32)>> = const { std::cell::Cell::new(None) };
    /// The calling thread's own handle to its object, marked exited when the
    /// thread's thread-local destructors run.
    static ADOPTED: std::cell::RefCell<Option<Ended>> = const { std::cell::RefCell::new(None) };
}

/// A thread's own handle to its object, protected from close while the
/// thread runs; dropping it marks the thread exited with its code, then
/// closes it.
struct Ended(Thread, u32);

impl Drop for Ended {
    fn drop(&mut self) {
        // Only while the handle is of the current session: a lost broker
        // connection means the slot may belong to someone else (and an
        // object of an earlier session has nothing to do with this one).
        let handle = &self.0.object;
        if let Ok(slot) = handle.require(0, "thread exit") {
            OWN.set(None); // the handle goes now; nothing may hand it out after
            // As on Windows, the mutexes the thread owns are abandoned
            // before its object is signaled.
            crate::owner::end_thread();
            ops::mark_exited(slot, self.1);
            let _ =
                crate::connection::handle_flags_of(handle.handle, handle.generation, PROTECT, 0);
        }
    }
}

/// The calling thread's own handle value to its thread object (what
/// `GetCurrentThread()` stands for), made on first use in a thread objmgr
/// did not start; such a thread's object is signaled when the thread ends
/// (with the code it gave `ExitThread`, else 0; if its thread-local
/// destructors do not run, when its process dies).
pub(crate) fn own_handle() -> Result<u32> {
    let generation = crate::connection::generation();
    if let Some((made_in, value)) = OWN.get()
        && made_in == generation
    {
        return Ok(value);
    }
    if ADOPTED.try_with(|_| ()).is_err() {
        return Err(Error::new(
            ERROR_INVALID_HANDLE,
            "the calling thread is exiting: it has no thread object any more",
        ));
    }
    let own = Thread {
        object: new_thread_object()?,
    };
    set_handle_information(own.handle_value(), PROTECT, PROTECT)?;
    publish_thread_id(&own.object);
    let (value, made_in) = (own.handle_value(), own.object.generation);
    // An object of an earlier session, if any, goes (its close is a no-op).
    let _ = ADOPTED.try_with(|adopted| *adopted.borrow_mut() = Some(Ended(own, 0)));
    OWN.set(Some((made_in, value)));
    Ok(value)
}

/// Records the code the calling thread ends with (`ExitThread` in a thread
/// objmgr did not start), for the thread object it may have.
pub fn set_exit_code(code: u32) {
    let _ = ADOPTED.try_with(|adopted| {
        if let Some(ended) = adopted.borrow_mut().as_mut() {
            ended.1 = code;
        }
    });
}

fn new_thread_object() -> Result<SyncObject> {
    SyncObject::from_reply(
        call(&Request::CreateThread { inherit: false }, None),
        ObjectType::Thread,
        || "creating a thread object".to_owned(),
    )
}

/// A new handle to the calling thread's object (`DuplicateHandle` of
/// `GetCurrentThread()`): waitable from any process it is passed to, and
/// signaled when the thread ends.
pub fn current() -> Result<Thread> {
    let own = own_handle()?;
    let copy = crate::handle::duplicate(
        crate::handle::HandleValue(own),
        &crate::handle::DuplicateOptions::default(),
    )?;
    Thread::from_handle(copy.get())
}

/// Whether the calling thread was started by [`spawn`].
pub fn is_objmgr_thread() -> bool {
    OBJMGR_THREAD.with(std::cell::Cell::get)
}

/// The unwind payload of [`exit_current`].
struct ThreadExit(u32);

/// `ExitThread` for a thread started by [`spawn`]: ends it now with `code`
/// (by unwinding to the thread's start, running destructors on the way).
/// In any other thread it unwinds like a panic.
pub fn exit_current(code: u32) -> ! {
    std::panic::resume_unwind(Box::new(ThreadExit(code)))
}

impl Thread {
    /// `GetExitCodeThread`: the value the thread's function returned, or
    /// `STILL_ACTIVE` (259) while it runs. Threads of a process that died
    /// report 0 unless the broker knew the process's exit code.
    pub fn exit_code(&self) -> Result<u32> {
        let slot = self
            .object
            .require(THREAD_QUERY_LIMITED_INFORMATION, "GetExitCodeThread")?;
        Ok(ops::exit_code(slot).unwrap_or(STILL_ACTIVE))
    }

    /// The id of the process the thread belongs to.
    pub fn process_id(&self) -> u32 {
        self.object.slot().owner_pid.load(Ordering::Relaxed)
    }

    /// The thread's Linux thread id (`GetThreadId`): known once the thread
    /// runs (a thread [`spawn`] started, one that used its own handle, or a
    /// process's main thread); 0 before.
    pub fn thread_id(&self) -> u32 {
        self.object.slot().owner_tid.load(Ordering::Acquire)
    }
}

/// Records the calling thread's id in its own thread object.
fn publish_thread_id(object: &SyncObject) {
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    if !object.is_remote() {
        object.slot().owner_tid.store(tid, Ordering::Release);
    }
}

/// Starts a thread running `f`, whose return value is its exit code, and
/// returns a waitable handle to it (`CreateThread`). A panic ends the thread
/// with [`PANIC_EXIT_CODE`].
pub fn spawn<F>(f: F) -> Result<Thread>
where
    F: FnOnce() -> u32 + Send + 'static,
{
    let object = new_thread_object()?;
    // The thread holds its own handle, protected from close, so that its
    // object (and slot) outlives it whatever happens to the returned one.
    let own = crate::handle::duplicate(
        crate::handle::HandleValue(object.handle.0),
        &crate::handle::DuplicateOptions::default(),
    )?;
    let own = Thread::from_handle(own.get())?;
    let thread = Thread { object };
    std::thread::Builder::new()
        .spawn(move || {
            // Protected by the thread itself: if it cannot start, the handle
            // closes with the closure.
            let _ = set_handle_information(own.handle_value(), PROTECT, PROTECT);
            OBJMGR_THREAD.with(|t| t.set(true));
            publish_thread_id(&own.object);
            OWN.set(Some((own.object.generation, own.handle_value())));
            // Registered first, so destroyed last: the thread's object is
            // signaled (and its mutexes abandoned) only after every other
            // thread-local destructor has run, as on Windows.
            ADOPTED.with(|adopted| *adopted.borrow_mut() = Some(Ended(own, 0)));
            crate::owner::register_exit_order();
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(
                |payload| {
                    payload
                        .downcast::<ThreadExit>()
                        .map_or(PANIC_EXIT_CODE, |e| e.0)
                },
            );
            set_exit_code(code);
        })
        .map_err(|e| Error::new(ERROR_NOT_ENOUGH_MEMORY, format!("starting a thread: {e}")))?;
    Ok(thread)
}
