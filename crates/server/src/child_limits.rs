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

/// Makes `command`'s child a session (and process group) of its own, as a
/// Windows process is on its own: its `kill(0, ...)` reaches its own group,
/// never the broker's, and a process another user started through the same
/// broker shares no session with it, so it cannot send it `SIGCONT` (what
/// a `CREATE_SUSPENDED` start waits for).
pub fn start_in_own_session(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and makes
    // one async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
}

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

/// `objmgrd --start-suspended PROGRAM ARGV0 ARGS...`: the start of a process
/// created with `CREATE_SUSPENDED`. It waits for the `SIGCONT` that
/// `ResumeThread` sends (blocked since the spawn, see
/// [`start_with_continue_blocked`]), then becomes the program: same pid,
/// environment, limits and standard streams, and a clean signal mask.
/// Returns only if the program cannot be started.
pub fn suspended_start(
    mut args: impl Iterator<Item = std::ffi::OsString>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (Some(program), Some(argv0)) = (args.next(), args.next()) else {
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
    // Command::exec resets the signal mask and dispositions for the
    // program, and finds it on the PATH the child was given.
    let error = std::os::unix::process::CommandExt::exec(
        std::os::unix::process::CommandExt::arg0(&mut Command::new(&program), argv0).args(args),
    );
    eprintln!(
        "objmgrd: starting {}: {error}",
        std::path::Path::new(&program).display()
    );
    ExitCode::from(127)
}

/// Makes `command`'s child fail to start, as `execvp` of `program` would,
/// when no runnable file is found for it: checked in the child, as the user
/// it runs as and from its directory, so that a `CREATE_SUSPENDED` process
/// (which execs `objmgrd` first) still fails at `CreateProcess` when its
/// program cannot run, and the broker learns nothing of paths the user
/// cannot see. Register it after [`start_as`] (closures run in order).
pub fn start_only_if_runnable(command: &mut Command, program: &str, path: Option<&str>) {
    use std::ffi::CString;
    let candidates: Vec<CString> = if program.contains('/') {
        vec![program.to_owned()]
    } else {
        path.unwrap_or("/usr/local/bin:/usr/bin:/bin")
            .split(':')
            .map(|dir| format!("{}/{program}", if dir.is_empty() { "." } else { dir }))
            .collect()
    }
    .into_iter()
    .filter_map(|c| CString::new(c).ok())
    .collect();
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (faccessat, stat) on strings
    // allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            let mut found = false;
            for candidate in &candidates {
                // SAFETY (inner calls): NUL-terminated paths; `st` is
                // writable storage for stat.
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(candidate.as_ptr(), &mut st) != 0
                    || st.st_mode & libc::S_IFMT != libc::S_IFREG
                {
                    continue;
                }
                found = true;
                if libc::faccessat(
                    libc::AT_FDCWD,
                    candidate.as_ptr(),
                    libc::X_OK,
                    libc::AT_EACCESS,
                ) == 0
                {
                    return Ok(());
                }
            }
            Err(std::io::Error::from_raw_os_error(if found {
                libc::EACCES
            } else {
                libc::ENOENT
            }))
        });
    }
}
