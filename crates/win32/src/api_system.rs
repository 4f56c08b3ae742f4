//! System information and time: `GetSystemInfo`, `GetTickCount(64)`,
//! `QueryPerformanceCounter/Frequency`, `Sleep`, `ExitProcess`, the current
//! process and thread, `GetModuleFileName`, and the console helpers the
//! Microsoft samples use (`_getch`, `MessageBox`).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int};
use std::time::Duration;

use objmgr_proto::Win32Error;
use objmgr_proto::error::*;
use objmgr_proto::section::ALLOCATION_GRANULARITY;
use rustix::time::{ClockId, clock_gettime};

use crate::api_sync::exports;
use crate::ffi::{self, ansi, wide};
use crate::last_error::{SetLastError, fail, guard};
use crate::types::*;

fn monotonic_nanos() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

unsafe fn system_info(info: *mut SYSTEM_INFO) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as DWORD;
    let value = SYSTEM_INFO {
        wProcessorArchitecture: if cfg!(target_arch = "aarch64") { 12 } else { 9 },
        wReserved: 0,
        dwPageSize: rustix::param::page_size() as DWORD,
        lpMinimumApplicationAddress: 0x10000 as LPVOID,
        lpMaximumApplicationAddress: 0x7FFF_FFFE_FFFF_usize as LPVOID,
        dwActiveProcessorMask: if cpus >= 64 {
            usize::MAX
        } else {
            (1usize << cpus) - 1
        },
        dwNumberOfProcessors: cpus,
        dwProcessorType: 8664,
        dwAllocationGranularity: ALLOCATION_GRANULARITY as DWORD,
        wProcessorLevel: 6,
        wProcessorRevision: 0,
    };
    // SAFETY: NULL or a writable SYSTEM_INFO per the Win32 contract.
    unsafe { ffi::put(info, value) };
}

/// The main executable's path as `GetModuleFileName(NULL, ...)` reports it:
/// the number of units copied without NUL, or `size` (truncated, NUL
/// included, `ERROR_INSUFFICIENT_BUFFER`).
unsafe fn module_file_name<T: Copy + From<u8>>(
    module: LPVOID,
    buf: *mut T,
    size: DWORD,
    units: impl Fn(&str) -> Vec<T>,
) -> DWORD {
    if !module.is_null() {
        return fail(ERROR_INVALID_HANDLE, 0); // Only the main executable.
    }
    let path = match std::env::current_exe() {
        Ok(path) => path.to_string_lossy().into_owned(),
        Err(_) => return fail(ERROR_FILE_NOT_FOUND, 0),
    };
    let all = units(&path);
    let size = size as usize;
    if size == 0 || buf.is_null() {
        return fail(ERROR_INSUFFICIENT_BUFFER, 0);
    }
    // SAFETY: `buf` holds `size` units per the Win32 contract.
    match unsafe { ffi::put_string(buf, size, &all) } {
        Some(n) => {
            SetLastError(0);
            n as DWORD
        }
        None => {
            // SAFETY: as above; truncated to fit with its NUL.
            unsafe { ffi::put_string(buf, size, &all[..size - 1]) };
            fail(ERROR_INSUFFICIENT_BUFFER, size as DWORD)
        }
    }
}

fn message_box(text: Option<String>, caption: Option<String>) -> c_int {
    eprintln!(
        "{}: {}",
        caption.unwrap_or_else(|| "Error".to_owned()),
        text.unwrap_or_default()
    );
    1 // IDOK
}

/// The processors a mask names (bit n: CPU n), for `sched_setaffinity`.
fn cpu_set(mask: usize) -> rustix::thread::CpuSet {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in (0..usize::BITS as usize).filter(|cpu| mask & (1 << cpu) != 0) {
        set.set(cpu);
    }
    set
}

/// The mask of a thread's (or, for `None`, this thread's) allowed CPUs.
fn affinity_of(tid: Option<rustix::thread::Pid>) -> Result<usize, Win32Error> {
    let set = rustix::thread::sched_getaffinity(tid)
        .map_err(|e| Win32Error::from_errno(e.raw_os_error()))?;
    Ok((0..usize::BITS as usize)
        .filter(|&cpu| set.is_set(cpu))
        .fold(0, |mask, cpu| mask | 1 << cpu))
}

/// Every CPU the machine has (`lpSystemAffinityMask`).
fn system_mask() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok();
    online
        .and_then(|list| parse_cpu_list(list.trim()))
        .unwrap_or(if cpus >= 64 {
            usize::MAX
        } else {
            (1 << cpus) - 1
        })
}

/// A kernel CPU list ("0-3,5") as a mask (CPUs past the mask's width left out).
fn parse_cpu_list(list: &str) -> Option<usize> {
    let mut mask = 0usize;
    for part in list.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => (part.parse().ok()?, part.parse().ok()?),
        };
        for cpu in first..=last.min(usize::BITS - 1) {
            mask |= 1 << cpu;
        }
    }
    Some(mask)
}

