//! Where the broker's socket lives: the one rule both sides apply.
//!
//! In order: `$OBJMGR_SOCKET` if set; else `$XDG_RUNTIME_DIR/objmgr/broker.sock`;
//! else `/tmp/objmgr-$UID/broker.sock`. The directory of the default paths is
//! private (0700) and its owner is checked before use.

use rustix::fs::{self, FlockOperation, Mode, OFlags};
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The environment variable that points a process at a specific broker.
pub const SOCKET_ENV: &str = "OBJMGR_SOCKET";
/// The socket's file name inside the rendezvous directory.
pub const SOCKET_FILE: &str = "broker.sock";

/// A resolved socket location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketLocation {
    pub socket: PathBuf,
    /// Whether this is the per-user default (a private directory objmgr owns
    /// and removes when the broker exits), rather than an explicit path.
    pub is_default: bool,
}

/// Resolves the socket path from the values of `OBJMGR_SOCKET`,
/// `XDG_RUNTIME_DIR` and the real uid.
pub fn socket_location(
    objmgr_socket: Option<OsString>,
    xdg_runtime_dir: Option<OsString>,
    uid: u32,
) -> SocketLocation {
    if let Some(path) = objmgr_socket.filter(|p| !p.is_empty()) {
        return SocketLocation {
            socket: PathBuf::from(path),
            is_default: false,
        };
    }
    let dir = match xdg_runtime_dir.filter(|p| !p.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("objmgr"),
        None => PathBuf::from(format!("/tmp/objmgr-{uid}")),
    };
    SocketLocation {
        socket: dir.join(SOCKET_FILE),
        is_default: true,
    }
}

/// Makes sure the default rendezvous directory exists, is ours and is private.
/// Refuses a directory another user owns or others can enter: someone could
/// otherwise plant a fake broker socket there.
pub fn prepare_default_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let uid = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by uid {uid} with mode 0700",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Takes the rendezvous lock: an exclusive `flock` on the socket's directory.
/// Clients hold it while they start a broker, and a broker holds it while it
/// removes its socket on exit, so at most one broker is ever started and none
/// is lost to a race. Returns `Ok(None)` if the directory vanished (a broker
/// removed it) between opening and locking; the caller retries.
pub fn lock_dir(dir: &Path) -> io::Result<Option<OwnedFd>> {
    let fd = fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    fs::flock(&fd, FlockOperation::LockExclusive)?;
    let locked = fs::fstat(&fd)?;
    match fs::stat(dir) {
        Ok(now) if now.st_ino == locked.st_ino && now.st_dev == locked.st_dev => Ok(Some(fd)),
        Ok(_) => Ok(None),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_socket_wins() {
        let loc = socket_location(Some("/x/y.sock".into()), Some("/run/user/5".into()), 5);
        assert_eq!(
            loc,
            SocketLocation {
                socket: "/x/y.sock".into(),
                is_default: false
            }
        );
    }

    #[test]
    fn defaults_are_per_user() {
        assert_eq!(
            socket_location(None, Some("/run/user/5".into()), 5).socket,
            PathBuf::from("/run/user/5/objmgr/broker.sock")
        );
        assert_eq!(
            socket_location(Some("".into()), None, 7).socket,
            PathBuf::from("/tmp/objmgr-7/broker.sock")
        );
    }
}
