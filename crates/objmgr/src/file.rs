//! Files with Windows' sharing rules (`CreateFile`): share modes checked
//! across every process that uses objmgr, byte-range locks that are
//! mandatory among them, and file handles that can be inherited and
//! duplicated into other processes.
//!
//! The process opens the file itself (with its own permissions), then
//! registers the open with the broker, which refuses it with
//! `ERROR_SHARING_VIOLATION` if another open of the same file (device and
//! inode: hard links and other paths count) does not share what this one
//! uses, or uses what this one does not share.
//!
//! ```no_run
//! use objmgr::file::{File, FILE_READ_DATA, FILE_SHARE_READ, FILE_WRITE_DATA};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let raw = std::fs::OpenOptions::new().read(true).write(true).open("/tmp/data")?;
//! // Others may read while we hold it, never write.
//! let file = File::register(raw, FILE_READ_DATA | FILE_WRITE_DATA, FILE_SHARE_READ, false)?;
//! file.lock(0, 4096, true, true)?; // exclusive, waiting
//! // ... write the first page ...
//! file.unlock(0, 4096)?;
//! # Ok(()) }
//! ```
//!
//! # Differences from Windows
//! - Byte-range locks are Linux open-file-description locks (so `fcntl`
//!   users see them): a handle duplicated into another process shares its
//!   locks, as it shares its file position.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::AtomicBool;

use objmgr_proto::access::ObjectType;
use objmgr_proto::wire::{FileGrant, FileOp, Handle, Reply, Request};

use crate::connection::{self, call};
use crate::error::*;
use crate::reclaim::Holdings;
use crate::sys::{RangeLock, range_conflicts, range_lock};

pub use objmgr_proto::access::{
    DELETE, FILE_ALL_ACCESS, FILE_APPEND_DATA, FILE_GENERIC_READ, FILE_GENERIC_WRITE,
    FILE_READ_DATA, FILE_WRITE_DATA,
};
pub use objmgr_proto::file::{FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE};

/// A file handle.
#[derive(Debug)]
pub struct File {
    handle: Handle,
    generation: u64,
    /// Shared with the connection's note of the handle, for a file this
    /// process opened (a broker that replaces a dead one takes it back by
    /// it): one descriptor per open.
    file: Arc<std::fs::File>,
    access: u32,
    share: u32,
    /// The ranges this handle locked (Windows refuses overlapping an
    /// exclusive lock, and unlocks only exact ranges).
    locks: StdMutex<Vec<Locked>>,
    /// A regular file (else a pipe: no position, no locks).
    regular: bool,
    closed: AtomicBool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Locked {
    offset: u64,
    len: u64,
    exclusive: bool,
}

impl Locked {
    fn overlaps(&self, offset: u64, len: u64) -> bool {
        self.len > 0
            && len > 0
            && offset < self.offset.saturating_add(self.len)
            && self.offset < offset.saturating_add(len)
    }
}

fn io_code(e: &std::io::Error) -> Win32Error {
    Win32Error::from_errno(e.raw_os_error().unwrap_or(0))
}

impl File {
    /// Registers `file` (opened by this process with at least the access
    /// `access` asks) as a file handle with `access` and share mode
    /// `share`; `inheritable`: child processes spawned with inheritance get
    /// it. Fails with `ERROR_SHARING_VIOLATION` when it conflicts with
    /// another open of the file.
    pub fn register(
        file: std::fs::File,
        access: impl Into<crate::access::FileAccess>,
        share: u32,
        inheritable: bool,
    ) -> Result<File> {
        File::register_with(file, access.into().bits(), share, inheritable, None)
    }

