//! Files: `CreateFile`, `ReadFile`, `WriteFile`, `SetFilePointer(Ex)`,
//! `GetFileSize(Ex)`, `SetEndOfFile`, `FlushFileBuffers`, `DeleteFile`,
//! `GetTempPath`, `GetTempFileName`. File handles stay in this process
//! (they cannot be inherited or duplicated into another process).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_char;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use objmgr_proto::Win32Error;
use objmgr_proto::access::{GENERIC_ALL, GENERIC_READ, GENERIC_WRITE};
use objmgr_proto::error::*;

use crate::api_sync::{Name, exports};
use crate::ffi::{self, ansi_exact, wide_exact};
use crate::last_error::{SetLastError, fail, guard};
use crate::table::{self, Entry};
use crate::types::*;

const CREATE_NEW: DWORD = 1;
const CREATE_ALWAYS: DWORD = 2;
const OPEN_EXISTING: DWORD = 3;
const OPEN_ALWAYS: DWORD = 4;
const TRUNCATE_EXISTING: DWORD = 5;
const FILE_BEGIN: DWORD = 0;
const FILE_CURRENT: DWORD = 1;
const FILE_END: DWORD = 2;
const INVALID_SET_FILE_POINTER: DWORD = u32::MAX;
const INVALID_FILE_SIZE: DWORD = u32::MAX;
/// `FILE_READ_DATA`/`FILE_WRITE_DATA`/`FILE_APPEND_DATA`.
const FILE_READ_DATA: DWORD = 0x1;
const FILE_WRITE_DATA: DWORD = 0x2;
const FILE_APPEND_DATA: DWORD = 0x4;

/// The Win32 code for an I/O error.
fn io_error(e: &std::io::Error, path: Option<&str>) -> Win32Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            // A missing directory on the way is ERROR_PATH_NOT_FOUND.
            let parent_missing = path
                .and_then(|p| std::path::Path::new(p).parent())
                .is_some_and(|d| !d.as_os_str().is_empty() && !d.exists());
            if parent_missing {
                ERROR_PATH_NOT_FOUND
            } else {
                ERROR_FILE_NOT_FOUND
            }
        }
        std::io::ErrorKind::AlreadyExists => ERROR_FILE_EXISTS,
        std::io::ErrorKind::PermissionDenied => ERROR_ACCESS_DENIED,
        _ => Win32Error::from_errno(e.raw_os_error().unwrap_or(0)),
    }
}

unsafe fn create_file(name: Name, access: DWORD, disposition: DWORD) -> HANDLE {
    use rustix::fs::{Mode, OFlags};
    // SAFETY: the Win32 name, passed through.
    let path = match unsafe { name.read() } {
        Ok(Some(path)) => path,
        Ok(None) => return fail(ERROR_PATH_NOT_FOUND, INVALID_HANDLE_VALUE),
        Err(code) => return fail(code, INVALID_HANDLE_VALUE),
    };
    let read = access & (GENERIC_READ | GENERIC_ALL | FILE_READ_DATA) != 0;
    let write = access & (GENERIC_WRITE | GENERIC_ALL | FILE_WRITE_DATA | FILE_APPEND_DATA) != 0;
    let mode = match (read, write) {
        (_, false) => OFlags::RDONLY,
        (false, true) => OFlags::WRONLY,
        (true, true) => OFlags::RDWR,
    };
    let open = |extra: OFlags| {
        rustix::fs::open(
            &path,
            mode | OFlags::CLOEXEC | extra,
            Mode::from_bits_truncate(0o666),
        )
    };
    let create = OFlags::CREATE | OFlags::EXCL;
    // Returns the fd and whether the file existed before.
    let opened = match disposition {
        CREATE_NEW => open(create).map(|fd| (fd, false)),
        OPEN_EXISTING => open(OFlags::empty()).map(|fd| (fd, true)),
        TRUNCATE_EXISTING if write => open(OFlags::TRUNC).map(|fd| (fd, true)),
        CREATE_ALWAYS | OPEN_ALWAYS => {
            let again = if disposition == CREATE_ALWAYS {
                OFlags::TRUNC
            } else {
                OFlags::empty()
            };
            match open(create) {
                Err(rustix::io::Errno::EXIST) => open(again).map(|fd| (fd, true)),
                other => other.map(|fd| (fd, false)),
            }
        }
        _ => return fail(ERROR_INVALID_PARAMETER, INVALID_HANDLE_VALUE),
    };
    match opened {
        Ok((fd, existed)) => {
            let reopened = matches!(disposition, CREATE_ALWAYS | OPEN_ALWAYS) && existed;
            SetLastError(if reopened {
                ERROR_ALREADY_EXISTS.code()
            } else {
                0
            });
            table::insert_file(File::from(fd))
        }
        Err(e) => fail(io_error(&e.into(), Some(&path)), INVALID_HANDLE_VALUE),
    }
}

