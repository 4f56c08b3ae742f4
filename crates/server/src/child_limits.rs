//! What a spawned child starts with that must be set between fork and exec:
//! its fd limit, its job's memory limit, on the system-wide broker its user,
//! and, for `CREATE_SUSPENDED`, a start that waits to be resumed.
//!
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

/// Makes `command`'s child start with `RLIMIT_DATA` at `bytes` (its job's
/// process memory limit: private writable memory past it cannot be had).
pub fn start_with_data_limit(command: &mut Command, bytes: u64) {
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one system call (setrlimit, async-signal-safe); it allocates
    // nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Data, limit)
                .map_err(std::io::Error::from)
        });
    }
}

/// Makes `command`'s child run as `uid` with primary group `gid` and
/// supplementary `groups`, and then change to `dir` (the system-wide broker,
/// running as root, starts a process as the user who asked, never as root,
/// and only where that user may go).
pub fn start_as(
    command: &mut Command,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    dir: Option<std::ffi::CString>,
) {
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (setgroups, setresgid, setresuid,
    // chdir) on memory allocated before the fork (`groups`, `dir`); it
    // allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            // SAFETY (inner calls): `groups` is a live slice of gid_t-sized
            // values and `dir` a live NUL-terminated string; the others
            // take plain integers.
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
                || dir.as_ref().is_some_and(|d| libc::chdir(d.as_ptr()) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The argument that makes `objmgrd` the start of a suspended process.
pub const SUSPENDED_START: &str = "--start-suspended";

/// Makes `command` (which runs [`suspended_start`]) start with `SIGCONT`
/// blocked, so that a resume sent at any time after the spawn is kept
/// pending until the child waits for it: none can be lost.
pub fn start_with_continue_blocked(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and makes one
    // async-signal-safe call (pthread_sigmask) on a set built on its stack.
    unsafe {
        command.pre_exec(|| {
            // SAFETY (inner calls): a zeroed sigset_t is valid storage for
            // sigemptyset, which initializes it.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCONT);
            match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
                0 => Ok(()),
                e => Err(std::io::Error::from_raw_os_error(e)),
            }
        });
    }
}

/// `objmgrd --start-suspended PATH ARGV0 ARGS...`: the start of a process
/// created with `CREATE_SUSPENDED`. It waits for the `SIGCONT` that
/// `ResumeThread` sends (blocked since the spawn, see
/// [`start_with_continue_blocked`]), then becomes the program: same pid,
/// environment, limits and standard streams, and a clean signal mask.
/// Returns only if the program cannot be started.
pub fn suspended_start(
    mut args: impl Iterator<Item = std::ffi::OsString>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (Some(path), Some(argv0)) = (args.next(), args.next()) else {
        eprintln!("objmgrd: {SUSPENDED_START} needs a program");
        return ExitCode::from(127);
    };
    // SAFETY: waits for SIGCONT, blocked in this thread since the spawn; the
    // set is built on the stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCONT);
        let mut signal = 0;
        while libc::sigwait(&set, &mut signal) != 0 {}
    }
    // Command::exec resets the signal mask and dispositions for the program.
    let error = std::os::unix::process::CommandExt::exec(
        std::os::unix::process::CommandExt::arg0(&mut Command::new(&path), argv0).args(args),
    );
    eprintln!(
        "objmgrd: starting {}: {error}",
        std::path::Path::new(&path).display()
    );
    ExitCode::from(127)
}

/// Where `program` is, as `execvp` would find it with the child's `PATH`:
/// a `CREATE_SUSPENDED` process is spawned as `objmgrd`, so that a missing
/// program is reported by the spawn, as Windows does, not after the resume.
pub fn resolve_program(program: &str, path: Option<&str>) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |candidate: &std::path::Path| {
        std::fs::metadata(candidate).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let candidate = std::path::PathBuf::from(program);
        return match runnable(&candidate)? {
            true => Ok(candidate),
            false => Err(std::io::ErrorKind::PermissionDenied.into()),
        };
    }
    for dir in path.unwrap_or("/usr/local/bin:/usr/bin:/bin").split(':') {
        let candidate = std::path::Path::new(if dir.is_empty() { "." } else { dir }).join(program);
        if let Ok(true) = runnable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(std::io::ErrorKind::NotFound.into())
}
