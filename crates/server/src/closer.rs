//! Closing descriptors clients gave the broker, off the broker's thread.
//!
//! `close()` of a file on FUSE or NFS waits for the file system (a flush),
//! which a client can make last for ever: the broker's one thread must never
//! wait on it. Such fds (files and their locks) are handed to a closer
//! thread; when its queue is full, the broker closes inline rather than
//! keep them.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Fds waiting to be closed, at most.
const QUEUE: usize = 4096;

fn queue() -> Option<&'static SyncSender<OwnedFd>> {
    static SENDER: OnceLock<Option<SyncSender<OwnedFd>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel::<OwnedFd>(QUEUE);
            std::thread::Builder::new()
                .name("objmgrd-closer".into())
                .spawn(move || {
                    for fd in receiver {
                        release_locks(&fd);
                        drop(fd);
                    }
                })
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

/// Gives up every byte-range lock of the open file description behind `fd`
/// (a client's child may keep the description open past the last handle).
fn release_locks(fd: &OwnedFd) {
    let unlock = libc::flock {
        l_type: libc::F_UNLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: fcntl on a live fd with a flock that lives across the call.
    let _ = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            libc::F_OFD_SETLK,
            &unlock,
        )
    };
}

/// Closes `fd` (a client's file) without making the broker wait.
pub fn close_later(fd: OwnedFd) {
    match queue() {
        Some(sender) => match sender.try_send(fd) {
            Ok(()) => {}
            Err(TrySendError::Full(fd) | TrySendError::Disconnected(fd)) => {
                release_locks(&fd);
                drop(fd);
            }
        },
        None => {
            release_locks(&fd);
            drop(fd);
        }
    }
}

/// Closes the fd behind `fd` without making the broker wait, if this is its
/// last holder (`fd` is left holding a harmless placeholder).
pub fn close_shared_later(fd: &mut std::rc::Rc<OwnedFd>) {
    let Ok(placeholder) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return; // out of fds: closed where it is dropped
    };
    let taken = std::mem::replace(fd, std::rc::Rc::new(placeholder));
    match std::rc::Rc::try_unwrap(taken) {
        Ok(owned) => close_later(owned),
        Err(still_shared) => *fd = still_shared,
    }
}
