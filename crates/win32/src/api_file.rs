//! Files: `CreateFile`, `ReadFile`, `WriteFile`, `SetFilePointer(Ex)`,
//! `GetFileSize(Ex)`, `SetEndOfFile`, `FlushFileBuffers`, `DeleteFile`,
//! `GetTempPath`, `GetTempFileName`, `LockFile(Ex)`, `UnlockFile(Ex)`.
//! A regular file is shared with Windows' rules through the broker (share
//! modes across processes, mandatory byte-range locks, inheritable and
//! duplicable handles: see `objmgr::file`); a device stays this process's.
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
use objmgr::handle::Object;

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
pub(crate) fn io_error(e: &std::io::Error, path: Option<&str>) -> Win32Error {
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

/// `FILE_FLAG_DELETE_ON_CLOSE`.
const FILE_FLAG_DELETE_ON_CLOSE: DWORD = 0x0400_0000;

unsafe fn create_file(
    name: Name,
    access: DWORD,
    share: DWORD,
    attributes: *const SECURITY_ATTRIBUTES,
    (disposition, flags): (DWORD, DWORD),
) -> HANDLE {
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
        // Truncated only once the share modes allow this open (below).
        TRUNCATE_EXISTING if write => open(OFlags::empty()).map(|fd| (fd, true)),
        CREATE_ALWAYS | OPEN_ALWAYS => match open(create) {
            Err(rustix::io::Errno::EXIST) => open(OFlags::empty()).map(|fd| (fd, true)),
            other => other.map(|fd| (fd, false)),
        },
        _ => return fail(ERROR_INVALID_PARAMETER, INVALID_HANDLE_VALUE),
    };
    let (fd, existed) = match opened {
        Ok(opened) => opened,
        Err(e) => return fail(io_error(&e.into(), Some(&path)), INVALID_HANDLE_VALUE),
    };
    let file = File::from(fd);
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    // SAFETY: NULL or a SECURITY_ATTRIBUTES per the Win32 contract.
    let inherit = unsafe { crate::api_sync::inheritable(attributes) };
    let handle = if regular {
        // A regular file is shared with Windows' rules: the broker checks
        // the share mode against every other open of it.
        let registered = if flags & FILE_FLAG_DELETE_ON_CLOSE != 0 {
            objmgr::file::File::register_delete_on_close(
                file,
                access,
                share,
                inherit,
                std::path::Path::new(&path),
            )
        } else {
            objmgr::file::File::register(file, access, share, inherit)
        };
        let shared = match registered {
            Ok(shared) => shared,
            Err(e) => {
                // A file this call created is not left behind.
                if !existed {
                    let _ = std::fs::remove_file(&path);
                }
                return fail(e.code(), INVALID_HANDLE_VALUE);
            }
        };
        let truncate = matches!(disposition, TRUNCATE_EXISTING | CREATE_ALWAYS) && existed;
        if truncate && let Err(e) = shared.set_len(0) {
            return fail(e.code(), INVALID_HANDLE_VALUE);
        }
        table::insert_object(Object::File(shared))
    } else {
        // A device or pipe: this process's own.
        table::insert_file(file)
    };
    let reopened = matches!(disposition, CREATE_ALWAYS | OPEN_ALWAYS) && existed;
    SetLastError(if reopened {
        ERROR_ALREADY_EXISTS.code()
    } else {
        0
    });
    handle
}

/// The file behind `h`, or the error for a handle that is not one.
fn file_of(h: HANDLE) -> Result<Arc<Entry>, Win32Error> {
    let entry = table::lookup(h)?;
    match &*entry {
        Entry::File(_) | Entry::Object(Object::File(_)) => Ok(entry),
        Entry::Object(_) => Err(ERROR_INVALID_HANDLE),
    }
}

