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

/// The supplementary groups the kernel recorded for `socket`'s peer when it
/// connected (`SO_PEERGROUPS`, Linux 4.13): the groups of the process that
/// connected, not of whatever process has its pid now.
pub fn peer_groups(socket: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live, writable buffer of `len` bytes, the
        // size given; the fd is open for the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        // ERANGE: `len` now says how much is needed.
        if error.raw_os_error() == Some(libc::ERANGE) && (len as usize) > groups.len() * 4 {
            groups.resize(len as usize / size_of::<libc::gid_t>() + 1, 0);
            continue;
        }
        return Err(error);
    }
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
        let mut mine: Vec<u32> = rustix::process::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        let mut theirs = peer_groups(a.as_fd()).unwrap();
        mine.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(theirs, mine);
    }
}
