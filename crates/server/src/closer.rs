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

/// What the closer thread does.
enum Job {
    Close(OwnedFd),
    Unlink(PendingUnlink, RemovalDone),
}

/// A name to remove once the last open of its file has closed (a delete
/// that was pending, or `FILE_FLAG_DELETE_ON_CLOSE`).
#[derive(Debug)]
pub struct PendingUnlink {
    /// The directory (an `O_PATH` fd the deleting process passed).
    pub dir: OwnedFd,
    pub name: String,
    /// The file the name must still refer to.
    pub node: crate::section::FileNode,
    /// Who deletes (uid, gid, groups): the system broker removes the name
    /// with that user's rights, never root's.
    pub creds: Option<(u32, u32, Vec<u32>)>,
}

fn queue() -> Option<&'static SyncSender<Job>> {
    static SENDER: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel::<Job>(QUEUE);
            std::thread::Builder::new()
                .name("objmgrd-closer".into())
                .spawn(move || {
                    for job in receiver {
                        run(job);
                    }
                })
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

fn run(job: Job) {
    match job {
        Job::Close(fd) => {
            release_locks(&fd);
            drop(fd);
        }
        Job::Unlink(pending, done) => {
            unlink(pending);
            done.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Removes a pending name, as the user who deleted it, if it still names
/// the same file. Runs on the closer thread only (the directory is the
/// client's: its lock can be held for ever, see SECURITY.md); its
/// credentials are switched for the call and back (per thread: the broker's
/// own thread keeps root's).
fn unlink(pending: PendingUnlink) {
    use rustix::process::{Gid, Uid};
    let as_user = |(uid, gid, groups): &(u32, u32, Vec<u32>)| {
        let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
        rustix::thread::set_thread_groups(&groups).is_ok()
            && rustix::thread::set_thread_res_gid(None, Gid::from_raw(*gid), None).is_ok()
            && rustix::thread::set_thread_res_uid(None, Uid::from_raw(*uid), None).is_ok()
    };
    let saved_groups = pending
        .creds
        .as_ref()
        .map(|_| rustix::process::getgroups().unwrap_or_default());
    let saved_gid = rustix::process::getegid();
    let switched = pending.creds.as_ref().is_none_or(as_user);
    if switched {
        let same = rustix::fs::statx(
            &pending.dir,
            pending.name.as_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW | rustix::fs::AtFlags::STATX_DONT_SYNC,
            rustix::fs::StatxFlags::INO,
        )
        .is_ok_and(|st| (st.stx_dev_major, st.stx_dev_minor, st.stx_ino) == pending.node);
        if same {
            let _ = rustix::fs::unlinkat(
                &pending.dir,
                pending.name.as_str(),
                rustix::fs::AtFlags::empty(),
            );
        }
    }
    if pending.creds.is_some() {
        // Back to root's rights (the saved ids are root's).
        let _ = rustix::thread::set_thread_res_uid(None, Uid::ROOT, None);
        let _ = rustix::thread::set_thread_res_gid(None, saved_gid, None);
        let _ = rustix::thread::set_thread_groups(&saved_groups.unwrap_or_default());
    }
}

/// Set once a queued removal is done.
pub type RemovalDone = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// Removes `pending`'s name off the broker's thread (now, if the queue is
/// full); the flag returned is set when it is done.
pub fn unlink_later(pending: PendingUnlink) -> RemovalDone {
    let done = RemovalDone::default();
    let job = Job::Unlink(pending, done.clone());
    match queue() {
        Some(sender) => {
            if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
                sender.try_send(job)
            {
                run(job);
            }
        }
        None => run(job),
    }
    done
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

/// A client's fd, closed off the broker's thread ([`close_later`]) unless
/// taken: whatever path drops it (a refusal, a `?`) cannot make the broker
/// wait on the file's file system.
#[derive(Debug)]
pub struct ClientFd(Option<OwnedFd>);

impl ClientFd {
    pub fn new(fd: OwnedFd) -> ClientFd {
        ClientFd(Some(fd))
    }

    /// The fd, now the taker's to close.
    pub fn take(mut self) -> OwnedFd {
        self.0.take().expect("taken once")
    }
}

impl std::os::fd::AsFd for ClientFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_ref().expect("not taken").as_fd()
    }
}

impl Drop for ClientFd {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            close_later(fd);
        }
    }
}

/// Closes `fd` (a client's file) without making the broker wait.
pub fn close_later(fd: OwnedFd) {
    match queue() {
        Some(sender) => {
            if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
                sender.try_send(Job::Close(fd))
            {
                run(job);
            }
        }
        None => run(Job::Close(fd)),
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