/// A file handle's file: a regular file shared through the broker, or one
/// of this process only (a device).
#[derive(Clone, Copy)]
enum AnyFile<'a> {
    Shared(&'a objmgr::file::File),
    Local(&'a File),
}

impl<'a> AnyFile<'a> {
    fn of(entry: &'a Entry) -> Option<AnyFile<'a>> {
        match entry {
            Entry::File(file) => Some(AnyFile::Local(file)),
            Entry::Object(Object::File(file)) => Some(AnyFile::Shared(file)),
            Entry::Object(_) => None,
        }
    }

    fn std(self) -> &'a File {
        match self {
            AnyFile::Shared(file) => file.as_std(),
            AnyFile::Local(file) => file,
        }
    }
}

fn with_file<T>(h: HANDLE, failure: T, op: impl FnOnce(AnyFile<'_>) -> Result<T, Win32Error>) -> T {
    match file_of(h) {
        Ok(entry) => match AnyFile::of(&entry) {
            Some(file) => op(file).unwrap_or_else(|code| fail(code, failure)),
            None => fail(ERROR_INVALID_HANDLE, failure),
        },
        Err(code) => fail(code, failure),
    }
}

/// Records the bytes moved in an `OVERLAPPED`, as Windows does.
unsafe fn done_overlapped(overlapped: *mut OVERLAPPED, bytes: usize) {
    if overlapped.is_null() {
        return;
    }
    // SAFETY: a writable OVERLAPPED per the Win32 contract.
    let event = unsafe {
        (*overlapped).Internal = 0;
        (*overlapped).InternalHigh = bytes;
        (*overlapped).hEvent
    };
    // Its event, if any, is signaled when the I/O is done (here, at once).
    if !event.is_null()
        && let Ok(entry) = table::object(event)
        && let Entry::Object(Object::Event(event)) = &*entry
    {
        let _ = event.set();
    }
}

unsafe fn read_file(
    h: HANDLE,
    buf: *mut u8,
    len: DWORD,
    read: *mut DWORD,
    overlapped: *mut OVERLAPPED,
) -> BOOL {
    // SAFETY: `buf` holds `len` writable bytes per the Win32 contract.
    let Some(buf) = (unsafe { ffi::bytes_mut(buf, len as usize) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    // SAFETY: NULL or an OVERLAPPED per the Win32 contract.
    let at = unsafe { ffi::get(overlapped) }.map(|o| join(o.OffsetHigh, o.Offset));
    with_file(h, FALSE, |file| {
        let n = match (file, at) {
            // At an offset: one positioned read (no other thread's seek can
            // come between), then the position follows, as on Windows.
            (AnyFile::Shared(shared), Some(offset)) => {
                let n = shared.read_at(offset, buf).map_err(|e| e.code())?;
                shared
                    .seek(SeekFrom::Start(offset + n as u64))
                    .map_err(|e| e.code())?;
                n
            }
            (AnyFile::Shared(shared), None) => shared.read(buf).map_err(|e| e.code())?,
            (AnyFile::Local(mut local), at) => {
                if let Some(offset) = at {
                    local
                        .seek(SeekFrom::Start(offset))
                        .map_err(|e| io_error(&e, None))?;
                }
                local.read(buf).map_err(|e| io_error(&e, None))?
            }
        };
        // SAFETY: NULL or writable, per the Win32 contract.
        unsafe {
            ffi::put(read, n as DWORD);
            done_overlapped(overlapped, n);
        }
        Ok(TRUE)
    })
}

unsafe fn write_file(
    h: HANDLE,
    buf: *const u8,
    len: DWORD,
    written: *mut DWORD,
    overlapped: *mut OVERLAPPED,
) -> BOOL {
    // SAFETY: `buf` holds `len` readable bytes per the Win32 contract.
    let Some(buf) = (unsafe { ffi::bytes(buf, len as usize) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    // SAFETY: NULL or an OVERLAPPED per the Win32 contract.
    let at = unsafe { ffi::get(overlapped) }.map(|o| join(o.OffsetHigh, o.Offset));
    with_file(h, FALSE, |file| {
        match (file, at) {
            (AnyFile::Shared(shared), Some(offset)) => {
                shared.write_at(offset, buf).map_err(|e| e.code())?;
                shared
                    .seek(SeekFrom::Start(offset + buf.len() as u64))
                    .map_err(|e| e.code())?;
            }
            (AnyFile::Shared(shared), None) => {
                shared.write(buf).map_err(|e| e.code())?;
            }
            (AnyFile::Local(mut local), at) => {
                if let Some(offset) = at {
                    local
                        .seek(SeekFrom::Start(offset))
                        .map_err(|e| io_error(&e, None))?;
                }
                local.write_all(buf).map_err(|e| io_error(&e, None))?;
            }
        }
        // SAFETY: NULL or writable, per the Win32 contract.
        unsafe {
            ffi::put(written, len);
            done_overlapped(overlapped, buf.len());
        }
        Ok(TRUE)
    })
}

/// Moves the file pointer; the new position.
fn seek(h: HANDLE, distance: i64, method: DWORD) -> Result<u64, Win32Error> {
    let entry = file_of(h)?;
    let mut file = AnyFile::of(&entry).ok_or(ERROR_INVALID_HANDLE)?.std();
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
    let file = AnyFile::of(&entry).ok_or(ERROR_INVALID_HANDLE)?.std();
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
    with_file(h, FALSE, |file| {
        let mut f = file.std();
        let position = f.stream_position().map_err(|e| io_error(&e, None))?;
        match file {
            // Refused while a section maps the file past it.
            AnyFile::Shared(shared) => shared.set_len(position).map_err(|e| e.code())?,
            AnyFile::Local(local) => local.set_len(position).map_err(|e| io_error(&e, None))?,
        }
        Ok(TRUE)
    })
}

fn flush_file(h: HANDLE) -> BOOL {
    with_file(h, FALSE, |file| {
        file.std().sync_all().map_err(|e| io_error(&e, None))?;
        Ok(TRUE)
    })
}

/// `LockFile(Ex)` (`lock`: exclusive, wait) / `UnlockFile(Ex)` (`None`)
/// on a shared file.
fn lock_range(h: HANDLE, offset: u64, len: u64, lock: Option<(bool, bool)>) -> BOOL {
    with_file(h, FALSE, |file| {
        let AnyFile::Shared(file) = file else {
            return Err(ERROR_INVALID_FUNCTION);
        };
        match lock {
            Some((exclusive, wait)) => file.lock(offset, len, exclusive, wait),
            None => file.unlock(offset, len),
        }
        .map_err(|e| e.code())?;
        Ok(TRUE)
    })
}

/// The offset an `OVERLAPPED` gives (`LockFileEx`); NULL is invalid.
unsafe fn overlapped_offset(overlapped: *const OVERLAPPED) -> Option<u64> {
    // SAFETY: NULL or an OVERLAPPED per the Win32 contract.
    unsafe { ffi::get(overlapped) }.map(|o| (u64::from(o.OffsetHigh) << 32) | u64::from(o.Offset))
}

const LOCKFILE_FAIL_IMMEDIATELY: DWORD = 0x1;
const LOCKFILE_EXCLUSIVE_LOCK: DWORD = 0x2;

fn join(high: DWORD, low: DWORD) -> u64 {
    (u64::from(high) << 32) | u64::from(low)
}

unsafe fn lock_file_ex(
    h: HANDLE,
    flags: DWORD,
    (low, high): (DWORD, DWORD),
    overlapped: *const OVERLAPPED,
) -> BOOL {
    // SAFETY: passed through.
    let Some(offset) = (unsafe { overlapped_offset(overlapped) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let exclusive = flags & LOCKFILE_EXCLUSIVE_LOCK != 0;
    let wait = flags & LOCKFILE_FAIL_IMMEDIATELY == 0;
    lock_range(h, offset, join(high, low), Some((exclusive, wait)))
}

unsafe fn unlock_file_ex(
    h: HANDLE,
    (low, high): (DWORD, DWORD),
    overlapped: *const OVERLAPPED,
) -> BOOL {
    // SAFETY: passed through.
    let Some(offset) = (unsafe { overlapped_offset(overlapped) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    lock_range(h, offset, join(high, low), None)
}

unsafe fn delete_file(name: Name) -> BOOL {
    // SAFETY: the Win32 name, passed through.
    let path = match unsafe { name.read() } {
        Ok(Some(path)) => path,
        Ok(None) => return fail(ERROR_PATH_NOT_FOUND, FALSE),
        Err(code) => return fail(code, FALSE),
    };
    // A file open without FILE_SHARE_DELETE stays; one open with it goes
    // with its last handle (new opens fail meanwhile).
    match objmgr::file::delete(std::path::Path::new(&path)) {
        Ok(()) => TRUE,
        // Not there: the path says which part is missing.
        Err(e) if matches!(e.code(), ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => {
            match std::fs::symlink_metadata(&path) {
                Err(e) => fail(io_error(&e, Some(&path)), FALSE),
                Ok(_) => fail(e.code(), FALSE),
            }
        }
        Err(e) => fail(e.code(), FALSE),
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
        => { let _ = template; create_file(Name::Ansi(name), access, share, a, (disposition, flags)) };
    fn CreateFileW(name: *const WCHAR, access: DWORD, share: DWORD, a: *const SECURITY_ATTRIBUTES, disposition: DWORD, flags: DWORD, template: HANDLE) -> HANDLE = INVALID_HANDLE_VALUE
        => { let _ = template; create_file(Name::Wide(name), access, share, a, (disposition, flags)) };
    fn ReadFile(h: HANDLE, buf: LPVOID, len: DWORD, read: *mut DWORD, overlapped: *mut OVERLAPPED) -> BOOL = FALSE
        => read_file(h, buf.cast(), len, read, overlapped);
    fn WriteFile(h: HANDLE, buf: *const std::ffi::c_void, len: DWORD, written: *mut DWORD, overlapped: *mut OVERLAPPED) -> BOOL = FALSE
        => write_file(h, buf.cast(), len, written, overlapped);
    fn SetFilePointer(h: HANDLE, low: LONG, high: *mut LONG, method: DWORD) -> DWORD = INVALID_SET_FILE_POINTER
        => set_file_pointer(h, low, high, method);
    fn SetFilePointerEx(h: HANDLE, distance: i64, new: *mut i64, method: DWORD) -> BOOL = FALSE
        => set_file_pointer_ex(h, distance, new, method);
    fn GetFileSize(h: HANDLE, high: *mut DWORD) -> DWORD = INVALID_FILE_SIZE => get_file_size(h, high);
    fn GetFileSizeEx(h: HANDLE, size: *mut i64) -> BOOL = FALSE => get_file_size_ex(h, size);
    fn SetEndOfFile(h: HANDLE) -> BOOL = FALSE => set_end_of_file(h);
    fn FlushFileBuffers(h: HANDLE) -> BOOL = FALSE => flush_file(h);
    fn LockFile(h: HANDLE, off_low: DWORD, off_high: DWORD, len_low: DWORD, len_high: DWORD) -> BOOL = FALSE
        => lock_range(h, join(off_high, off_low), join(len_high, len_low), Some((true, false)));
    fn UnlockFile(h: HANDLE, off_low: DWORD, off_high: DWORD, len_low: DWORD, len_high: DWORD) -> BOOL = FALSE
        => lock_range(h, join(off_high, off_low), join(len_high, len_low), None);
    fn LockFileEx(h: HANDLE, flags: DWORD, reserved: DWORD, len_low: DWORD, len_high: DWORD, overlapped: *const OVERLAPPED) -> BOOL = FALSE
        => { let _ = reserved; lock_file_ex(h, flags, (len_low, len_high), overlapped) };
    fn UnlockFileEx(h: HANDLE, reserved: DWORD, len_low: DWORD, len_high: DWORD, overlapped: *const OVERLAPPED) -> BOOL = FALSE
        => { let _ = reserved; unlock_file_ex(h, (len_low, len_high), overlapped) };
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
