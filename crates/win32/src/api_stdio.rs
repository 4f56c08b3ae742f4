//! Standard handles, anonymous pipes and file facts: `GetStdHandle`,
//! `SetStdHandle`, `CreatePipe`, `GetFileType`,
//! `GetFileInformationByHandle`, `GetFileAttributesA/W`, `MoveFileExA/W`.
//! Pipe ends are objmgr handles (inherited by value and duplicated like
//! any); a child also gets them as its standard streams
//! (`STARTF_USESTDHANDLES`), the classic redirect-the-child's-output
//! pattern. Standard streams are this process's own file handles.

use std::ffi::c_char;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use objmgr::handle::Object;
use objmgr_proto::error::*;

use crate::api_file::io_error;
use crate::api_sync::{Name, exports};
use crate::ffi;
use crate::last_error::{SetLastError, fail, guard};
use crate::table::{self, Entry};
use crate::types::*;

const STD_INPUT_HANDLE: DWORD = -10i32 as DWORD;
const STD_OUTPUT_HANDLE: DWORD = -11i32 as DWORD;
const STD_ERROR_HANDLE: DWORD = -12i32 as DWORD;

const FILE_TYPE_UNKNOWN: DWORD = 0;
const FILE_TYPE_DISK: DWORD = 1;
const FILE_TYPE_CHAR: DWORD = 2;
const FILE_TYPE_PIPE: DWORD = 3;

const FILE_ATTRIBUTE_READONLY: DWORD = 0x1;
const FILE_ATTRIBUTE_DIRECTORY: DWORD = 0x10;
const FILE_ATTRIBUTE_NORMAL: DWORD = 0x80;
const INVALID_FILE_ATTRIBUTES: DWORD = u32::MAX;

const MOVEFILE_REPLACE_EXISTING: DWORD = 0x1;
const MOVEFILE_COPY_ALLOWED: DWORD = 0x2;
const MOVEFILE_DELAY_UNTIL_REBOOT: DWORD = 0x4;
const MOVEFILE_WRITE_THROUGH: DWORD = 0x8;
const MOVEFILE_CREATE_HARDLINK: DWORD = 0x10;
const MOVEFILE_FAIL_IF_NOT_TRACKABLE: DWORD = 0x20;

/// The handles `GetStdHandle` gives (made on first use), by stream.
static STANDARD: Mutex<[Option<usize>; 3]> = Mutex::new([None; 3]);

fn stream(which: DWORD) -> Option<usize> {
    match which {
        STD_INPUT_HANDLE => Some(0),
        STD_OUTPUT_HANDLE => Some(1),
        STD_ERROR_HANDLE => Some(2),
        _ => None,
    }
}

fn get_std_handle(which: DWORD) -> HANDLE {
    let Some(i) = stream(which) else {
        return fail(ERROR_INVALID_HANDLE, INVALID_HANDLE_VALUE);
    };
    let mut standard = STANDARD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = standard[i] {
        return h as HANDLE;
    }
    // A copy of the stream's fd: closing the handle leaves the stream.
    let fd = match i {
        0 => std::io::stdin().as_fd().try_clone_to_owned(),
        1 => std::io::stdout().as_fd().try_clone_to_owned(),
        _ => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    match fd {
        Ok(fd) => {
            let h = table::insert_file(File::from(fd));
            standard[i] = Some(h as usize);
            h
        }
        // No such stream (closed): as on Windows, no handle.
        Err(_) => std::ptr::null_mut(),
    }
}

/// The standard handles, locked (for the `fork()` handlers; taken before
/// the handle table, which `GetStdHandle` takes while holding them).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(STANDARD.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `h` was closed: a standard handle it was is made again on next use.
pub(crate) fn forget_std_handle(h: HANDLE) {
    crate::fork::guard();
    let mut standard = STANDARD.lock().unwrap_or_else(|p| p.into_inner());
    for slot in standard.iter_mut() {
        if *slot == Some(h as usize) {
            *slot = None;
        }
    }
}

fn set_std_handle(which: DWORD, h: HANDLE) -> BOOL {
    let Some(i) = stream(which) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    STANDARD.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(h as usize);
    TRUE
}

unsafe fn create_pipe(read: *mut HANDLE, write: *mut HANDLE, inherit: bool, size: DWORD) -> BOOL {
    if read.is_null() || write.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let (r, w) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok(ends) => ends,
        Err(e) => return fail(Win32Error::from_errno(e.raw_os_error()), FALSE),
    };
    if size > 0 {
        // A hint, as on Windows: the kernel rounds it (or keeps its own).
        let _ = rustix::pipe::fcntl_setpipe_size(&w, size as usize);
    }
    // Both ends are objmgr handles: inherited (by value, with
    // bInheritHandles) and duplicated into other processes like any.
    use objmgr::file::{FILE_READ_DATA, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA};
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE;
    let ends = objmgr::file::File::register(File::from(r), FILE_READ_DATA, share, inherit)
        .and_then(|r| {
            Ok((
                r,
                objmgr::file::File::register(File::from(w), FILE_WRITE_DATA, share, inherit)?,
            ))
        });
    match ends {
        Ok((r, w)) => {
            // SAFETY: checked non-NULL; writable per the Win32 contract.
            unsafe {
                ffi::put(read, table::insert_object(Object::File(r)));
                ffi::put(write, table::insert_object(Object::File(w)));
            }
            TRUE
        }
        Err(e) => fail(e.code(), FALSE),
    }
}