    /// [`File::register`] with `FILE_FLAG_DELETE_ON_CLOSE`: the file (at
    /// `path`) is removed once this handle and every other open of it have
    /// closed, also when the holder dies. Others may open it meanwhile only
    /// with `FILE_SHARE_DELETE`.
    pub fn register_delete_on_close(
        file: std::fs::File,
        access: impl Into<crate::access::FileAccess>,
        share: u32,
        inheritable: bool,
        path: &std::path::Path,
    ) -> Result<File> {
        let (dir, name) = parent_of(path)?;
        File::register_with(
            file,
            access.into().bits(),
            share,
            inheritable,
            Some((dir, name)),
        )
    }

    fn register_with(
        file: std::fs::File,
        access: u32,
        share: u32,
        inheritable: bool,
        delete_on_close: Option<(OwnedFd, String)>,
    ) -> Result<File> {
        let request = Request::OpenFile {
            access,
            share,
            inherit: inheritable,
            delete_on_close: delete_on_close.is_some(),
            name: delete_on_close
                .as_ref()
                .map(|(_, n)| n.clone())
                .unwrap_or_default(),
        };
        let what = || "opening a file".to_owned();
        let mut fds = vec![file.as_fd()];
        if let Some((dir, _)) = &delete_on_close {
            fds.push(dir.as_fd());
        }
        let (reply, _, generation) =
            connection::call_with_fds(&request, &fds).map_err(|e| e.within(&what()))?;
        let grant = match reply {
            Reply::File(grant) => grant,
            _ => {
                return Err(Error::new(
                    ERROR_INVALID_DATA,
                    "opening a file: unexpected reply",
                ));
            }
        };
        // The connection keeps its copy of the open: this one is let go.
        let file = connection::held(grant.handle, generation, Holdings::file)
            .unwrap_or_else(|| Arc::new(file));
        Ok(File::new(grant, file, generation))
    }

    fn new(grant: FileGrant, file: Arc<std::fs::File>, generation: u64) -> File {
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        File {
            regular,
            handle: grant.handle,
            generation,
            file,
            access: grant.access,
            share: grant.share,
            locks: StdMutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn from_reply(
        reply: (Reply, Option<OwnedFd>, u64),
        what: impl Fn() -> String,
    ) -> Result<File> {
        match reply {
            (Reply::File(grant), Some(fd), generation) => Ok(File::new(
                grant,
                Arc::new(std::fs::File::from(fd)),
                generation,
            )),
            _ => Err(Error::new(
                ERROR_INVALID_DATA,
                format!("{}: the broker sent no file", what()),
            )),
        }
    }

    /// Takes over a file handle this process holds already (inherited, or
    /// given with `DuplicateHandle`).
    pub fn from_handle(value: u32) -> Result<File> {
        let what = || format!("taking over file handle {value:#x}");
        let reply = connection::query_handle(Handle(value)).map_err(|e| e.within(&what()))?;
        File::from_reply(reply, what)
    }

    pub fn handle_value(&self) -> u32 {
        self.handle.0
    }

    /// The handle, as [`HandleValue`](crate::handle::HandleValue).
    pub fn handle(&self) -> crate::handle::HandleValue {
        crate::handle::HandleValue(self.handle.0)
    }

    /// The access the handle grants (specific rights).
    pub fn access(&self) -> u32 {
        self.access
    }

    pub fn share(&self) -> u32 {
        self.share
    }

    /// The file, for I/O the caller checks itself.
    pub fn as_std(&self) -> &std::fs::File {
        &self.file
    }

    /// `LockFileEx`: locks `len` bytes from `offset`, shared or exclusive;
    /// `wait`: sleep until the range can be had (else `ERROR_LOCK_VIOLATION`
    /// at once). An exclusive lock may not overlap any lock of this handle
    /// either, as on Windows. A lock of 0 bytes locks nothing.
    pub fn lock(&self, offset: u64, len: u64, exclusive: bool, wait: bool) -> Result<()> {
        if !self.regular {
            return Err(Error::new(
                ERROR_INVALID_FUNCTION,
                "a pipe has no byte ranges to lock",
            ));
        }
        let what = || {
            format!(
                "locking {len} bytes at {offset} of file handle {:#x}",
                self.handle.0
            )
        };
        let entry = Locked {
            offset,
            len,
            exclusive,
        };
        {
            let mut own = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if own
                .iter()
                .any(|l| l.overlaps(offset, len) && (exclusive || l.exclusive))
            {
                return Err(Error::new(ERROR_LOCK_VIOLATION, what()));
            }
            // Claimed before the wait, so that another thread of this
            // handle cannot take an overlapping lock meanwhile (locks of one
            // open file description never conflict in the kernel).
            own.push(entry);
        }
        if len == 0 {
            return Ok(());
        }
        let kind = if exclusive {
            RangeLock::Exclusive
        } else {
            RangeLock::Shared
        };
        range_lock(self.file.as_fd(), kind, offset, len, wait).map_err(|e| {
            let mut own = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = own.iter().rposition(|l| *l == entry) {
                own.remove(at);
            }
            let code = match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EACCES) => ERROR_LOCK_VIOLATION,
                Some(libc::EBADF) => ERROR_ACCESS_DENIED,
                Some(libc::EINVAL | libc::EOVERFLOW) => ERROR_INVALID_LOCK_RANGE,
                _ => io_code(&e),
            };
            Error::new(code, what())
        })
    }

