//! What a spawned child starts with that must be set between fork and exec:
//! its fd limit, its job's memory limit, and on the system-wide broker its
//! user.
//!
//! The fd limit a spawned child starts with. The broker raises its own soft
//! `RLIMIT_NOFILE` to hold many sections; a child must start with the limit
//! the broker itself was given (programs that walk every possible fd, or use
//! `select`, expect the usual one). It is set in the child, between fork and
//! exec: lowering the broker's own limit around the spawn would make the
//! spawn itself fail once the broker holds more fds than that.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `command`'s child start with the soft fd limit `original`.
pub fn start_with_fd_limit(command: &mut Command, original: u64) {
    let limit = rustix::process::Rlimit {
        current: Some(original),
        maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
    };
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one system call (setrlimit, async-signal-safe); it allocates
    // nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
}

/// Makes `command`'s child start with `RLIMIT_DATA` at `bytes` (its job's
/// process memory limit: private writable memory past it cannot be had).
pub fn start_with_data_limit(command: &mut Command, bytes: u64) {
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one system call (setrlimit, async-signal-safe); it allocates
    // nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Data, limit)
                .map_err(std::io::Error::from)
        });
    }
}

/// Makes `command`'s child run as `uid` with primary group `gid` and
/// supplementary `groups`, and then change to `dir` (the system-wide broker,
/// running as root, starts a process as the user who asked, never as root,
/// and only where that user may go).
pub fn start_as(
    command: &mut Command,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    dir: Option<std::ffi::CString>,
) {
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (setgroups, setresgid, setresuid,
    // chdir) on memory allocated before the fork (`groups`, `dir`); it
    // allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            // SAFETY (inner calls): `groups` is a live slice of gid_t-sized
            // values and `dir` a live NUL-terminated string; the others
            // take plain integers.
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
                || dir.as_ref().is_some_and(|d| libc::chdir(d.as_ptr()) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