/// The metadata of the file behind a file handle.
fn metadata(h: HANDLE) -> Result<std::fs::Metadata, Win32Error> {
    let entry = table::lookup(h)?;
    let file = match &*entry {
        Entry::File(file) => file,
        Entry::Object(Object::File(file)) => file.as_std(),
        Entry::Object(_) => return Err(ERROR_INVALID_HANDLE),
    };
    file.metadata()
        .map_err(|e| Win32Error::from_errno(e.raw_os_error().unwrap_or(0)))
}

fn get_file_type(h: HANDLE) -> DWORD {
    match metadata(h) {
        Ok(meta) => {
            SetLastError(0);
            let kind = meta.file_type();
            use std::os::unix::fs::FileTypeExt;
            if kind.is_file() || kind.is_dir() {
                FILE_TYPE_DISK
            } else if kind.is_char_device() {
                FILE_TYPE_CHAR
            } else if kind.is_fifo() || kind.is_socket() {
                FILE_TYPE_PIPE
            } else {
                FILE_TYPE_UNKNOWN
            }
        }
        Err(code) => fail(code, FILE_TYPE_UNKNOWN),
    }
}

fn filetime(secs: i64, nanos: i64) -> FILETIME {
    crate::api_time::to_filetime(crate::api_time::ticks_from_unix(secs, nanos))
}

fn attributes(meta: &std::fs::Metadata) -> DWORD {
    let mut attributes = 0;
    if meta.is_dir() {
        attributes |= FILE_ATTRIBUTE_DIRECTORY;
    }
    if meta.permissions().readonly() {
        attributes |= FILE_ATTRIBUTE_READONLY;
    }
    if attributes == 0 {
        FILE_ATTRIBUTE_NORMAL
    } else {
        attributes
    }
}

unsafe fn get_file_information(h: HANDLE, info: *mut BY_HANDLE_FILE_INFORMATION) -> BOOL {
    if info.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    match metadata(h) {
        Ok(meta) => {
            let value = BY_HANDLE_FILE_INFORMATION {
                dwFileAttributes: attributes(&meta),
                // Linux keeps no creation time in stat: the change time.
                ftCreationTime: filetime(meta.ctime(), meta.ctime_nsec()),
                ftLastAccessTime: filetime(meta.atime(), meta.atime_nsec()),
                ftLastWriteTime: filetime(meta.mtime(), meta.mtime_nsec()),
                dwVolumeSerialNumber: meta.dev() as DWORD,
                nFileSizeHigh: (meta.size() >> 32) as DWORD,
                nFileSizeLow: meta.size() as DWORD,
                nNumberOfLinks: meta.nlink() as DWORD,
                nFileIndexHigh: (meta.ino() >> 32) as DWORD,
                nFileIndexLow: meta.ino() as DWORD,
            };
            // SAFETY: checked non-NULL; writable per the Win32 contract.
            unsafe { ffi::put(info, value) };
            TRUE
        }
        Err(code) => fail(code, FALSE),
    }
}

