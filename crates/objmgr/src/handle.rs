//! Handles across processes: `DuplicateHandle`, and
//! `GetHandleInformation`/`SetHandleInformation`.
//!
//! Handle values are the broker's, per process, as on Windows: a value
//! duplicated into another process is valid *there*, and that process takes
//! it over with the type's `from_handle` (e.g. [`crate::Section::from_handle`]).

use objmgr_proto::process::{DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS};
use objmgr_proto::wire::{CURRENT_PROCESS, CURRENT_THREAD, Handle, Reply, Request};

pub use objmgr_proto::process::{
    DUPLICATE_CLOSE_SOURCE as CLOSE_SOURCE, HANDLE_FLAG_INHERIT, HANDLE_FLAG_PROTECT_FROM_CLOSE,
};

use crate::connection::call;
use crate::error::*;
use crate::process::Process;
use objmgr_proto::security::SecurityDescriptor;

fn process_handle(process: Option<&Process>) -> Handle {
    process.map_or(CURRENT_PROCESS, |p| Handle(p.handle_value()))
}

fn value_reply(request: &Request, what: impl Fn() -> String) -> Result<u32> {
    match call(request, None).map_err(|e| e.within(&what()))?.0 {
        Reply::Value(v) => Ok(v),
        _ => Err(Error::new(
            ERROR_INVALID_DATA,
            format!("{}: unexpected reply", what()),
        )),
    }
}

/// A handle value as a process holds it (what Windows calls a `HANDLE`):
/// valid in the process it was made for. Objects' `handle_value()` give
/// the value their handle has; [`take_over`] and the `from_handle`
/// functions make an object of one this process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandleValue(pub u32);

impl HandleValue {
    /// The calling thread, as `GetCurrentThread()` names it (duplicate it
    /// for a handle that other threads and processes can use).
    pub const CURRENT_THREAD: HandleValue = HandleValue(CURRENT_THREAD.0);

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for HandleValue {
    fn from(value: u32) -> HandleValue {
        HandleValue(value)
    }
}

impl std::fmt::LowerHex for HandleValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

/// How [`duplicate`] copies a handle (`DuplicateHandle`'s arguments but the
/// source): `DuplicateOptions::default()` copies it into this process with
/// the same access, not inheritable.
#[derive(Clone, Copy, Debug, Default)]
pub struct DuplicateOptions<'a> {
    /// The process that holds the source handle (`None`: this one; another
    /// process's handle needs `PROCESS_DUP_HANDLE`).
    pub source_process: Option<&'a Process>,
    /// The process that gets the copy (`None`: this one).
    pub target_process: Option<&'a Process>,
    /// The rights the copy has: `None` for the source's
    /// (`DUPLICATE_SAME_ACCESS`); more than the source has only if the
    /// object's security descriptor grants them to the target process
    /// (`ERROR_ACCESS_DENIED` otherwise).
    pub access: Option<objmgr_proto::access::AccessMask>,
    /// Whether the copy is inherited by child processes.
    pub inheritable: bool,
    /// Closes the source handle, even if the copy fails
    /// (`DUPLICATE_CLOSE_SOURCE`).
    pub close_source: bool,
}

/// `DuplicateHandle`: copies handle `source` as `options` say, and returns
/// the copy's value, valid in the target process.
///
/// ```no_run
/// use objmgr::handle::{DuplicateOptions, HandleValue, duplicate};
/// use objmgr::{Event, Reset};
///
/// let event = Event::create(None, Reset::Auto, false)?;
/// let copy = duplicate(HandleValue(event.handle_value()), &DuplicateOptions::default())?;
/// # Ok::<(), objmgr::Error>(())
/// ```
pub fn duplicate(source: HandleValue, options: &DuplicateOptions<'_>) -> Result<HandleValue> {
    // `GetCurrentThread()` in this process: the thread's own handle, which
    // closing a pseudo-handle never closes.
    let from_here = options
        .source_process
        .is_none_or(|p| p.pid() == std::process::id());
    let (source, close_source) = if source == HandleValue::CURRENT_THREAD && from_here {
        (crate::thread::own_handle()?, false)
    } else {
        (source.0, options.close_source)
    };
    let mut flags = if close_source {
        DUPLICATE_CLOSE_SOURCE
    } else {
        0
    };
    if options.access.is_none() {
        flags |= DUPLICATE_SAME_ACCESS;
    }
    let request = Request::Duplicate {
        source_process: process_handle(options.source_process),
        source: Handle(source),
        target_process: process_handle(options.target_process),
        access: options.access.map_or(0, |a| a.0),
        inherit: options.inheritable,
        options: flags,
    };
    value_reply(&request, || format!("duplicating handle {source:#x}")).map(HandleValue)
}