/// The file behind `h`, or the error for a handle that is not one.
fn file_of(h: HANDLE) -> Result<Arc<Entry>, Win32Error> {
    if !table::is_file(h) {
        return Err(ERROR_INVALID_HANDLE);
    }
    table::lookup(h)
}

fn with_file<T>(h: HANDLE, failure: T, op: impl FnOnce(&File) -> Result<T, Win32Error>) -> T {
    match file_of(h) {
        Ok(entry) => match &*entry {
            Entry::File(file) => op(file).unwrap_or_else(|code| fail(code, failure)),
            Entry::Object(_) => fail(ERROR_INVALID_HANDLE, failure),
        },
        Err(code) => fail(code, failure),
    }
}

unsafe fn read_file(
    h: HANDLE,
    buf: *mut u8,
    len: DWORD,
    read: *mut DWORD,
    overlapped: LPVOID,
) -> BOOL {
    if !overlapped.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE); // no overlapped I/O here
    }
    // SAFETY: `buf` holds `len` writable bytes per the Win32 contract.
    let Some(buf) = (unsafe { ffi::bytes_mut(buf, len as usize) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    with_file(h, FALSE, |mut file| {
        let n = file.read(buf).map_err(|e| io_error(&e, None))?;
        // SAFETY: NULL or a writable DWORD.
        unsafe { ffi::put(read, n as DWORD) };
        Ok(TRUE)
    })
}

unsafe fn write_file(
    h: HANDLE,
    buf: *const u8,
    len: DWORD,
    written: *mut DWORD,
    overlapped: LPVOID,
) -> BOOL {
    if !overlapped.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    // SAFETY: `buf` holds `len` readable bytes per the Win32 contract.
    let Some(buf) = (unsafe { ffi::bytes(buf, len as usize) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    with_file(h, FALSE, |mut file| {
        file.write_all(buf).map_err(|e| io_error(&e, None))?;
        // SAFETY: NULL or a writable DWORD.
        unsafe { ffi::put(written, len) };
        Ok(TRUE)
    })
}

/// Moves the file pointer; the new position.
fn seek(h: HANDLE, distance: i64, method: DWORD) -> Result<u64, Win32Error> {
    let entry = file_of(h)?;
    let Entry::File(file) = &*entry else {
        return Err(ERROR_INVALID_HANDLE);
    };
    let mut file: &File = file;
    let base = match method {
        FILE_BEGIN => 0,
        FILE_CURRENT => file.stream_position().map_err(|e| io_error(&e, None))? as i64,
        FILE_END => file.metadata().map_err(|e| io_error(&e, None))?.len() as i64,
        _ => return Err(ERROR_INVALID_PARAMETER),
    };
    let target = base.checked_add(distance).ok_or(ERROR_INVALID_PARAMETER)?;
    if target < 0 {
        return Err(ERROR_NEGATIVE_SEEK);
    }
    file.seek(SeekFrom::Start(target as u64))
        .map_err(|e| io_error(&e, None))
}

unsafe fn set_file_pointer(h: HANDLE, low: LONG, high: *mut LONG, method: DWORD) -> DWORD {
    // SAFETY: NULL or a readable/writable LONG per the Win32 contract.
    let distance = match unsafe { ffi::get(high) } {
        Some(high) => (i64::from(high) << 32) | i64::from(low as u32),
        None => i64::from(low),
    };
    let before = match file_of(h).and_then(|_| seek(h, 0, FILE_CURRENT)) {
        Ok(position) => position,
        Err(code) => return fail(code, INVALID_SET_FILE_POINTER),
    };
    match seek(h, distance, method) {
        // Without a high part the position must fit 32 bits, else the call
        // fails and the pointer stays where it was.
        Ok(position) if high.is_null() && position > u64::from(u32::MAX - 1) => {
            let _ = seek(h, before as i64, FILE_BEGIN);
            fail(ERROR_INVALID_PARAMETER, INVALID_SET_FILE_POINTER)
        }
        Ok(position) => {
            // SAFETY: as above.
            unsafe { ffi::put(high, (position >> 32) as LONG) };
            SetLastError(0);
            position as DWORD
        }
        Err(code) => fail(code, INVALID_SET_FILE_POINTER),
    }
}

unsafe fn set_file_pointer_ex(h: HANDLE, distance: i64, new: *mut i64, method: DWORD) -> BOOL {
    match seek(h, distance, method) {
        Ok(position) => {
            // SAFETY: NULL or a writable LARGE_INTEGER.
            unsafe { ffi::put(new, position as i64) };
            TRUE
        }
        Err(code) => fail(code, FALSE),
    }
}

fn size_of(h: HANDLE) -> Result<u64, Win32Error> {
    let entry = file_of(h)?;
    let Entry::File(file) = &*entry else {
        return Err(ERROR_INVALID_HANDLE);
    };
    Ok(file.metadata().map_err(|e| io_error(&e, None))?.len())
}

unsafe fn get_file_size(h: HANDLE, high: *mut DWORD) -> DWORD {
    match size_of(h) {
        Ok(size) => {
            // SAFETY: NULL or a writable DWORD.
            unsafe { ffi::put(high, (size >> 32) as DWORD) };
            SetLastError(0);
            size as DWORD
        }
        Err(code) => fail(code, INVALID_FILE_SIZE),
    }
}

unsafe fn get_file_size_ex(h: HANDLE, size: *mut i64) -> BOOL {
    if size.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    match size_of(h) {
        // SAFETY: checked non-NULL; writable per the Win32 contract.
        Ok(n) => unsafe { ffi::put(size, n as i64) as BOOL },
        Err(code) => fail(code, FALSE),
    }
}

fn set_end_of_file(h: HANDLE) -> BOOL {
    with_file(h, FALSE, |mut file| {
        let position = file.stream_position().map_err(|e| io_error(&e, None))?;
        file.set_len(position).map_err(|e| io_error(&e, None))?;
        Ok(TRUE)
    })
}

fn flush_file(h: HANDLE) -> BOOL {
    with_file(h, FALSE, |file| {
        file.sync_all().map_err(|e| io_error(&e, None))?;
        Ok(TRUE)
    })
}

unsafe fn delete_file(name: Name) -> BOOL {
    // SAFETY: the Win32 name, passed through.
    let path = match unsafe { name.read() } {
        Ok(Some(path)) => path,
        Ok(None) => return fail(ERROR_PATH_NOT_FOUND, FALSE),
        Err(code) => return fail(code, FALSE),
    };
    match std::fs::remove_file(&path) {
        Ok(()) => TRUE,
        Err(e) => fail(io_error(&e, Some(&path)), FALSE),
    }
}

/// `GetTempPath`: `$TMPDIR` (else `/tmp`) with a trailing `/`.
fn temp_path() -> String {
    let mut dir = std::env::var("TMPDIR")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/tmp".to_owned());
    if !dir.ends_with('/') {
        dir.push('/');
    }
    dir
}

/// Copies `text` to a C buffer of `size` units: the length without NUL on
/// success, else the size needed with the NUL (and nothing copied).
unsafe fn give_string<T: Copy + From<u8>>(buf: *mut T, size: DWORD, units: &[T]) -> DWORD {
    // SAFETY: `buf` holds `size` units per the Win32 contract.
    match unsafe { ffi::put_string(buf, size as usize, units) } {
        Some(n) => n as DWORD,
        None => units.len() as DWORD + 1,
    }
}

/// `GetTempFileName`: `PATH/PRE<hex>.tmp`; `unique` 0 picks a number and
/// creates the file (empty), else only builds the name.
fn temp_file_name(path: &str, prefix: &str, unique: u32) -> Result<(String, u32), Win32Error> {
    let prefix: String = prefix.chars().take(3).collect();
    let dir = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    // Checked before anything is created: "PPPXXXX.tmp" and the NUL must
    // fit in MAX_PATH.
    if dir.len() + prefix.len() + 4 + ".tmp".len() + 1 > 260 {
        return Err(ERROR_BUFFER_OVERFLOW);
    }
    if unique != 0 {
        return Ok((
            format!("{dir}{prefix}{:X}.tmp", unique & 0xFFFF),
            unique & 0xFFFF,
        ));
    }
    let seed = (std::process::id()
        ^ (std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.subsec_nanos())))
        & 0xFFFF;
    for i in 0..0x10000u32 {
        let n = ((seed + i) & 0xFFFF).max(1);
        let name = format!("{dir}{prefix}{n:X}.tmp");
        match OpenOptions::new().write(true).create_new(true).open(&name) {
            Ok(_) => return Ok((name, n)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&e, Some(&name))),
        }
    }
    Err(ERROR_FILE_EXISTS)
}

unsafe fn get_temp_file_name<T: Copy + From<u8>>(
    path: Result<Option<String>, ()>,
    prefix: Result<Option<String>, ()>,
    unique: u32,
    buf: *mut T,
    units: impl Fn(&str) -> Vec<T>,
) -> u32 {
    let (Ok(path), Ok(prefix)) = (path, prefix) else {
        return fail(ERROR_INVALID_NAME, 0);
    };
    let (Some(path), false) = (path, buf.is_null()) else {
        return fail(ERROR_INVALID_PARAMETER, 0);
    };
    match temp_file_name(&path, &prefix.unwrap_or_default(), unique) {
        Ok((name, n)) => {
            // SAFETY: the buffer holds MAX_PATH units per the Win32 contract.
            if unsafe { ffi::put_string(buf, 260, &units(&name)) }.is_none() {
                return fail(ERROR_BUFFER_OVERFLOW, 0);
            }
            n
        }
        Err(code) => fail(code, 0),
    }
}

exports! {
    fn CreateFileA(name: *const c_char, access: DWORD, share: DWORD, a: *const SECURITY_ATTRIBUTES, disposition: DWORD, flags: DWORD, template: HANDLE) -> HANDLE = INVALID_HANDLE_VALUE
        => { let _ = (share, a, flags, template); create_file(Name::Ansi(name), access, disposition) };
    fn CreateFileW(name: *const WCHAR, access: DWORD, share: DWORD, a: *const SECURITY_ATTRIBUTES, disposition: DWORD, flags: DWORD, template: HANDLE) -> HANDLE = INVALID_HANDLE_VALUE
        => { let _ = (share, a, flags, template); create_file(Name::Wide(name), access, disposition) };
    fn ReadFile(h: HANDLE, buf: LPVOID, len: DWORD, read: *mut DWORD, overlapped: LPVOID) -> BOOL = FALSE
        => read_file(h, buf.cast(), len, read, overlapped);
    fn WriteFile(h: HANDLE, buf: *const std::ffi::c_void, len: DWORD, written: *mut DWORD, overlapped: LPVOID) -> BOOL = FALSE
        => write_file(h, buf.cast(), len, written, overlapped);
    fn SetFilePointer(h: HANDLE, low: LONG, high: *mut LONG, method: DWORD) -> DWORD = INVALID_SET_FILE_POINTER
        => set_file_pointer(h, low, high, method);
    fn SetFilePointerEx(h: HANDLE, distance: i64, new: *mut i64, method: DWORD) -> BOOL = FALSE
        => set_file_pointer_ex(h, distance, new, method);
    fn GetFileSize(h: HANDLE, high: *mut DWORD) -> DWORD = INVALID_FILE_SIZE => get_file_size(h, high);
    fn GetFileSizeEx(h: HANDLE, size: *mut i64) -> BOOL = FALSE => get_file_size_ex(h, size);
    fn SetEndOfFile(h: HANDLE) -> BOOL = FALSE => set_end_of_file(h);
    fn FlushFileBuffers(h: HANDLE) -> BOOL = FALSE => flush_file(h);
    fn DeleteFileA(name: *const c_char) -> BOOL = FALSE => delete_file(Name::Ansi(name));
    fn DeleteFileW(name: *const WCHAR) -> BOOL = FALSE => delete_file(Name::Wide(name));
    fn GetTempPathA(size: DWORD, buf: *mut c_char) -> DWORD = 0
        => give_string(buf.cast::<u8>(), size, temp_path().as_bytes());
    fn GetTempPathW(size: DWORD, buf: *mut WCHAR) -> DWORD = 0
        => give_string(buf, size, &temp_path().encode_utf16().collect::<Vec<_>>());
    fn GetTempFileNameA(path: *const c_char, prefix: *const c_char, unique: u32, buf: *mut c_char) -> u32 = 0
        => get_temp_file_name(ansi_exact(path), ansi_exact(prefix), unique, buf.cast::<u8>(), |s| s.as_bytes().to_vec());
    fn GetTempFileNameW(path: *const WCHAR, prefix: *const WCHAR, unique: u32, buf: *mut WCHAR) -> u32 = 0
        => get_temp_file_name(wide_exact(path), wide_exact(prefix), unique, buf, |s| s.encode_utf16().collect());
}