unsafe fn get_file_attributes(name: Name) -> DWORD {
    // SAFETY: the Win32 name, passed through.
    let path = match unsafe { name.read() } {
        Ok(Some(path)) => path,
        Ok(None) => return fail(ERROR_PATH_NOT_FOUND, INVALID_FILE_ATTRIBUTES),
        Err(code) => return fail(code, INVALID_FILE_ATTRIBUTES),
    };
    match std::fs::metadata(&path) {
        Ok(meta) => attributes(&meta),
        Err(e) => fail(io_error(&e, Some(&path)), INVALID_FILE_ATTRIBUTES),
    }
}

unsafe fn move_file(from: Name, to: Name, flags: DWORD) -> BOOL {
    // SAFETY: the Win32 names, passed through.
    let (from, to) = match unsafe { (from.read(), to.read()) } {
        (Ok(Some(from)), Ok(Some(to))) => (from, to),
        (Err(code), _) | (_, Err(code)) => return fail(code, FALSE),
        _ => return fail(ERROR_INVALID_PARAMETER, FALSE),
    };
    let known = MOVEFILE_REPLACE_EXISTING
        | MOVEFILE_COPY_ALLOWED
        | MOVEFILE_DELAY_UNTIL_REBOOT
        | MOVEFILE_WRITE_THROUGH
        | MOVEFILE_CREATE_HARDLINK
        | MOVEFILE_FAIL_IF_NOT_TRACKABLE;
    if flags & !known != 0 {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    if flags
        & (MOVEFILE_DELAY_UNTIL_REBOOT | MOVEFILE_CREATE_HARDLINK | MOVEFILE_FAIL_IF_NOT_TRACKABLE)
        != 0
    {
        // Never done now instead of later, or otherwise than asked.
        return fail(ERROR_NOT_SUPPORTED, FALSE);
    }
    let replace = flags & MOVEFILE_REPLACE_EXISTING != 0;
    // Moving a name deletes it (and a replaced target): the opens of those
    // files must share deleting.
    let targets: &[&str] = if replace { &[&from, &to] } else { &[&from] };
    for path in targets {
        if let Err(e) = objmgr::file::check_move(std::path::Path::new(path))
            && !matches!(e.code(), ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND)
        {
            return fail(e.code(), FALSE);
        }
    }
    let rename_flags = if replace {
        rustix::fs::RenameFlags::empty()
    } else {
        rustix::fs::RenameFlags::NOREPLACE
    };
    match rustix::fs::renameat_with(rustix::fs::CWD, &from, rustix::fs::CWD, &to, rename_flags) {
        Ok(()) => TRUE,
        Err(rustix::io::Errno::EXIST) => fail(ERROR_ALREADY_EXISTS, FALSE),
        // Across file systems: COPY_ALLOWED would copy; objmgr does not.
        Err(rustix::io::Errno::XDEV) => fail(ERROR_NOT_SAME_DEVICE, FALSE),
        Err(e) => fail(io_error(&e.into(), Some(&from)), FALSE),
    }
}

exports! {
    fn GetStdHandle(which: DWORD) -> HANDLE = INVALID_HANDLE_VALUE => get_std_handle(which);
    fn SetStdHandle(which: DWORD, h: HANDLE) -> BOOL = FALSE => set_std_handle(which, h);
    fn CreatePipe(read: *mut HANDLE, write: *mut HANDLE, attributes: *const SECURITY_ATTRIBUTES, size: DWORD) -> BOOL = FALSE
        => create_pipe(read, write, crate::api_sync::inheritable(attributes), size);
    fn GetFileType(h: HANDLE) -> DWORD = FILE_TYPE_UNKNOWN => get_file_type(h);
    fn GetFileInformationByHandle(h: HANDLE, info: *mut BY_HANDLE_FILE_INFORMATION) -> BOOL = FALSE
        => get_file_information(h, info);
    fn GetFileAttributesA(name: *const c_char) -> DWORD = INVALID_FILE_ATTRIBUTES => get_file_attributes(Name::Ansi(name));
    fn GetFileAttributesW(name: *const WCHAR) -> DWORD = INVALID_FILE_ATTRIBUTES => get_file_attributes(Name::Wide(name));
    fn MoveFileExA(from: *const c_char, to: *const c_char, flags: DWORD) -> BOOL = FALSE
        => move_file(Name::Ansi(from), Name::Ansi(to), flags);
    fn MoveFileExW(from: *const WCHAR, to: *const WCHAR, flags: DWORD) -> BOOL = FALSE
        => move_file(Name::Wide(from), Name::Wide(to), flags);
}
