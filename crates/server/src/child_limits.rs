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