    /// `UnlockFileEx`: unlocks exactly a range this handle locked
    /// (`ERROR_NOT_LOCKED` otherwise).
    pub fn unlock(&self, offset: u64, len: u64) -> Result<()> {
        let mut own = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = own.iter().position(|l| l.offset == offset && l.len == len) else {
            return Err(Error::new(
                ERROR_NOT_LOCKED,
                format!("unlocking {len} bytes at {offset}: not locked by this handle"),
            ));
        };
        let gone = own.remove(at);
        if len == 0 {
            return Ok(());
        }
        // Linux unlocks a range whoever took it: give back only the parts no
        // other lock of this handle still covers (nothing to take again, so
        // nobody can slip in between). What stays shared is shared again
        // where the gone lock was exclusive.
        let end = offset.saturating_add(len);
        let mut cuts: Vec<u64> = vec![offset, end];
        for l in own.iter().filter(|l| l.overlaps(offset, len)) {
            cuts.push(l.offset.max(offset));
            cuts.push(l.offset.saturating_add(l.len).min(end));
        }
        cuts.sort_unstable();
        cuts.dedup();
        let fd = self.file.as_fd();
        for piece in cuts.windows(2) {
            let (start, stop) = (piece[0], piece[1]);
            let covering = own
                .iter()
                .filter(|l| l.overlaps(start, stop - start))
                .map(|l| l.exclusive)
                .max();
            let kind = match covering {
                None => RangeLock::Unlock,
                Some(true) => continue,
                Some(false) if gone.exclusive => RangeLock::Shared,
                Some(false) => continue,
            };
            range_lock(fd, kind, start, stop - start, false)
                .map_err(|e| Error::new(io_code(&e), "unlocking a file range"))?;
        }
        Ok(())
    }

    /// Fails with `ERROR_LOCK_VIOLATION` if another handle's lock forbids
    /// reading (`write` false) or writing `len` bytes at `offset`.
    pub fn check_io(&self, offset: u64, len: u64, write: bool) -> Result<()> {
        if len == 0 || !self.regular {
            return Ok(());
        }
        let kind = if write {
            RangeLock::Exclusive
        } else {
            RangeLock::Shared
        };
        match range_conflicts(self.file.as_fd(), kind, offset, len) {
            Ok(false) => Ok(()),
            Ok(true) => Err(Error::new(
                ERROR_LOCK_VIOLATION,
                format!("{len} bytes at {offset} are locked by another handle"),
            )),
            Err(e) => Err(Error::new(io_code(&e), "checking file locks")),
        }
    }

    /// The current file position.
    pub fn position(&self) -> Result<u64> {
        (&*self.file)
            .stream_position()
            .map_err(|e| Error::new(io_code(&e), "the file position"))
    }