/// `GetProcessAffinityMask` of this process (other processes: their pid's
/// main thread).
unsafe fn process_affinity(process: HANDLE, mask: *mut usize, system: *mut usize) -> BOOL {
    let tid = match process_pid(process) {
        Ok(pid) => pid,
        Err(code) => return fail(code, FALSE),
    };
    match affinity_of(tid) {
        // SAFETY: NULL or writable per the Win32 contract.
        Ok(m) => unsafe {
            if !ffi::put(mask, m) || !ffi::put(system, system_mask()) {
                return fail(ERROR_NOACCESS, FALSE);
            }
            TRUE
        },
        Err(code) => fail(code, FALSE),
    }
}

/// The pid a process handle names (`None`: this process).
fn process_pid(process: HANDLE) -> Result<Option<rustix::thread::Pid>, Win32Error> {
    if process == CURRENT_PROCESS {
        return Ok(None);
    }
    let entry = crate::table::object(process)?;
    match &*entry {
        crate::table::Entry::Object(objmgr::handle::Object::Process(p)) => {
            Ok(rustix::thread::Pid::from_raw(p.pid() as i32))
        }
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

/// `SetProcessAffinityMask`: every thread of the process, as Windows
/// applies it (this process's threads from `/proc/self/task`).
fn set_process_affinity(process: HANDLE, mask: usize) -> BOOL {
    if mask == 0 || mask & !system_mask() != 0 {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let pid = match process_pid(process) {
        Ok(pid) => pid.map_or(std::process::id(), |p| p.as_raw_nonzero().get() as u32),
        Err(code) => return fail(code, FALSE),
    };
    let set = cpu_set(mask);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for tid in tasks {
        let tid = rustix::thread::Pid::from_raw(tid);
        if let Err(e) = rustix::thread::sched_setaffinity(tid, &set)
            && e != rustix::io::Errno::SRCH
        {
            return fail(Win32Error::from_errno(e.raw_os_error()), FALSE);
        }
    }
    TRUE
}

/// `SetThreadAffinityMask` of the calling thread (`GetCurrentThread()`):
/// the previous mask, 0 on failure. Other threads' handles carry no Linux
/// thread id here: `ERROR_INVALID_HANDLE`.
fn set_thread_affinity(thread: HANDLE, mask: usize) -> usize {
    if thread != CURRENT_THREAD {
        return fail(ERROR_INVALID_HANDLE, 0);
    }
    if mask == 0 || mask & !system_mask() != 0 {
        return fail(ERROR_INVALID_PARAMETER, 0);
    }
    let previous = match affinity_of(None) {
        Ok(m) => m,
        Err(code) => return fail(code, 0),
    };
    match rustix::thread::sched_setaffinity(None, &cpu_set(mask)) {
        Ok(()) => previous,
        Err(e) => fail(Win32Error::from_errno(e.raw_os_error()), 0),
    }
}

/// `GetComputerName`: the host name; `size` in, the length (success) or the
/// size needed, NUL included (`ERROR_BUFFER_OVERFLOW`), out.
unsafe fn computer_name<T: crate::api_env::Units>(buf: *mut T, size: *mut DWORD) -> BOOL {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    // SAFETY: per the Win32 contract.
    unsafe { name_into(buf, size, &name, ERROR_BUFFER_OVERFLOW, false) }
}

/// `GetUserName`: as [`computer_name`], but the size out counts the NUL on
/// success too, and too small a buffer is `ERROR_INSUFFICIENT_BUFFER`.
unsafe fn user_name<T: crate::api_env::Units>(buf: *mut T, size: *mut DWORD) -> BOOL {
    let name = crate::api_token::current_user_name();
    // SAFETY: per the Win32 contract.
    unsafe { name_into(buf, size, &name, ERROR_INSUFFICIENT_BUFFER, true) }
}

/// Stores `name` in `buf[*size]`, with the size conventions of the
/// `Get*Name` functions.
unsafe fn name_into<T: crate::api_env::Units>(
    buf: *mut T,
    size: *mut DWORD,
    name: &str,
    too_small: Win32Error,
    count_nul: bool,
) -> BOOL {
    // SAFETY: NULL or readable per the Win32 contract.
    let Some(capacity) = (unsafe { ffi::get(size.cast_const()) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let units = T::encode(name);
    // SAFETY: `buf` holds `capacity` units per the Win32 contract.
    let stored = unsafe { ffi::put_string(buf, capacity as usize, &units) };
    let (result, out) = match stored {
        Some(n) => (TRUE, n as DWORD + DWORD::from(count_nul)),
        None => (fail(too_small, FALSE), units.len() as DWORD + 1),
    };
    // SAFETY: writable per the Win32 contract (read above).
    unsafe { ffi::put(size, out) };
    result
}

fn process_id(process: HANDLE) -> DWORD {
    match process_pid(process) {
        Ok(None) => std::process::id(),
        Ok(Some(pid)) => pid.as_raw_nonzero().get() as DWORD,
        Err(code) => fail(code, 0),
    }
}

fn debug_output(text: Option<String>) {
    eprint!("{}", text.unwrap_or_default());
}

exports! {
    fn GetComputerNameA(buf: *mut c_char, size: *mut DWORD) -> BOOL = FALSE => computer_name(buf.cast::<u8>(), size);
    fn GetComputerNameW(buf: *mut WCHAR, size: *mut DWORD) -> BOOL = FALSE => computer_name(buf, size);
    fn GetUserNameA(buf: *mut c_char, size: *mut DWORD) -> BOOL = FALSE => user_name(buf.cast::<u8>(), size);
    fn GetUserNameW(buf: *mut WCHAR, size: *mut DWORD) -> BOOL = FALSE => user_name(buf, size);
    fn GetProcessId(process: HANDLE) -> DWORD = 0 => process_id(process);
    fn OutputDebugStringA(text: *const c_char) -> () = () => debug_output(ansi(text));
    fn OutputDebugStringW(text: *const WCHAR) -> () = () => debug_output(wide(text));
    fn GetCurrentProcessorNumber() -> DWORD = 0 => rustix::thread::sched_getcpu() as DWORD;
    fn GetProcessAffinityMask(process: HANDLE, mask: *mut usize, system: *mut usize) -> BOOL = FALSE
        => process_affinity(process, mask, system);
    fn SetProcessAffinityMask(process: HANDLE, mask: usize) -> BOOL = FALSE
        => set_process_affinity(process, mask);
    fn SetThreadAffinityMask(thread: HANDLE, mask: usize) -> usize = 0
        => set_thread_affinity(thread, mask);
    fn GetSystemInfo(info: *mut SYSTEM_INFO) -> () = () => system_info(info);
    fn GetNativeSystemInfo(info: *mut SYSTEM_INFO) -> () = () => system_info(info);
    fn GetTickCount() -> DWORD = 0 => (monotonic_nanos() / 1_000_000) as DWORD;
    fn GetTickCount64() -> u64 = 0 => monotonic_nanos() / 1_000_000;
    fn QueryPerformanceCounter(count: *mut i64) -> BOOL = FALSE
        => if ffi::put(count, monotonic_nanos() as i64) { TRUE } else { fail(ERROR_INVALID_PARAMETER, FALSE) };
    fn QueryPerformanceFrequency(frequency: *mut i64) -> BOOL = FALSE
        => if ffi::put(frequency, 1_000_000_000) { TRUE } else { fail(ERROR_INVALID_PARAMETER, FALSE) };
    fn SleepEx(ms: DWORD, alertable: BOOL) -> DWORD = 0 => if alertable != 0 {
        match crate::api_sync::wait_alertable(&[], false, ms) {
            crate::api_thread::WAIT_IO_COMPLETION => crate::api_thread::WAIT_IO_COMPLETION,
            _ => 0,
        }
    } else {
        Sleep(ms);
        0
    };
    fn Sleep(ms: DWORD) -> () = () => {
        if ms == objmgr_proto::sync::INFINITE {
            loop { std::thread::park(); }
        }
        if ms == 0 {
            // Gives up the rest of the time slice, as on Windows.
            std::thread::yield_now();
            return;
        }
        std::thread::sleep(Duration::from_millis(u64::from(ms)))
    };
    fn GetCurrentProcess() -> HANDLE = CURRENT_PROCESS => CURRENT_PROCESS;
    fn GetCurrentThread() -> HANDLE = CURRENT_THREAD => CURRENT_THREAD;
    fn GetCurrentProcessId() -> DWORD = 0 => std::process::id();
    fn GetCurrentThreadId() -> DWORD = 0 => rustix::thread::gettid().as_raw_nonzero().get() as DWORD;
    fn GetModuleFileNameA(module: LPVOID, buf: *mut c_char, size: DWORD) -> DWORD = 0
        => module_file_name(module, buf.cast::<u8>(), size, |s| s.as_bytes().to_vec());
    fn GetModuleFileNameW(module: LPVOID, buf: *mut WCHAR, size: DWORD) -> DWORD = 0
        => module_file_name(module, buf, size, |s| s.encode_utf16().collect());
    fn MessageBoxA(window: LPVOID, text: *const c_char, caption: *const c_char, kind: u32) -> c_int = 0
        => { let _ = (window, kind); message_box(ansi(text), ansi(caption)) };
    fn MessageBoxW(window: LPVOID, text: *const WCHAR, caption: *const WCHAR, kind: u32) -> c_int = 0
        => { let _ = (window, kind); message_box(wide(text), wide(caption)) };
    fn _getch() -> c_int = -1 => {
        let mut byte = [0u8; 1];
        match rustix::io::read(rustix::stdio::stdin(), &mut byte) {
            Ok(1) => c_int::from(byte[0]),
            _ => -1,
        }
    };
}

/// `ExitProcess`: ends the process with `code` (C `exit` semantics: atexit
/// handlers and stdio buffers run).
#[unsafe(no_mangle)]
pub extern "C" fn ExitProcess(code: u32) -> ! {
    std::process::exit(code as i32)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists_become_masks() {
        assert_eq!(parse_cpu_list("0-3,5"), Some(0b10_1111));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
