//! Process, thread and handle constants (`CreateProcess`, `DuplicateHandle`,
//! `GetHandleInformation`).

/// `CreateProcess` flag: the main thread starts suspended, before the
/// program runs, until `ResumeThread`.
pub const CREATE_SUSPENDED: u32 = 0x4;

/// `GetExitCodeProcess`/`GetExitCodeThread` while it still runs.
pub const STILL_ACTIVE: u32 = 259;

/// `DuplicateHandle` option: close the source handle (even on failure).
pub const DUPLICATE_CLOSE_SOURCE: u32 = 0x1;
/// `DuplicateHandle` option: the new handle gets the source's access.
pub const DUPLICATE_SAME_ACCESS: u32 = 0x2;

/// Handle flag: child processes inherit the handle.
pub const HANDLE_FLAG_INHERIT: u32 = 0x1;
/// Handle flag: `CloseHandle` refuses to close it.
pub const HANDLE_FLAG_PROTECT_FROM_CLOSE: u32 = 0x2;
/// Every handle flag.
pub const HANDLE_FLAGS: u32 = HANDLE_FLAG_INHERIT | HANDLE_FLAG_PROTECT_FROM_CLOSE;

/// The exit code objmgr reports for a process killed by signal `signal`
/// (Linux has no Windows exit code for it): 128 + the signal, as shells do.
pub const fn signal_exit_code(signal: i32) -> u32 {
    128 + signal as u32
}
