//! Processes and threads: `CreateProcess` (with `bInheritHandles`),
//! `OpenProcess`, `GetExitCodeProcess`, `TerminateProcess`, `CreateThread`,
//! `GetExitCodeThread`, `ExitThread`.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::os::fd::OwnedFd;

use objmgr::handle::Object;
use objmgr::process::{Command, Process, Stdio};
use objmgr_proto::error::*;
use objmgr_proto::process::STILL_ACTIVE;

use crate::api_sync::exports;
use crate::ffi::{self, ansi_exact, wide_exact};
use crate::last_error::{fail, guard, or_fail};
use crate::table::{self, Entry};
use crate::types::*;

const STARTF_USESTDHANDLES: DWORD = 0x100;
const CREATE_SUSPENDED: DWORD = 0x4;
const CREATE_UNICODE_ENVIRONMENT: DWORD = 0x400;

/// Splits a command line as `CommandLineToArgvW` does: whitespace separates,
/// double quotes group, `2n` backslashes before a quote are `n` and the quote
/// toggles, `2n+1` are `n` and a literal quote.
pub(crate) fn split_command_line(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    let mut backslashes = 0usize;
    for c in line.chars() {
        match c {
            '\\' => {
                backslashes += 1;
                in_arg = true;
                continue;
            }
            '"' => {
                current.extend(std::iter::repeat_n('\\', backslashes / 2));
                if backslashes % 2 == 1 {
                    current.push('"');
                } else {
                    quoted = !quoted;
                }
                in_arg = true;
            }
            c if c.is_whitespace() && !quoted => {
                current.extend(std::iter::repeat_n('\\', backslashes));
                if in_arg {
                    args.push(std::mem::take(&mut current));
                }
                in_arg = false;
            }
            c => {
                current.extend(std::iter::repeat_n('\\', backslashes));
                current.push(c);
                in_arg = true;
            }
        }
        backslashes = 0;
    }
    current.extend(std::iter::repeat_n('\\', backslashes));
    if in_arg {
        args.push(current);
    }
    args
}

/// An environment block (`NAME=VALUE` strings ending with an empty one).
/// Each string is stepped over by its raw length; one that is not valid
/// UTF-16 (or UTF-8) makes the block `Err`, rather than a changed variable.
unsafe fn environment_block(block: *const c_void, unicode: bool) -> Result<Vec<String>, ()> {
    let mut vars = Vec::new();
    if unicode {
        let mut p = block.cast::<WCHAR>();
        loop {
            let mut len = 0;
            // SAFETY: a double-NUL-terminated block per the Win32 contract:
            // every unit up to each string's NUL is readable.
            while unsafe { *p.add(len) } != 0 {
                len += 1;
            }
            if len == 0 {
                return Ok(vars);
            }
            // SAFETY: the `len` units just read.
            let units = unsafe { std::slice::from_raw_parts(p, len) };
            vars.push(String::from_utf16(units).map_err(|_| ())?);
            // SAFETY: past this string's NUL, still inside the block.
            p = unsafe { p.add(len + 1) };
        }
    } else {
        let mut p = block.cast::<c_char>();
        loop {
            // SAFETY: as above, in bytes.
            let bytes = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
            if bytes.is_empty() {
                return Ok(vars);
            }
            vars.push(String::from_utf8(bytes.to_vec()).map_err(|_| ())?);
            // SAFETY: as above.
            p = unsafe { p.add(bytes.len() + 1) };
        }
    }
}

