//! Where the broker and its clients meet, and what each side checks before
//! trusting the other: the one set of rules both apply.
//!
//! The socket lives, in order, at `$OBJMGR_SOCKET` if set; else
//! `$XDG_RUNTIME_DIR/objmgr/broker.sock`; else `/tmp/objmgr-$UID/broker.sock`.
//!
//! Nothing here trusts a path: a client talks only to a broker it verified.
//! - The socket's directory is checked *before* connecting ([`prepare_dir`]):
//!   a default directory must be a real directory (not a symlink) owned by
//!   the user with mode 0700; an explicit `OBJMGR_SOCKET`'s directory must be
//!   owned by the user or root and writable by nobody else. These are the
//!   checks `tmux` and `ssh-agent` make: nobody else can plant a socket there.
//! - After connecting, the peer's credentials (`SO_PEERCRED`, recorded by the
//!   kernel when the broker listened) must be the user's own or root's
//!   ([`check_broker`]), so a socket swapped in after the check is refused too.
//! - The broker program is started only from places the user controls
//!   ([`find_broker_program`]): the program and its directory must not be
//!   writable by any other user.
//! - Starting a broker and a broker's exit are serialized by a lock file
//!   inside that verified directory ([`StartLock`]), never by a lock on a
//!   shared directory another user could hold.

pub mod peer;

use rustix::fs::{self, FileType, FlockOperation, Mode, OFlags};
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use peer::{Peer, peer_groups, peer_of};

/// The environment variable that points a process at a specific broker.
pub const SOCKET_ENV: &str = "OBJMGR_SOCKET";
/// The environment variable that names the broker program to start.
pub const BROKER_ENV: &str = "OBJMGR_BROKER";
/// Where the system-wide broker (`objmgrd --system`) listens.
pub const SYSTEM_SOCKET: &str = "/run/objmgr/broker.sock";
/// The environment variable that names another place for it (tests).
pub const SYSTEM_SOCKET_ENV: &str = "OBJMGR_SYSTEM_SOCKET";

/// The system-wide broker's socket: `$OBJMGR_SYSTEM_SOCKET`, else
/// [`SYSTEM_SOCKET`]. Its directory must be root's: a client talks to a
/// broker there only if it runs as root.
pub fn system_location() -> SocketLocation {
    let socket = std::env::var_os(SYSTEM_SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(SYSTEM_SOCKET), PathBuf::from);
    SocketLocation {
        socket,
        is_default: false,
    }
}

/// The socket's file name inside the rendezvous directory.
pub const SOCKET_FILE: &str = "broker.sock";
/// The broker program's file name, looked for on `PATH`.
pub const BROKER_PROGRAM: &str = "objmgrd";

/// A resolved socket location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketLocation {
    pub socket: PathBuf,
    /// Whether this is the per-user default (a private directory objmgr
    /// creates and keeps), rather than an explicit path.
    pub is_default: bool,
}