    /// `ReadFile` at the file position, honouring other handles' locks.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.may(FILE_READ_DATA, "reading a file")?;
        if self.regular {
            self.check_io(self.position()?, buf.len() as u64, false)?;
        }
        (&*self.file)
            .read(buf)
            .map_err(|e| Error::new(io_code(&e), "reading a file"))
    }

    /// Reads at `offset` (a synchronous `ReadFile` with an `OVERLAPPED`),
    /// honouring other handles' locks, without using the file position.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.may(FILE_READ_DATA, "reading a file")?;
        self.check_io(offset, buf.len() as u64, false)?;
        std::os::unix::fs::FileExt::read_at(&*self.file, buf, offset)
            .map_err(|e| Error::new(io_code(&e), "reading a file"))
    }

    /// Writes all of `buf` at `offset`, likewise.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        self.may(FILE_WRITE_DATA | FILE_APPEND_DATA, "writing a file")?;
        self.check_io(offset, buf.len() as u64, true)?;
        std::os::unix::fs::FileExt::write_all_at(&*self.file, buf, offset)
            .map(|()| buf.len())
            .map_err(|e| Error::new(io_code(&e), "writing a file"))
    }

    /// Fails with `ERROR_ACCESS_DENIED` unless the handle has one of `rights`.
    fn may(&self, rights: u32, what: &str) -> Result<()> {
        if self.access & rights == 0 {
            return Err(Error::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "{what}: handle {:#x} has access {:#x}",
                    self.handle.0, self.access
                ),
            ));
        }
        Ok(())
    }

    /// `WriteFile` at the file position, honouring other handles' locks.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.may(FILE_WRITE_DATA | FILE_APPEND_DATA, "writing a file")?;
        if self.regular {
            self.check_io(self.position()?, buf.len() as u64, true)?;
        }
        (&*self.file)
            .write_all(buf)
            .map(|()| buf.len())
            .map_err(|e| Error::new(io_code(&e), "writing a file"))
    }

    /// Moves the file position (`SetFilePointerEx`).
    pub fn seek(&self, to: SeekFrom) -> Result<u64> {
        (&*self.file)
            .seek(to)
            .map_err(|e| Error::new(io_code(&e), "moving the file position"))
    }

    /// `SetEndOfFile` at `len`: refused with `ERROR_USER_MAPPED_FILE` while
    /// a section maps the file past it (on Linux its views would fault).
    pub fn set_len(&self, len: u64) -> Result<()> {
        self.may(FILE_WRITE_DATA | FILE_APPEND_DATA, "SetEndOfFile")?;
        let request = Request::FileControl {
            op: FileOp::MayTruncate,
            handle: self.handle,
            value: len,
            name: String::new(),
        };
        call(&request, None).map_err(|e| e.within("SetEndOfFile"))?;
        self.file
            .set_len(len)
            .map_err(|e| Error::new(io_code(&e), "SetEndOfFile"))
    }

    /// Closes the handle now (dropping closes too). Its locks go with the
    /// last handle to the open.
    pub fn close(self) -> Result<()> {
        self.close_shared()
    }

    pub(crate) fn close_shared(&self) -> Result<()> {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        // The last close of a file may remove a pending name (a delete
        // pending, or FILE_FLAG_DELETE_ON_CLOSE), which must be gone when
        // the close returns: waited for. That needs this open to share
        // delete (else no delete can be pending) or to hold DELETE itself
        // (delete-on-close opens do); other closes need no answer.
        use objmgr_proto::access::DELETE;
        use objmgr_proto::file::FILE_SHARE_DELETE;
        if self.share & FILE_SHARE_DELETE != 0 || self.access & DELETE != 0 {
            connection::close_handle_and_wait(self.handle, self.generation, "file")
        } else {
            connection::close_handle(self.handle, self.generation, "file")
        }
    }

    pub(crate) fn forget(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = self.close_shared();
    }
}

