//! The crate's raw-pointer reading and writing, in one place. Every function
//! here trusts what the Win32 contract promises of a non-NULL pointer (it is
//! valid for the documented use); NULL is always checked.

use std::ffi::{CStr, c_char};

use crate::types::{HANDLE, WCHAR};

/// The longest UTF-16 string read from C; a longer one (no NUL in sight)
/// ends there.
const MAX_WIDE: usize = 1 << 24;

/// The bytes of a NUL-terminated ANSI string; `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn ansi_bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated and live per the caller's contract.
    Some(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// The units of a NUL-terminated UTF-16 string; `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated UTF-16 string that outlives `'a`.
unsafe fn wide_units<'a>(ptr: *const WCHAR) -> Option<&'a [u16]> {
    if ptr.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: reading up to and including the terminating NUL, which the
    // caller guarantees exists.
    while len < MAX_WIDE && unsafe { *ptr.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units just read are initialized and live for `'a`.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A NUL-terminated ANSI (UTF-8) string, for text that is only shown
/// (invalid bytes become U+FFFD); `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn ansi(ptr: *const c_char) -> Option<String> {
    // SAFETY: per this function's contract.
    unsafe { ansi_bytes(ptr) }.map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// A NUL-terminated UTF-16 string, for text that is only shown (unpaired
/// surrogates become U+FFFD); `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated UTF-16 string.
pub unsafe fn wide(ptr: *const WCHAR) -> Option<String> {
    // SAFETY: per this function's contract.
    unsafe { wide_units(ptr) }.map(String::from_utf16_lossy)
}

/// A string that names something (an object, a file): exactly, or not at
/// all. Bytes that are not UTF-8 (the ANSI code page here) or UTF-16 with
/// unpaired surrogates are `Err`, never replaced: replacing would make
/// different names open the same object or file.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn ansi_exact(ptr: *const c_char) -> Result<Option<String>, ()> {
    // SAFETY: per this function's contract.
    match unsafe { ansi_bytes(ptr) } {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ()),
    }
}

/// [`ansi_exact`] for UTF-16.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated UTF-16 string.
pub unsafe fn wide_exact(ptr: *const WCHAR) -> Result<Option<String>, ()> {
    // SAFETY: per this function's contract.
    match unsafe { wide_units(ptr) } {
        None => Ok(None),
        Some(units) => String::from_utf16(units).map(Some).map_err(|_| ()),
    }
}

/// Stores `value` through `ptr` if it is not NULL; false for NULL.
///
/// # Safety
/// `ptr` is NULL or valid for writing a `T`.
pub unsafe fn put<T>(ptr: *mut T, value: T) -> bool {
    if ptr.is_null() {
        return false;
    }
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { ptr.write_unaligned(value) };
    true
}

/// Reads a `T` through `ptr`, or `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or valid for reading a `T`.
pub unsafe fn get<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: non-NULL and readable per the caller's contract.
    (!ptr.is_null()).then(|| unsafe { ptr.read_unaligned() })
}

/// `len` bytes at `ptr` (an empty slice for NULL with `len` 0).
///
/// # Safety
/// `ptr` is valid for reading `len` bytes, or `len` is 0.
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: non-NULL and readable for `len` bytes per the caller's contract.
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` writable bytes at `ptr`.
///
/// # Safety
/// `ptr` is valid for writing `len` bytes, or `len` is 0.
pub unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    if len == 0 {
        return Some(&mut []);
    }
    // SAFETY: non-NULL and writable for `len` bytes per the caller's contract.
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Writes `s` as a NUL-terminated string into a buffer of `size` units;
/// returns the length written (without NUL), or `None` if it does not fit.
///
/// # Safety
/// `buf` is valid for writing `size` units.
pub unsafe fn put_string<T: Copy + From<u8>>(
    buf: *mut T,
    size: usize,
    units: &[T],
) -> Option<usize> {
    if buf.is_null() || units.len() + 1 > size {
        return None;
    }
    // SAFETY: `units.len() + 1 <= size` units are writable per the caller.
    unsafe {
        std::ptr::copy_nonoverlapping(units.as_ptr(), buf, units.len());
        buf.add(units.len()).write(T::from(0));
    }
    Some(units.len())
}

/// The handle value as the broker numbers it (pseudo-handles keep their
/// 32-bit form: `-1` is `0xFFFFFFFF`).
pub fn handle_value(handle: HANDLE) -> Option<u32> {
    let raw = handle as isize;
    match raw {
        -2 | -1 => Some(raw as i32 as u32),
        // Windows ignores the two low bits of a handle value (they are free
        // for the application's tags); objmgr's values are multiples of 4.
        0.. if raw <= u32::MAX as isize => Some(raw as u32 & !3),
        _ => None,
    }
}

/// A handle from a broker value.
pub fn to_handle(value: u32) -> HANDLE {
    if value >= u32::MAX - 1 {
        value as i32 as isize as HANDLE
    } else {
        value as usize as HANDLE
    }
}