/// A file handle as a child's standard stream.
fn stdio_from(h: HANDLE) -> Result<Stdio, objmgr_proto::Win32Error> {
    if h.is_null() || h == INVALID_HANDLE_VALUE {
        return Ok(Stdio::Null);
    }
    let entry = table::lookup(h)?;
    match &*entry {
        Entry::File(file) => file
            .try_clone()
            .map(|f| Stdio::Fd(OwnedFd::from(f)))
            .map_err(|_| ERROR_INVALID_HANDLE),
        Entry::Object(objmgr::handle::Object::File(file)) => file
            .as_std()
            .try_clone()
            .map(|f| Stdio::Fd(OwnedFd::from(f)))
            .map_err(|_| ERROR_INVALID_HANDLE),
        Entry::Object(_) => Err(ERROR_INVALID_HANDLE),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn create_process(
    application: Result<Option<String>, ()>,
    command_line: Result<Option<String>, ()>,
    inherit: BOOL,
    flags: DWORD,
    environment: *const c_void,
    directory: Result<Option<String>, ()>,
    startup: *const STARTUPINFO,
    info: *mut PROCESS_INFORMATION,
) -> BOOL {
    if info.is_null() || startup.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    // A program, argument or directory is run exactly as named, or not at all.
    let (Ok(application), Ok(command_line), Ok(directory)) = (application, command_line, directory)
    else {
        return fail(ERROR_INVALID_NAME, FALSE);
    };
    let mut args = command_line
        .as_deref()
        .map(split_command_line)
        .unwrap_or_default();
    let program = match application.or_else(|| args.first().cloned()) {
        Some(program) => program,
        None => return fail(ERROR_INVALID_PARAMETER, FALSE),
    };
    if !args.is_empty() {
        args.remove(0); // argv[0]: the program itself
    }
    let mut command = Command::new(program);
    command
        .start_suspended(flags & CREATE_SUSPENDED != 0)
        .args(args)
        .inherit_handles(inherit != 0)
        .breakaway_from_job(flags & objmgr_proto::job::CREATE_BREAKAWAY_FROM_JOB != 0);
    if !environment.is_null() {
        command.env_clear();
        let unicode = flags & CREATE_UNICODE_ENVIRONMENT != 0;
        // SAFETY: an environment block per the Win32 contract.
        let Ok(vars) = (unsafe { environment_block(environment, unicode) }) else {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        };
        for var in vars {
            if let Some((k, v)) = var.split_once('=') {
                command.env(k, v);
            }
        }
    }
    if let Some(dir) = directory {
        command.current_dir(dir);
    }
    // SAFETY: checked non-NULL; a STARTUPINFO per the Win32 contract.
    let startup = unsafe { &*startup };
    if startup.dwFlags & STARTF_USESTDHANDLES != 0 {
        let streams = [startup.hStdInput, startup.hStdOutput, startup.hStdError].map(stdio_from);
        let [i, o, e] = streams;
        match (i, o, e) {
            (Ok(i), Ok(o), Ok(e)) => {
                command.stdin(i).stdout(o).stderr(e);
            }
            (Err(code), _, _) | (_, Err(code), _) | (_, _, Err(code)) => return fail(code, FALSE),
        }
    }
    match command.spawn() {
        Ok(child) => {
            let pid = child.process.pid();
            if flags & CREATE_SUSPENDED != 0 {
                suspended_children().insert(pid, 1);
            }
            let value = PROCESS_INFORMATION {
                hProcess: table::insert_object(Object::Process(child.process)),
                hThread: table::insert_object(Object::Thread(child.thread)),
                dwProcessId: pid,
                dwThreadId: pid,
            };
            // SAFETY: checked non-NULL; writable per the Win32 contract.
            unsafe { ffi::put(info, value) };
            TRUE
        }
        Err(e) => fail(e.code(), FALSE),
    }
}

fn open_process(access: DWORD, inherit: BOOL, pid: DWORD) -> HANDLE {
    match Process::open_with(pid, access, inherit != 0) {
        Ok(p) => table::insert_object(Object::Process(p)),
        Err(e) => fail(e.code(), std::ptr::null_mut()),
    }
}

unsafe fn exit_code(h: HANDLE, code: *mut DWORD, thread: bool) -> BOOL {
    if code.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    if h == if thread {
        CURRENT_THREAD
    } else {
        CURRENT_PROCESS
    } {
        // SAFETY: checked non-NULL.
        unsafe { ffi::put(code, STILL_ACTIVE) };
        return TRUE; // the caller is running
    }
    let entry = match table::object(h) {
        Ok(entry) => entry,
        Err(c) => return fail(c, FALSE),
    };
    let result = match (&*entry, thread) {
        (Entry::Object(Object::Process(p)), false) => p.exit_code(),
        (Entry::Object(Object::Thread(t)), true) => t.exit_code(),
        _ => return fail(ERROR_INVALID_HANDLE, FALSE),
    };
    // SAFETY: checked non-NULL.
    or_fail(result.map(|c| unsafe { ffi::put(code, c) } as BOOL), FALSE)
}

fn terminate(h: HANDLE, code: u32) -> BOOL {
    if h == CURRENT_PROCESS {
        // Ends at once: no atexit handlers, no stdio flush (ExitProcess does those).
        // SAFETY: `_exit` ends the process; nothing runs after it.
        unsafe { _exit(code as std::ffi::c_int) }
    }
    let entry = match table::object(h) {
        Ok(entry) => entry,
        Err(c) => return fail(c, FALSE),
    };
    match &*entry {
        Entry::Object(Object::Process(p)) => or_fail(p.terminate(code).map(|()| TRUE), FALSE),
        _ => fail(ERROR_INVALID_HANDLE, FALSE),
    }
}

/// The suspend counts of the main threads of processes this process
/// started with `CREATE_SUSPENDED` and has not resumed yet, by pid.
static SUSPENDED_CHILDREN: std::sync::Mutex<BTreeMap<u32, u32>> =
    std::sync::Mutex::new(BTreeMap::new());

fn suspended_children() -> std::sync::MutexGuard<'static, BTreeMap<u32, u32>> {
    SUSPENDED_CHILDREN.lock().unwrap_or_else(|p| p.into_inner())
}

/// `SuspendThread` of a thread of another process: only the main thread of
/// a child still suspended since its creation (its count goes up); a
/// running thread of another process cannot be stopped from here.
pub(crate) fn suspend_child(pid: u32, tid: u32) -> DWORD {
    let mut children = suspended_children();
    match children.get_mut(&pid).filter(|_| tid == pid) {
        Some(count) if *count < 127 => {
            *count += 1;
            *count - 1
        }
        Some(_) => fail(ERROR_SIGNAL_REFCOUNT_EXCEEDED, u32::MAX),
        None => fail(ERROR_NOT_SUPPORTED, u32::MAX),
    }
}

/// `ResumeThread` of a thread of another process: the previous suspend
/// count; at 0 the child's program starts.
pub(crate) fn resume_child(pid: u32, tid: u32) -> DWORD {
    let mut children = suspended_children();
    let Some(count) = children.get_mut(&pid).filter(|_| tid == pid) else {
        return 0; // not suspended
    };
    let previous = *count;
    *count -= 1;
    if *count == 0 {
        children.remove(&pid);
        if let Err(e) = objmgr::process::resume_process(pid) {
            return fail(e.code(), u32::MAX);
        }
    }
    previous
}

/// A thread start routine and its argument, moved into the new thread.
struct Start {
    routine: unsafe extern "C-unwind" fn(LPVOID) -> DWORD,
    parameter: usize,
}

unsafe fn create_thread(
    start: Option<unsafe extern "C-unwind" fn(LPVOID) -> DWORD>,
    parameter: LPVOID,
    flags: DWORD,
    thread_id: *mut DWORD,
) -> HANDLE {
    let null = std::ptr::null_mut();
    let Some(routine) = start else {
        return fail(ERROR_INVALID_PARAMETER, null);
    };
    let start = Start {
        routine,
        parameter: parameter as usize,
    };
    // Every thread started here can be suspended (its control is its own
    // before CreateThread returns); CREATE_SUSPENDED starts it so.
    let control = crate::api_thread::for_new_thread(flags & CREATE_SUSPENDED != 0);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let spawned = objmgr::thread::spawn(move || {
        crate::api_thread::adopt(&control);
        let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get() as DWORD);
        crate::api_thread::wait_until_resumed(&control);
        let Start { routine, parameter } = start;
        // SAFETY: the caller's start routine with its own argument, as
        // CreateThread promises to call it.
        unsafe { routine(parameter as LPVOID) }
    });
    match spawned {
        Ok(thread) => {
            let tid = tid_rx.recv().unwrap_or(0);
            // SAFETY: NULL or a writable DWORD.
            unsafe { ffi::put(thread_id, tid) };
            table::insert_object(Object::Thread(thread))
        }
        Err(e) => fail(e.code(), null),
    }
}

