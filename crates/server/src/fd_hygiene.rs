//! The descriptors the broker starts with: only stdin, stdout and stderr.
//!
//! A broker is started by whichever program first needed one, and would
//! otherwise keep every descriptor that program left inheritable (a pipe's
//! write end, say, so that its reader never sees end-of-file) for its whole
//! life, and hand them on to processes it spawns for other clients.
#![allow(unsafe_code)]

/// Closes every descriptor above 2. Called first thing in `main`, before
/// the broker or the standard library opens anything of its own.
pub fn close_inherited() {
    // SAFETY: close_range(2) takes no pointers; at this point no descriptor
    // above 2 belongs to anything in this process (nothing has been opened
    // yet), so closing them invalidates no `OwnedFd`.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
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
            .filter(|&fd| fd > 2)
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
