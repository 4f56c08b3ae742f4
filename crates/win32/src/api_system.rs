//! System information and time: `GetSystemInfo`, `GetTickCount(64)`,
//! `QueryPerformanceCounter/Frequency`, `Sleep`, `ExitProcess`, the current
//! process and thread, `GetModuleFileName`, and the console helpers the
//! Microsoft samples use (`_getch`, `MessageBox`).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int};
use std::time::Duration;

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

exports! {
    fn GetSystemInfo(info: *mut SYSTEM_INFO) -> () = () => system_info(info);
    fn GetNativeSystemInfo(info: *mut SYSTEM_INFO) -> () = () => system_info(info);
    fn GetTickCount() -> DWORD = 0 => (monotonic_nanos() / 1_000_000) as DWORD;
    fn GetTickCount64() -> u64 = 0 => monotonic_nanos() / 1_000_000;
    fn QueryPerformanceCounter(count: *mut i64) -> BOOL = FALSE
        => if ffi::put(count, monotonic_nanos() as i64) { TRUE } else { fail(ERROR_INVALID_PARAMETER, FALSE) };
    fn QueryPerformanceFrequency(frequency: *mut i64) -> BOOL = FALSE
        => if ffi::put(frequency, 1_000_000_000) { TRUE } else { fail(ERROR_INVALID_PARAMETER, FALSE) };
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
