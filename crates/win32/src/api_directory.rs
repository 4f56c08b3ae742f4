//! Directories: `CreateDirectory`, `RemoveDirectory`, and the current
//! directory (`GetCurrentDirectory`/`SetCurrentDirectory`).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_char;

use objmgr_proto::error::*;

use crate::api_env::{Units, put_or_need};
use crate::api_file::io_error;
use crate::api_sync::exports;
use crate::ffi::{ansi_exact, wide_exact};
use crate::last_error::{fail, guard};
use crate::types::*;

/// A path argument: exactly as given, or `ERROR_INVALID_NAME`
/// (`ERROR_PATH_NOT_FOUND` for NULL or empty).
fn path_of(path: Result<Option<String>, ()>) -> Result<String, Win32Error> {
    match path {
        Ok(Some(p)) if !p.is_empty() => Ok(p),
        Ok(_) => Err(ERROR_PATH_NOT_FOUND),
        Err(()) => Err(ERROR_INVALID_NAME),
    }
}

/// `CreateDirectory`: mode 0777 less the umask, as `mkdir` makes it (a
/// security descriptor is not applied to directories).
fn create_directory(
    path: Result<Option<String>, ()>,
    attributes: *const SECURITY_ATTRIBUTES,
) -> BOOL {
    let _ = attributes;
    let path = match path_of(path) {
        Ok(p) => p,
        Err(code) => return fail(code, FALSE),
    };
    match std::fs::create_dir(&path) {
        Ok(()) => TRUE,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fail(ERROR_ALREADY_EXISTS, FALSE)
        }
        Err(e) => fail(io_error(&e, Some(&path)), FALSE),
    }
}

fn remove_directory(path: Result<Option<String>, ()>) -> BOOL {
    let path = match path_of(path) {
        Ok(p) => p,
        Err(code) => return fail(code, FALSE),
    };
    match std::fs::remove_dir(&path) {
        Ok(()) => TRUE,
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => fail(ERROR_DIR_NOT_EMPTY, FALSE),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => fail(ERROR_DIRECTORY, FALSE),
        Err(e) => fail(io_error(&e, Some(&path)), FALSE),
    }
}

/// `GetCurrentDirectory`: the length without NUL, or the size needed.
unsafe fn current_directory<T: Units>(size: DWORD, buf: *mut T) -> DWORD {
    match std::env::current_dir() {
        // SAFETY: `buf` holds `size` units per the Win32 contract.
        Ok(dir) => unsafe { put_or_need(buf, size, &dir.to_string_lossy()) },
        Err(e) => fail(io_error(&e, None), 0),
    }
}

fn set_current_directory(path: Result<Option<String>, ()>) -> BOOL {
    let path = match path_of(path) {
        Ok(p) => p,
        Err(code) => return fail(code, FALSE),
    };
    match std::env::set_current_dir(&path) {
        Ok(()) => TRUE,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => fail(ERROR_DIRECTORY, FALSE),
        Err(e) => fail(io_error(&e, Some(&path)), FALSE),
    }
}

exports! {
    fn CreateDirectoryA(path: *const c_char, attributes: *const SECURITY_ATTRIBUTES) -> BOOL = FALSE
        => create_directory(ansi_exact(path), attributes);
    fn CreateDirectoryW(path: *const WCHAR, attributes: *const SECURITY_ATTRIBUTES) -> BOOL = FALSE
        => create_directory(wide_exact(path), attributes);
    fn RemoveDirectoryA(path: *const c_char) -> BOOL = FALSE => remove_directory(ansi_exact(path));
    fn RemoveDirectoryW(path: *const WCHAR) -> BOOL = FALSE => remove_directory(wide_exact(path));
    fn GetCurrentDirectoryA(size: DWORD, buf: *mut c_char) -> DWORD = 0 => current_directory(size, buf.cast::<u8>());
    fn GetCurrentDirectoryW(size: DWORD, buf: *mut WCHAR) -> DWORD = 0 => current_directory(size, buf);
    fn SetCurrentDirectoryA(path: *const c_char) -> BOOL = FALSE => set_current_directory(ansi_exact(path));
    fn SetCurrentDirectoryW(path: *const WCHAR) -> BOOL = FALSE => set_current_directory(wide_exact(path));
}
