//! The descriptors the broker starts with: only stdin, stdout and stderr.
//!
//! A broker is started by whichever program first needed one, and would
//! otherwise keep every descriptor that program left inheritable (a pipe's
//! write end, say, so that its reader never sees end-of-file) for its whole
//! life, and hand them on to processes it spawns for other clients.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd};

/// The first descriptor systemd passes to a socket-activated service.
const LISTEN_FDS_START: i32 = 3;

/// The listening socket systemd passed (socket activation: `LISTEN_PID` is
/// this process and `LISTEN_FDS` at least 1), taken over as the broker's.
/// Call before [`close_inherited`], which then keeps it.
pub fn activation_socket() -> Option<OwnedFd> {
    let ours = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    let count = std::env::var("LISTEN_FDS").ok()?.parse::<u32>().ok()?;
    if !ours || count < 1 {
        return None;
    }
    // SAFETY: fcntl(F_GETFD) on a number; it only reports whether it is open.
    if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: systemd passed fd 3 for this process to own, and nothing else
    // in it has taken it (this runs first in `main`).
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
    Some(fd)
}

/// Closes every descriptor above 2 (above 3 when `keep_activation`, the
/// socket systemd passed). Called first thing in `main`, before the broker
/// or the standard library opens anything of its own.
pub fn close_inherited(keep_activation: bool) {
    let first: u32 = if keep_activation { 4 } else { 3 };
    // SAFETY: close_range(2) takes no pointers; at this point no descriptor
    // from `first` on belongs to anything in this process (nothing has been
    // opened yet), so closing them invalidates no `OwnedFd`.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists. The directory's own fd is
    // among them; closing it early only ends the listing early, so list again.
    for _ in 0..4 {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        let fds: Vec<i32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= first as i32)
            .collect();
        if fds.is_empty() {
            return;
        }
        for fd in fds {
            // SAFETY: as above, no descriptor above 2 is owned by anything
            // in this process but the listing's own, which is gone by now
            // or closed here (then `read_dir` has finished with it).
            unsafe { libc::close(fd) };
        }
    }
}