exports! {
    fn CreateProcessA(app: *const c_char, cmd: *mut c_char, pa: *const SECURITY_ATTRIBUTES, ta: *const SECURITY_ATTRIBUTES, inherit: BOOL, flags: DWORD, env: *const c_void, dir: *const c_char, startup: *const STARTUPINFO, info: *mut PROCESS_INFORMATION) -> BOOL = FALSE
        => { let _ = (pa, ta); create_process(ansi_exact(app), ansi_exact(cmd), inherit, flags, env, ansi_exact(dir), startup, info) };
    fn CreateProcessW(app: *const WCHAR, cmd: *mut WCHAR, pa: *const SECURITY_ATTRIBUTES, ta: *const SECURITY_ATTRIBUTES, inherit: BOOL, flags: DWORD, env: *const c_void, dir: *const WCHAR, startup: *const STARTUPINFO, info: *mut PROCESS_INFORMATION) -> BOOL = FALSE
        => { let _ = (pa, ta); create_process(wide_exact(app), wide_exact(cmd), inherit, flags, env, wide_exact(dir), startup, info) };
    fn OpenProcess(access: DWORD, inherit: BOOL, pid: DWORD) -> HANDLE = std::ptr::null_mut()
        => open_process(access, inherit, pid);
    fn GetExitCodeProcess(h: HANDLE, code: *mut DWORD) -> BOOL = FALSE => exit_code(h, code, false);
    fn GetExitCodeThread(h: HANDLE, code: *mut DWORD) -> BOOL = FALSE => exit_code(h, code, true);
    fn TerminateProcess(h: HANDLE, code: u32) -> BOOL = FALSE => terminate(h, code);
    fn CreateThread(a: *const SECURITY_ATTRIBUTES, stack: SIZE_T, start: Option<unsafe extern "C-unwind" fn(LPVOID) -> DWORD>, parameter: LPVOID, flags: DWORD, tid: *mut DWORD) -> HANDLE = std::ptr::null_mut()
        => { let _ = (a, stack); create_thread(start, parameter, flags, tid) };
}

