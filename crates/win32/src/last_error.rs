//! `GetLastError`/`SetLastError` (per thread, as on Windows) and the guard
//! every exported function runs under.

use std::cell::Cell;

use objmgr::Error;
use objmgr_proto::Win32Error;
use objmgr_proto::error::ERROR_INTERNAL_ERROR;

use crate::types::DWORD;

thread_local! {
    static LAST_ERROR: Cell<DWORD> = const { Cell::new(0) };
}

/// `GetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn GetLastError() -> DWORD {
    LAST_ERROR.with(Cell::get)
}

/// `SetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn SetLastError(code: DWORD) {
    LAST_ERROR.with(|e| e.set(code));
}

/// Sets the last error to `code` and returns `value` (a failure value).
pub(crate) fn fail<T>(code: Win32Error, value: T) -> T {
    SetLastError(code.code());
    value
}

/// The value of `result`, or `failure` with the error's code as last error.
pub(crate) fn or_fail<T>(result: Result<T, Error>, failure: T) -> T {
    result.unwrap_or_else(|e| fail(e.code(), failure))
}

/// Runs an exported function's body; a panic becomes `ERROR_INTERNAL_ERROR`
/// and `failure`, never an unwind into C.
pub(crate) fn guard<T>(failure: T, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => fail(ERROR_INTERNAL_ERROR, failure),
    }
}
