//! Handles: `CloseHandle`, `DuplicateHandle`, `GetHandleInformation`,
//! `SetHandleInformation`.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::sync::Arc;

use objmgr::handle::{
    DuplicateOptions, HandleValue, Object, handle_information, set_handle_information,
};
use objmgr::process::Process;
use objmgr_proto::error::*;
use objmgr_proto::process::{DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS};

use crate::api_sync::exports;
use crate::ffi::{self, handle_value, to_handle};
use crate::last_error::{fail, guard, or_fail};
use crate::table::{self, Entry};
use crate::types::*;

fn close(h: HANDLE) -> BOOL {
    if h == CURRENT_PROCESS || h == CURRENT_THREAD || h == CURRENT_PROCESS_TOKEN {
        return TRUE; // Closing a pseudo-handle does nothing.
    }
    let entry = match table::remove(h) {
        Ok(entry) => entry,
        Err(code) => return fail(code, FALSE),
    };
    // A standard handle closed is no longer what GetStdHandle gives.
    crate::api_stdio::forget_std_handle(h);
    // A timer's completion routine ends with the handle it was set through.
    crate::api_thread::stop_timer_routine(h);
    match &*entry {
        // Closed now, even if threads still hold the object in their caches.
        Entry::Object(object) => or_fail(object.close_shared().map(|()| TRUE), FALSE),
        Entry::File(_) => TRUE, // closed when the last user drops it
    }
}

/// The process a process handle refers to (`None`: this process).
fn process_of(h: HANDLE) -> Result<Option<Arc<Entry>>, objmgr_proto::Win32Error> {
    if h == CURRENT_PROCESS {
        return Ok(None);
    }
    let entry = table::object(h)?;
    match &*entry {
        Entry::Object(Object::Process(_)) => Ok(Some(entry)),
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

fn as_process(entry: &Option<Arc<Entry>>) -> Option<&Process> {
    match entry.as_deref() {
        Some(Entry::Object(Object::Process(p))) => Some(p),
        _ => None,
    }
}

unsafe fn duplicate(
    source_process: HANDLE,
    source: HANDLE,
    target_process: HANDLE,
    target: *mut HANDLE,
    access: DWORD,
    inherit: BOOL,
    options: DWORD,
) -> BOOL {
    if table::is_file(source) {
        // Files live in this process only.
        if source_process != CURRENT_PROCESS || target_process != CURRENT_PROCESS {
            return fail(ERROR_NOT_SUPPORTED, FALSE);
        }
        let entry = match table::lookup(source) {
            Ok(entry) => entry,
            Err(code) => return fail(code, FALSE),
        };
        let Entry::File(file) = &*entry else {
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        let copy = match file.try_clone() {
            Ok(copy) => copy,
            Err(e) => {
                return fail(
                    objmgr_proto::Win32Error::from_errno(e.raw_os_error().unwrap_or(0)),
                    FALSE,
                );
            }
        };
        let handle = table::insert_file(copy);
        if options & DUPLICATE_CLOSE_SOURCE != 0 {
            close(source);
        }
        // SAFETY: NULL or a writable HANDLE per the Win32 contract.
        unsafe { ffi::put(target, handle) };
        return TRUE;
    }
    let (from, to) = match (process_of(source_process), process_of(target_process)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(code), _) | (_, Err(code)) => {
            return fail(code, FALSE);
        }
    };
    let Some(value) = handle_value(source) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    let access = (options & DUPLICATE_SAME_ACCESS == 0).then_some(access);
    let close_source = options & DUPLICATE_CLOSE_SOURCE != 0;
    let from_this_process = as_process(&from).is_none_or(|p| p.pid() == std::process::id());
    if close_source && from_this_process {
        // The broker closes our source handle (whatever the outcome): forget
        // our object for it first, so that nothing closes its value again.
        table::forget(value);
    }
    let options = DuplicateOptions {
        source_process: as_process(&from),
        target_process: as_process(&to),
        access: access.map(objmgr_proto::access::AccessMask),
        inheritable: inherit != 0,
        close_source,
    };
    match objmgr::handle::duplicate(HandleValue(value), &options) {
        Ok(new) => {
            // SAFETY: NULL or a writable HANDLE per the Win32 contract.
            unsafe { ffi::put(target, to_handle(new.get())) };
            TRUE
        }
        Err(e) => fail(e.code(), FALSE),
    }
}

unsafe fn get_information(h: HANDLE, flags: *mut DWORD) -> BOOL {
    if flags.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let Some(value) = handle_value(h).filter(|_| !table::is_file(h)) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    match handle_information(value) {
        // SAFETY: checked non-NULL; writable per the Win32 contract.
        Ok(f) => unsafe { ffi::put(flags, f) as BOOL },
        Err(e) => fail(e.code(), FALSE),
    }
}

fn set_information(h: HANDLE, mask: DWORD, flags: DWORD) -> BOOL {
    let Some(value) = handle_value(h).filter(|_| !table::is_file(h)) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    or_fail(
        set_handle_information(value, mask, flags).map(|()| TRUE),
        FALSE,
    )
}

exports! {
    fn CloseHandle(h: HANDLE) -> BOOL = FALSE => close(h);
    fn DuplicateHandle(source_process: HANDLE, source: HANDLE, target_process: HANDLE, target: *mut HANDLE, access: DWORD, inherit: BOOL, options: DWORD) -> BOOL = FALSE
        => duplicate(source_process, source, target_process, target, access, inherit, options);
    fn GetHandleInformation(h: HANDLE, flags: *mut DWORD) -> BOOL = FALSE => get_information(h, flags);
    fn SetHandleInformation(h: HANDLE, mask: DWORD, flags: DWORD) -> BOOL = FALSE => set_information(h, mask, flags);
}
