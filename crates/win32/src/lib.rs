//! The Win32 C ABI over objmgr: `libobjmgr_win32.so`/`.a` and the headers in
//! `include/` (`windows.h`, `tchar.h`, `conio.h`), so that Win32 code that
//! shares memory and synchronizes builds and runs on Linux unchanged.
//!
//! Every exported function follows Microsoft's documentation for return
//! values and `GetLastError` codes. `GetLastError` is per thread. No panic
//! ever crosses the C boundary: each entry point runs under `last_error::guard`, which
//! turns one into `ERROR_INTERNAL_ERROR` and the function's failure value.
//!
//! Handles are the broker's values (multiples of 4) for objmgr objects, and
//! values with bit 30 set for files opened with `CreateFile` (which stay in
//! this process). `GetCurrentProcess()` is `(HANDLE)-1`, `GetCurrentThread()`
//! `(HANDLE)-2`, as on Windows.
#![deny(unsafe_op_in_unsafe_fn)]

mod api_directory;
mod api_env;
mod api_file;
mod api_handle;
mod api_heap;
mod api_job;
mod api_locks;
mod api_memory;
mod api_module;
mod api_namespace;
mod api_process;
mod api_section;
mod api_security;
mod api_stdio;
mod api_sync;
mod api_system;
mod api_text;
mod api_thread;
mod api_time;
mod api_token;
mod ffi;
mod fork;
mod last_error;
mod table;
mod types;

pub use last_error::{GetLastError, SetLastError};