/// `DuplicateHandle` with its arguments in a row; see [`duplicate`], which
/// names them.
#[deprecated(note = "use `duplicate` with `DuplicateOptions`")]
pub fn duplicate_handle(
    source_process: Option<&Process>,
    source: u32,
    target_process: Option<&Process>,
    access: Option<u32>,
    inheritable: bool,
    close_source: bool,
) -> Result<u32> {
    let options = DuplicateOptions {
        source_process,
        target_process,
        access: access.map(objmgr_proto::access::AccessMask),
        inheritable,
        close_source,
    };
    duplicate(HandleValue(source), &options).map(HandleValue::get)
}

/// A descriptor as SDDL for a request (empty for none), or
/// `ERROR_INVALID_SECURITY_DESCR` when it is longer than a message's string
/// may be: it is refused whole, never cut (a cut DACL grants other things).
pub(crate) fn wire_sddl(descriptor: Option<&SecurityDescriptor>) -> Result<String> {
    let sddl = descriptor
        .map(SecurityDescriptor::to_sddl)
        .unwrap_or_default();
    if sddl.len() > objmgr_proto::wire::MAX_STRING_LEN {
        return Err(Error::new(
            ERROR_INVALID_SECURITY_DESCR,
            format!(
                "the security descriptor is {} bytes of SDDL; at most {} can be sent",
                sddl.len(),
                objmgr_proto::wire::MAX_STRING_LEN
            ),
        ));
    }
    Ok(sddl)
}

fn security_call(handle: u32, set: bool, which: u32, sddl: String) -> Result<SecurityDescriptor> {
    let what = || {
        format!(
            "{} the security of handle {handle:#x}",
            if set { "setting" } else { "reading" }
        )
    };
    let request = Request::Security {
        handle: Handle(handle),
        set,
        which,
        sddl,
    };
    match call(&request, None).map_err(|e| e.within(&what()))?.0 {
        Reply::Text(text) => SecurityDescriptor::from_sddl(&text)
            .map_err(|e| Error::new(ERROR_INVALID_DATA, format!("{}: {e}", what()))),
        _ => Err(Error::new(
            ERROR_INVALID_DATA,
            format!("{}: unexpected reply", what()),
        )),
    }
}

/// `GetKernelObjectSecurity`: the parts `which` (`OWNER_SECURITY_INFORMATION`,
/// `GROUP_…`, `DACL_…`, `SACL_…`, or'ed) of the security descriptor of the
/// object behind `handle`. Needs `READ_CONTROL` (the SACL:
/// `ACCESS_SYSTEM_SECURITY`), else `ERROR_ACCESS_DENIED`.
pub fn object_security(handle: u32, which: u32) -> Result<SecurityDescriptor> {
    security_call(handle, false, which, String::new())
}

/// `SetKernelObjectSecurity`: replaces the parts `which` of the object's
/// descriptor with those of `descriptor` (a DACL left out becomes a NULL
/// DACL, as a NULL `pDacl` does). The owner and group need `WRITE_OWNER`
/// (and an owner the caller may name, else `ERROR_INVALID_OWNER`), the DACL
/// `WRITE_DAC`. Returns the parts `which` as they are now. Handles already
/// open keep the access they were granted, as on Windows.
pub fn set_object_security(
    handle: u32,
    which: u32,
    descriptor: &SecurityDescriptor,
) -> Result<SecurityDescriptor> {
    security_call(handle, true, which, wire_sddl(Some(descriptor))?)
}

/// `GetHandleInformation`: the handle's `HANDLE_FLAG_*` bits.
pub fn handle_information(handle: u32) -> Result<u32> {
    crate::connection::handle_flags(Handle(handle), 0, 0)
        .map_err(|e| e.within(&format!("GetHandleInformation({handle:#x})")))
}

/// `SetHandleInformation`: sets the flags in `mask` to their values in `flags`.
pub fn set_handle_information(handle: u32, mask: u32, flags: u32) -> Result<()> {
    crate::connection::handle_flags(Handle(handle), mask, flags)
        .map(|_| ())
        .map_err(|e| e.within(&format!("SetHandleInformation({handle:#x})")))
}

/// An object of any type, taken over by handle value ([`take_over`]).
#[derive(Debug)]
pub enum Object {
    Section(crate::Section),
    Event(crate::Event),
    Mutex(crate::Mutex),
    Semaphore(crate::Semaphore),
    WaitableTimer(crate::WaitableTimer),
    Process(crate::process::Process),
    Thread(crate::thread::Thread),
    Job(crate::job::Job),
    File(crate::file::File),
}