/// The directory (an `O_PATH` fd) and the name of `path`.
fn parent_of(path: &std::path::Path) -> Result<(OwnedFd, String)> {
    use rustix::fs::{Mode, OFlags};
    let bad = || {
        Error::new(
            ERROR_INVALID_NAME,
            format!("{}: no file name", path.display()),
        )
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(bad)?
        .to_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let dir = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::from_errno(e, format!("{}", path.display())))?;
    Ok((dir, name))
}

/// Asks the broker whether the file at `path` may lose its name; `check`:
/// only ask (a move). `Ok(true)`: the caller removes the name now;
/// `Ok(false)`: the delete is pending, the broker removes it with the last
/// open. Files that are not regular take no part (`Ok(true)`).
fn may_delete(path: &std::path::Path, check: bool) -> Result<(bool, OwnedFd, String)> {
    use rustix::fs::{Mode, OFlags};
    let what = || format!("deleting {}", path.display());
    let file = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::from_errno(e, what()))?;
    let (dir, name) = parent_of(path)?;
    let regular = rustix::fs::fstat(&file)
        .map(|s| {
            rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false);
    if !regular {
        return Ok((true, dir, name));
    }
    // This process must be allowed to remove the name (the broker removes a
    // pending one with this user's rights only, and would fail later).
    may_unlink(&dir, &file).map_err(|e| e.within(&what()))?;
    let request = Request::FileControl {
        op: FileOp::MayDelete,
        handle: Handle(0),
        value: u64::from(check),
        name: name.clone(),
    };
    let reply = connection::call_with_fds(&request, &[file.as_fd(), dir.as_fd()])
        .map_err(|e| e.within(&what()))?;
    Ok((matches!(reply.0, Reply::Value(0)), dir, name))
}

/// Whether this process may remove a name of `file` from `dir`: write and
/// search rights on the directory, and in a sticky directory owning the
/// file or the directory (or being root).
fn may_unlink(dir: &OwnedFd, file: &OwnedFd) -> Result<()> {
    use rustix::fs::{Access, AtFlags};
    let denied = || Error::new(ERROR_ACCESS_DENIED, "no right to remove the name");
    rustix::fs::accessat(
        dir,
        ".",
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(|_| denied())?;
    let dir_stat = rustix::fs::fstat(dir).map_err(|e| Error::from_errno(e, "the directory"))?;
    let sticky = dir_stat.st_mode & 0o1000 != 0;
    let me = rustix::process::geteuid().as_raw();
    if sticky && me != 0 {
        let owner = rustix::fs::fstat(file).map_or(u32::MAX, |s| s.st_uid);
        if me != owner && me != dir_stat.st_uid {
            return Err(denied());
        }
    }
    Ok(())
}

/// `DeleteFile`: fails with `ERROR_SHARING_VIOLATION` while the file is open
/// (through objmgr) without `FILE_SHARE_DELETE`. Open with it, the delete
/// is pending: the name stays until the last handle closes, and new opens
/// fail with `ERROR_ACCESS_DENIED`, as on Windows. Otherwise the name goes
/// now (removed by this process, with its own rights).
pub fn delete(path: &std::path::Path) -> Result<()> {
    let (now, dir, name) = may_delete(path, false)?;
    if now {
        rustix::fs::unlinkat(&dir, name.as_str(), rustix::fs::AtFlags::empty())
            .map_err(|e| Error::from_errno(e, format!("deleting {}", path.display())))?;
    }
    Ok(())
}

/// `MoveFileEx`'s check: fails with `ERROR_SHARING_VIOLATION` while the file
/// is open (through objmgr) without `FILE_SHARE_DELETE`.
pub fn check_move(path: &std::path::Path) -> Result<()> {
    may_delete(path, true).map(drop)
}

/// The type of objects [`File`] handles are, for `DuplicateHandle` and
/// listings.
pub const OBJECT_TYPE: ObjectType = ObjectType::File;
