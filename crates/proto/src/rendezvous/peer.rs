//! Who is on the other end of a connection (`SO_PEERCRED`).
//!
//! Read here rather than with `rustix::net::sockopt::socket_peercred`, whose
//! `UCred` keeps the pid as a non-zero type: the kernel reports pid 0 for a
//! peer outside the broker's pid namespace (a client in a parent or sibling
//! namespace connecting to a broker in a container), and that value must be
//! seen, not assumed impossible.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A connected peer's process and user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// `None` when the peer's process is not visible from the broker's pid
    /// namespace.
    pub pid: Option<u32>,
    pub uid: u32,
    pub gid: u32,
}

/// The credentials the kernel recorded for `socket`'s peer when it connected.
pub fn peer_of(socket: BorrowedFd<'_>) -> io::Result<Peer> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` says exactly its
    // size, which is what SO_PEERCRED writes; the fd is open for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != size_of::<libc::ucred>() {
        return Err(io::Error::other("short SO_PEERCRED"));
    }
    Ok(Peer {
        pid: u32::try_from(cred.pid).ok().filter(|&pid| pid != 0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_pair_shows_this_process() {
        let (a, _b) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let peer = peer_of(a.as_fd()).unwrap();
        assert_eq!(peer.pid, Some(std::process::id()));
        assert_eq!(peer.uid, rustix::process::getuid().as_raw());
    }
}