/// Takes over handle `value` of this process whatever its type (one it
/// inherited or was given with `DuplicateHandle`); the result closes it when
/// dropped. A value that is not open: `ERROR_INVALID_HANDLE`.
pub fn take_over(value: u32) -> Result<Object> {
    use objmgr_proto::access::ObjectType;
    let what = || format!("taking over handle {value:#x}");
    let reply = crate::connection::query_handle(Handle(value)).map_err(|e| e.within(&what()))?;
    let kind = match &reply.0 {
        Reply::Section(_) => {
            return crate::Section::from_reply(Ok(reply), what).map(Object::Section);
        }
        Reply::File(_) => return crate::file::File::from_reply(reply, what).map(Object::File),
        Reply::Sync(grant) => objmgr_sync::Kind::from_code(grant.kind),
        _ => None,
    }
    .ok_or_else(|| Error::new(ERROR_INVALID_DATA, format!("{}: unexpected reply", what())))?;
    let object_type = kind.object_type();
    let object = crate::sync::SyncObject::from_reply(Ok(reply), object_type, what)?;
    Ok(match object_type {
        ObjectType::Event => Object::Event(crate::Event::from_object(object)),
        ObjectType::Mutex => Object::Mutex(crate::Mutex::from_object(object)),
        ObjectType::Semaphore => Object::Semaphore(crate::Semaphore::from_object(object)),
        ObjectType::WaitableTimer => {
            Object::WaitableTimer(crate::WaitableTimer::from_object(object))
        }
        ObjectType::Process => Object::Process(crate::process::Process::from_object(object)),
        ObjectType::Job => Object::Job(crate::job::Job::from_object(object)),
        _ => Object::Thread(crate::thread::Thread::from_object(object)),
    })
}

impl Object {
    /// Closes the handle now (`CloseHandle`), reporting any error; a handle
    /// protected from close stays open and fails with `ERROR_INVALID_HANDLE`.
    pub fn close(self) -> Result<()> {
        self.close_shared()
    }

    /// Closes the handle now through a shared reference (others may still
    /// hold the object; their later use of it fails or acts on whatever the
    /// value names then, as using a closed handle does on Windows).
    pub fn close_shared(&self) -> Result<()> {
        match self {
            Object::Section(o) => o.close_handle(),
            Object::File(o) => o.close_shared(),
            other => other.sync_object().map_or(Ok(()), |o| o.close()),
        }
    }

    /// Forgets the object without closing its handle: for a handle closed
    /// some other way (`DUPLICATE_CLOSE_SOURCE`).
    pub fn forget(&self) {
        match self {
            Object::Section(o) => o.mark_closed(),
            Object::File(o) => o.forget(),
            other => {
                if let Some(o) = other.sync_object() {
                    o.closed.store(true, std::sync::atomic::Ordering::Release);
                }
            }
        }
    }

    /// The synchronization object behind the handle; `None` for a section
    /// or a file.
    pub(crate) fn sync_object(&self) -> Option<&crate::sync::SyncObject> {
        use crate::sync::sealed::Sealed;
        Some(match self {
            Object::Section(_) | Object::File(_) => return None,
            Object::Event(o) => o.sync_object(),
            Object::Mutex(o) => o.sync_object(),
            Object::Semaphore(o) => o.sync_object(),
            Object::WaitableTimer(o) => o.sync_object(),
            Object::Process(o) => o.sync_object(),
            Object::Thread(o) => o.sync_object(),
            Object::Job(o) => o.sync_object(),
        })
    }

    /// The handle value.
    pub fn handle_value(&self) -> u32 {
        match self {
            Object::Section(o) => o.handle_value(),
            Object::Event(o) => o.handle_value(),
            Object::Mutex(o) => o.handle_value(),
            Object::Semaphore(o) => o.handle_value(),
            Object::WaitableTimer(o) => o.handle_value(),
            Object::Process(o) => o.handle_value(),
            Object::Thread(o) => o.handle_value(),
            Object::Job(o) => o.handle_value(),
            Object::File(o) => o.handle_value(),
        }
    }

    /// Waits until the object is signaled and takes it, as
    /// `WaitForSingleObject` does; `None` for a section or a file, which
    /// cannot be waited on. (The same as `wait_for` on
    /// [`waitable`](Self::waitable), without its indirect call.)
    #[inline]
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> Option<Result<crate::WaitOutcome>> {
        self.sync_object()
            .map(|object| crate::sync::wait_one(object, timeout))
    }

    /// The object as something to wait on; `None` for a section or a file.
    pub fn waitable(&self) -> Option<&dyn crate::Waitable> {
        Some(match self {
            Object::Section(_) | Object::File(_) => return None,
            Object::Event(o) => o,
            Object::Mutex(o) => o,
            Object::Semaphore(o) => o,
            Object::WaitableTimer(o) => o,
            Object::Process(o) => o,
            Object::Thread(o) => o,
            Object::Job(o) => o,
        })
    }
}
