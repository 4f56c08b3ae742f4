//! Private namespaces: `CreateBoundaryDescriptor`,
//! `AddSIDToBoundaryDescriptor`, `DeleteBoundaryDescriptor`,
//! `CreatePrivateNamespace`, `OpenPrivateNamespace`,
//! `ClosePrivateNamespace`. Objects in a namespace are named `alias\name`.
//!
//! A boundary descriptor and a namespace handle are this library's own
//! allocations (as on Windows, they are not closed with `CloseHandle`),
//! checked against the ones it handed out before any use.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void};

use objmgr::namespace::{Boundary, PrivateNamespace};
use objmgr_proto::error::*;

use crate::api_sync::exports;
use crate::ffi::{self, ansi_exact, wide_exact};
use crate::last_error::{fail, guard};
use crate::types::*;

/// The boundary descriptors and namespace handles this library handed out
/// and has not freed: a handle is used or freed only if it is listed (a
/// stale, repeated or foreign handle is `ERROR_INVALID_HANDLE`, never a
/// double free or a cast of the wrong type).
static BOUNDARIES: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
static NAMESPACES: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

fn live(list: &std::sync::Mutex<Vec<usize>>) -> std::sync::MutexGuard<'_, Vec<usize>> {
    list.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes `h` off `list`; false if it was not on it.
fn take(list: &std::sync::Mutex<Vec<usize>>, h: HANDLE) -> bool {
    let mut list = live(list);
    match list.iter().position(|&p| p == h as usize) {
        Some(at) => {
            list.swap_remove(at);
            true
        }
        None => false,
    }
}

/// `PRIVATE_NAMESPACE_FLAG_DESTROY`.
const PRIVATE_NAMESPACE_FLAG_DESTROY: ULONG = 1;
const NULL: HANDLE = std::ptr::null_mut();

fn create_boundary(name: Result<Option<String>, ()>) -> HANDLE {
    match name {
        Ok(Some(name)) => {
            let h: HANDLE = Box::into_raw(Box::new(Boundary::new(&name))).cast();
            live(&BOUNDARIES).push(h as usize);
            h
        }
        Ok(None) => fail(ERROR_INVALID_PARAMETER, NULL),
        Err(()) => fail(ERROR_INVALID_NAME, NULL),
    }
}

/// The boundary behind a handle `CreateBoundaryDescriptor` returned and
/// `DeleteBoundaryDescriptor` has not freed; `None` for anything else.
///
/// # Safety
/// No other thread deletes `h` while the reference is used (as on Windows,
/// a handle in use must not be closed).
unsafe fn boundary<'a>(h: HANDLE) -> Option<&'a mut Boundary> {
    if !live(&BOUNDARIES).contains(&(h as usize)) {
        return None;
    }
    // SAFETY: listed, so a live Box<Boundary> this library made.
    unsafe { h.cast::<Boundary>().as_mut() }
}

unsafe fn add_sid(h: *mut HANDLE, sid: *const c_void) -> BOOL {
    // SAFETY: `h` points to a boundary handle and `sid` to a SID, per Win32.
    let (Some(b), Some(sid)) = (unsafe { ffi::get(h).and_then(|h| boundary(h)) }, unsafe {
        crate::api_security::sid_at(sid)
    }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    b.add_sid(sid);
    TRUE
}

unsafe fn delete_boundary(h: HANDLE) {
    if take(&BOUNDARIES, h) {
        // SAFETY: it was listed (a Box<Boundary> this library made) and is
        // not any more, so it is freed once.
        drop(unsafe { Box::from_raw(h.cast::<Boundary>()) });
    }
}

unsafe fn namespace(
    attributes: *const SECURITY_ATTRIBUTES,
    h: HANDLE,
    alias: Result<Option<String>, ()>,
    create: bool,
) -> HANDLE {
    // SAFETY: per the Win32 contract, a boundary handle.
    let Some(b) = (unsafe { boundary(h) }) else {
        return fail(ERROR_INVALID_PARAMETER, NULL);
    };
    let alias = match alias {
        Ok(Some(alias)) => alias,
        Ok(None) => return fail(ERROR_INVALID_PARAMETER, NULL),
        Err(()) => return fail(ERROR_INVALID_NAME, NULL),
    };
    let made = if create {
        // SAFETY: NULL or valid security attributes, per Win32.
        let security = match unsafe { crate::api_security::requested_security(attributes) } {
            Ok(security) => security,
            Err(code) => return fail(code, NULL),
        };
        PrivateNamespace::create(b, &alias, security.as_ref())
    } else {
        PrivateNamespace::open(b, &alias)
    };
    match made {
        Ok(ns) => {
            let h: HANDLE = Box::into_raw(Box::new(ns)).cast();
            live(&NAMESPACES).push(h as usize);
            h
        }
        Err(e) => fail(e.code(), NULL),
    }
}

unsafe fn close_namespace(h: HANDLE, flags: ULONG) -> u8 {
    if !take(&NAMESPACES, h) {
        return fail(ERROR_INVALID_HANDLE, 0);
    }
    // SAFETY: it was listed (a Box<PrivateNamespace> this library made) and
    // is not any more, so it is freed once.
    let ns = unsafe { Box::from_raw(h.cast::<PrivateNamespace>()) };
    let closed = if flags & PRIVATE_NAMESPACE_FLAG_DESTROY != 0 {
        ns.destroy()
    } else {
        ns.close()
    };
    match closed {
        Ok(()) => 1,
        Err(e) => fail(e.code(), 0),
    }
}

exports! {
    fn CreateBoundaryDescriptorA(name: *const c_char, flags: ULONG) -> HANDLE = NULL
        => { let _ = flags; create_boundary(ansi_exact(name)) };
    fn CreateBoundaryDescriptorW(name: *const WCHAR, flags: ULONG) -> HANDLE = NULL
        => { let _ = flags; create_boundary(wide_exact(name)) };
    fn AddSIDToBoundaryDescriptor(boundary: *mut HANDLE, sid: *const c_void) -> BOOL = FALSE
        => add_sid(boundary, sid);
    fn DeleteBoundaryDescriptor(boundary: HANDLE) -> () = () => delete_boundary(boundary);
    fn CreatePrivateNamespaceA(attributes: *const SECURITY_ATTRIBUTES, boundary: HANDLE, alias: *const c_char) -> HANDLE = NULL
        => namespace(attributes, boundary, ansi_exact(alias), true);
    fn CreatePrivateNamespaceW(attributes: *const SECURITY_ATTRIBUTES, boundary: HANDLE, alias: *const WCHAR) -> HANDLE = NULL
        => namespace(attributes, boundary, wide_exact(alias), true);
    fn OpenPrivateNamespaceA(boundary: HANDLE, alias: *const c_char) -> HANDLE = NULL
        => namespace(std::ptr::null(), boundary, ansi_exact(alias), false);
    fn OpenPrivateNamespaceW(boundary: HANDLE, alias: *const WCHAR) -> HANDLE = NULL
        => namespace(std::ptr::null(), boundary, wide_exact(alias), false);
    fn ClosePrivateNamespace(namespace: HANDLE, flags: ULONG) -> u8 = 0
        => close_namespace(namespace, flags);
}