unsafe extern "C-unwind" {
    /// POSIX; in the C library every program links.
    fn pthread_exit(value: *mut c_void) -> !;
    /// POSIX: ends the process without running exit handlers.
    fn _exit(status: std::ffi::c_int) -> !;
}

/// `ExitThread`: ends the calling thread with `code`. A thread started with
/// `CreateThread` unwinds to its start (the C frames in between must have
/// unwind tables, which GCC and Clang emit by default on Linux) and reports
/// `code`; any other thread ends with `pthread_exit` (a process ends when its
/// last thread does, as on Windows).
#[unsafe(no_mangle)]
pub extern "C-unwind" fn ExitThread(code: DWORD) -> ! {
    if objmgr::thread::is_objmgr_thread() {
        objmgr::thread::exit_current(code)
    }
    // Its thread object (if `GetCurrentThread()` was duplicated) reports it.
    objmgr::thread::set_exit_code(code);
    // SAFETY: ends the calling thread, which C code asked for; no Rust frame
    // of this library with a destructor is on the stack here.
    unsafe { pthread_exit(std::ptr::null_mut()) }
}

#[cfg(test)]
mod tests {
    use super::split_command_line;

    #[test]
    fn command_lines_split_as_windows_splits_them() {
        assert_eq!(split_command_line("a b  c"), ["a", "b", "c"]);
        assert_eq!(split_command_line(r#""a b" c"#), ["a b", "c"]);
        assert_eq!(split_command_line(r#"a\\\"b c"#), [r#"a\"b"#, "c"]);
        assert_eq!(split_command_line(r#"a\\"b c" d"#), [r#"a\b c"#, "d"]);
        assert_eq!(split_command_line(r"a\b\\ c"), [r"a\b\\", "c"]);
        assert_eq!(split_command_line(r#""" x"#), ["", "x"]);
    }
}