impl SocketLocation {
    /// The directory that holds the socket (and the start-up lock).
    pub fn dir(&self) -> &Path {
        match self.socket.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// The lock file that serializes starting a broker and a broker's exit.
    pub fn lock_path(&self) -> PathBuf {
        self.beside_socket(".lock")
    }

    /// A broker's journal of its clients: there while a broker runs, and
    /// left behind by one that died (not by one that exited on purpose), so
    /// that its successor takes its clients' handles back.
    pub fn journal_path(&self) -> PathBuf {
        self.beside_socket(".journal")
    }

    /// The system broker's ledger of the objects its clients may take back
    /// (kept, and left behind, as the journal is).
    pub fn ledger_path(&self) -> PathBuf {
        self.beside_socket(".ledger")
    }

    /// The socket's name with `suffix`, in the socket's directory.
    fn beside_socket(&self, suffix: &str) -> PathBuf {
        let mut name = self
            .socket
            .file_name()
            .map(OsString::from)
            .unwrap_or_else(|| SOCKET_FILE.into());
        name.push(suffix);
        self.dir().join(name)
    }
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

/// The location this process uses: from its environment and real uid.
pub fn location_from_env() -> SocketLocation {
    socket_location(
        std::env::var_os(SOCKET_ENV),
        std::env::var_os("XDG_RUNTIME_DIR"),
        current_uid(),
    )
}

/// The real uid of this process: the user whose broker it uses.
pub fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Whether this process runs with privileges its caller does not have (a
/// set-user-ID or set-group-ID program, or one given file capabilities: the
/// kernel's `AT_SECURE`). Such a process must not take the broker's
/// location or program from an environment its caller controls, and the
/// per-user broker of its real user is not its own: objmgr refuses to run
/// there rather than guess.
pub fn privileged_execution() -> bool {
    use rustix::process::{getegid, geteuid, getgid, getuid};
    if getuid() != geteuid() || getgid() != getegid() {
        return true;
    }
    // AT_SECURE (23) in the auxiliary vector: pairs of native words.
    const AT_SECURE: u64 = 23;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return false;
    };
    let word = size_of::<usize>();
    auxv.chunks_exact(2 * word).any(|pair| {
        let read = |bytes: &[u8]| {
            let mut value = [0u8; 8];
            value[..word].copy_from_slice(bytes);
            u64::from_ne_bytes(value)
        };
        read(&pair[..word]) == AT_SECURE && read(&pair[word..]) != 0
    })
}

fn untrusted(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

/// What a file's type is, in words, for an error message.
fn describe_type(meta: &std::fs::Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Whether a file or directory owned and moded as `meta` can be changed
/// only by `uid` (or root, who can change anything anyway).
fn writable_by_others(meta: &std::fs::Metadata, uid: u32) -> Option<String> {
    if meta.uid() != uid && meta.uid() != 0 {
        return Some(format!("it belongs to uid {}", meta.uid()));
    }
    if others_may_write(meta) {
        return Some(format!(
            "its mode {:04o} lets other users write to it",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// Whether users other than the owner (and root) may write to it: write
/// permission for others, or for a group other than root's (gid 0, whose
/// members are root's peers, as build directories made with umask 002 by
/// root often are).
fn others_may_write(meta: &std::fs::Metadata) -> bool {
    meta.mode() & 0o002 != 0 || (meta.mode() & 0o020 != 0 && meta.gid() != 0)
}

/// Whether any directory above `dir` lets another user replace what lies
/// below it: each must belong to `uid` or root, and not be writable by
/// others unless it is sticky (as `/tmp` is: others cannot rename what is
/// not theirs). `dir` is resolved first, so symbolic links are followed.
fn unsafe_ancestor(dir: &Path, uid: u32) -> Option<String> {
    let resolved = std::fs::canonicalize(dir).ok()?;
    for ancestor in resolved.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        if meta.uid() != uid && meta.uid() != 0 {
            return Some(format!(
                "{} above it belongs to uid {}",
                ancestor.display(),
                meta.uid()
            ));
        }
        if others_may_write(&meta) && meta.mode() & 0o1000 == 0 {
            return Some(format!(
                "{} above it is writable by other users (mode {:04o}, not sticky)",
                ancestor.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    None
}

/// Makes sure the socket's directory is one only this user controls, before
/// anything is sent there. A default directory is created (0700) if
/// `create` and it is missing; an explicit one must exist.
///
/// Every refusal is a `PermissionDenied` error naming the path, what is
/// wrong with it, and what to do instead.
///
/// Returns the user whose broker may answer there (besides this user and
/// root, whom [`check_broker`] always accepts): the directory's owner. Only
/// root may point `OBJMGR_SOCKET` into another user's directory (to inspect
/// that user's broker); it then talks to that user's broker and no other.
pub fn prepare_dir(location: &SocketLocation, create: bool) -> io::Result<u32> {
    let dir = location.dir();
    let uid = current_uid();
    if !location.is_default {
        let meta = std::fs::metadata(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the directory of OBJMGR_SOCKET, {}: {e}", dir.display()),
            )
        })?;
        // Root may use a directory of another user; whose it is, is then
        // who must answer there.
        let trusted = if uid == 0 { meta.uid() } else { uid };
        let problem = if !meta.is_dir() {
            Some(format!("it is {}", describe_type(&meta)))
        } else {
            writable_by_others(&meta, trusted).or_else(|| unsafe_ancestor(dir, trusted))
        };
        return match problem {
            None => Ok(meta.uid()),
            Some(why) => Err(untrusted(format!(
                "the directory of OBJMGR_SOCKET, {}, is not safe: {why}; another user could \
                 put a fake broker there. Choose a socket path in a directory that only you \
                 (or root) can write",
                dir.display()
            ))),
        };
    }
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("creating objmgr's directory {}: {e}", dir.display()),
                ));
            }
        }
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let problem = if !meta.is_dir() {
        Some(format!("it is {}", describe_type(&meta)))
    } else if meta.uid() != uid {
        Some(format!("it belongs to uid {}", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!(
            "its mode is {:04o}, not 0700",
            meta.mode() & 0o7777
        ))
    } else {
        unsafe_ancestor(dir, uid)
    };
    match problem {
        None => Ok(uid),
        Some(why) => Err(untrusted(format!(
            "{} is not objmgr's private directory for uid {uid}: {why}. Another user may have \
             made it to intercept this user's objmgr traffic. Remove it, or set XDG_RUNTIME_DIR \
             to a private runtime directory, or OBJMGR_SOCKET to a socket path in a directory \
             only you can write",
            dir.display()
        ))),
    }
}

/// Checks that the process at the other end of `socket` is a broker this
/// user may trust: one running as this user, or as root.
/// `dir_owner` is what [`prepare_dir`] returned: the owner of the verified
/// directory (this user or root, unless this is root).
pub fn check_broker(
    socket: std::os::fd::BorrowedFd<'_>,
    path: &Path,
    dir_owner: u32,
) -> io::Result<()> {
    let peer = peer_of(socket)?;
    let uid = current_uid();
    if peer.uid == uid || peer.uid == 0 || peer.uid == dir_owner {
        return Ok(());
    }
    Err(untrusted(format!(
        "the process listening on {} runs as uid {}, not as uid {uid} or root: it is not \
         this user's broker, and nothing was sent to it",
        path.display(),
        peer.uid
    )))
}

/// The start-up lock: an exclusive `flock` on a lock file inside the
/// verified socket directory. Clients hold it while they start a broker,
/// and a broker holds it while it removes its socket on exit, so that at
/// most one broker is ever started and none is lost to a race.
#[derive(Debug)]
pub struct StartLock {
    fd: OwnedFd,
    path: PathBuf,
}

impl StartLock {
    /// Takes the lock, waiting up to `patience` for it. Returns `Ok(None)`
    /// if a broker removed the lock file between opening and locking; the
    /// caller retries. A lock file that is not this user's own plain file
    /// is refused; one held for longer than `patience` is an error (only a
    /// process of this user can hold it, but one that never lets go must
    /// not hang every other).
    pub fn acquire(
        location: &SocketLocation,
        patience: std::time::Duration,
    ) -> io::Result<Option<StartLock>> {
        let path = location.lock_path();
        let fd = fs::open(
            &path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let locked = fs::fstat(&fd)?;
        if FileType::from_raw_mode(locked.st_mode) != FileType::RegularFile
            || locked.st_uid != current_uid()
            || locked.st_nlink != 1
        {
            return Err(untrusted(format!(
                "the start-up lock {} is not a plain file of uid {}",
                path.display(),
                current_uid()
            )));
        }
        let deadline = std::time::Instant::now() + patience;
        loop {
            match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the start-up lock {} has been held by another process for {patience:?}",
                            path.display()
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        match fs::lstat(&path) {
            Ok(now) if now.st_ino == locked.st_ino && now.st_dev == locked.st_dev => {
                Ok(Some(StartLock { fd, path }))
            }
            Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the lock file (a broker leaving), then lets go of the lock.
    /// Whoever waits for it finds the file gone and starts over.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.fd);
    }
}

/// Checks that `path` names a program that only this user (or root) can
/// change: the file and the directory it is in (after symbolic links are
/// resolved) must not be writable by anyone else. Returns the resolved path,
/// which is what must be run.
pub fn trusted_program(path: &Path) -> io::Result<PathBuf> {
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let uid = current_uid();
    let meta = std::fs::metadata(&resolved)?;
    let problem = if !meta.is_file() {
        Some(format!("it is {}", describe_type(&meta)))
    } else if meta.permissions().mode() & 0o111 == 0 {
        Some("it is not executable".to_owned())
    } else {
        writable_by_others(&meta, uid)
    };
    if let Some(why) = problem {
        return Err(untrusted(format!(
            "will not run {} as the objmgr broker: {why}",
            resolved.display()
        )));
    }
    let dir = resolved.parent().unwrap_or(Path::new("/"));
    let dir_problem =
        writable_by_others(&std::fs::metadata(dir)?, uid).or_else(|| unsafe_ancestor(dir, uid));
    if let Some(why) = dir_problem {
        return Err(untrusted(format!(
            "will not run {} as the objmgr broker: its directory {} is not safe: {why}",
            resolved.display(),
            dir.display()
        )));
    }
    Ok(resolved)
}

/// Where the broker program comes from: `$OBJMGR_BROKER` if set (and it
/// must be trusted); else `built_in`, the path fixed when this library was
/// built, if a trusted program is there; else the first trusted `objmgrd`
/// in an absolute directory of `$PATH`. Never the current directory nor a
/// place relative to the running program, which anyone may have written to.
pub fn find_broker_program(
    from_env: Option<OsString>,
    built_in: Option<&Path>,
    search_path: Option<OsString>,
) -> io::Result<PathBuf> {
    if let Some(path) = from_env.filter(|p| !p.is_empty()) {
        return trusted_program(Path::new(&path)).map_err(|e| {
            io::Error::new(e.kind(), format!("{BROKER_ENV}={}: {e}", path.display()))
        });
    }
    let mut refused = Vec::new();
    let built_in = built_in.filter(|p| p.is_file()).map(Path::to_path_buf);
    let on_path = search_path
        .iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(BROKER_PROGRAM))
        .filter(|p| p.is_file());
    for candidate in built_in.into_iter().chain(on_path) {
        match trusted_program(&candidate) {
            Ok(program) => return Ok(program),
            Err(e) => refused.push(e.to_string()),
        }
    }
    if refused.is_empty() {
        let built_in = built_in_path()
            .map(|p| format!(" at {p} nor"))
            .unwrap_or_default();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no {BROKER_PROGRAM} program found{built_in} on PATH; set {BROKER_ENV} to its path"
            ),
        ));
    }
    Err(untrusted(refused.join("; ")))
}

/// The broker path fixed at build time (see this crate's `build.rs`).
pub fn built_in_path() -> Option<&'static str> {
    option_env!("OBJMGR_BUILT_IN_BROKER").filter(|p| !p.is_empty())
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
        assert_eq!(loc.lock_path(), PathBuf::from("/x/y.sock.lock"));
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

    #[test]
    fn a_program_in_a_world_writable_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("omrv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join(BROKER_PROGRAM);
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(trusted_program(&program).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = trusted_program(&program).unwrap_err();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o757)).unwrap();
        let writable = trusted_program(&program).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("its directory"), "{refused}");
        assert!(writable.to_string().contains("mode 0757"), "{writable}");
    }

    #[test]
    fn tests_do_not_run_privileged() {
        assert!(!privileged_execution());
    }

    #[test]
    fn group_write_is_trusted_only_for_roots_group() {
        if !rustix::process::getuid().is_root() {
            return; // the group is changed with chown
        }
        let dir = std::env::temp_dir().join(format!("omrv-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join(BROKER_PROGRAM);
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        std::os::unix::fs::chown(&dir, None, Some(0)).unwrap();
        let roots_group = trusted_program(&program);
        std::os::unix::fs::chown(&dir, None, Some(4_000_000)).unwrap();
        let other_group = trusted_program(&program);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(roots_group.is_ok(), "{roots_group:?}");
        assert!(other_group.is_err());
    }

    #[test]
    fn path_search_skips_relative_directories() {
        let err = find_broker_program(None, None, Some(".:bin".into())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
