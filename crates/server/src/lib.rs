//! `objmgrd`, the objmgr broker: the control plane that plays the part of the
//! NT object manager. It owns the one namespace, the objects and their handle
//! counts, and every connected process's handle table; it hands out the fds
//! behind sections; and it notices a process's death by its connection
//! closing, closing all of that process's handles.
//!
//! It never touches the data plane: mapping views and (later) waiting and
//! signalling happen in the clients without it.
#![deny(unsafe_code)] // exceptions: `child_limits` (pre_exec), `fd_hygiene` (close_range), `closer` (fcntl)

pub mod broker;
mod child_limits;
mod closer;
mod fd_hygiene;
pub mod journal;
pub mod ledger;
pub mod log;
pub mod quota;
pub mod section;
pub mod server;
pub mod sync;

/// The Win32 error for a failed system call.
pub(crate) fn errno(e: rustix::io::Errno) -> objmgr_proto::Win32Error {
    objmgr_proto::Win32Error::from_errno(e.raw_os_error())
}

use objmgr_proto::Win32Error;
use objmgr_proto::error::ERROR_INVALID_DATA;
use objmgr_proto::rendezvous::{self, SocketLocation};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// How long a per-user broker waits with no client before it exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request: the Win32 code the client reports, with context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Win32Error,
    pub context: String,
    /// The client broke the protocol; drop its connection after replying.
    pub disconnect: bool,
}

impl Failure {
    pub fn new(code: Win32Error, context: impl Into<String>) -> Failure {
        Failure {
            code,
            context: context.into(),
            disconnect: false,
        }
    }

    pub fn protocol(context: &str) -> Failure {
        Failure {
            code: ERROR_INVALID_DATA,
            context: format!("protocol violation: {context}"),
            disconnect: true,
        }
    }
}

/// Broker settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub location: SocketLocation,
    /// Exit after this long without clients; `None` = serve until told to stop.
    pub idle_timeout: Option<Duration>,
    /// Where the log goes.
    pub log: log::Sink,
    /// The quota settings given (`name=value,...`; see [`quota`]).
    pub quota_settings: String,
    /// The group whose members count as Administrators (root always does).
    pub admin_gid: Option<u32>,
    /// The system-wide broker (`--system`): serves every user.
    pub system: bool,
}

const USAGE: &str = "usage: objmgrd [--socket PATH] [--idle-timeout MS|never] [--daemon]

Runs the objmgr broker in the foreground (or, with --daemon, detached, returning
once it accepts connections). Clients start it on demand; running it by hand is
only needed for a broker that never idles out.

  --socket PATH         socket to listen on (default: $OBJMGR_SOCKET, else
                        $XDG_RUNTIME_DIR/objmgr/broker.sock, else /tmp/objmgr-$UID/broker.sock)
  --idle-timeout MS     exit after MS milliseconds without clients (default 10000;
                        $OBJMGR_IDLE_TIMEOUT_MS); 'never' to serve until stopped
  --system              the system-wide broker (as root): serves every user; Global\\
                        names are shared by all users, Local\\ names are per user;
                        socket /run/objmgr/broker.sock ($OBJMGR_SYSTEM_SOCKET);
                        never idles out unless --idle-timeout says so
  --daemon              detach, and exit 0 once the broker is ready
  -V, --version         print the version
  -h, --help            print this help
  --quota NAME=N,...    per-process quotas (also $OBJMGR_QUOTA): handles, objects,
                        sections, section-bytes, sync-objects, connections
                        (see SECURITY.md for the defaults)
  --admin-group GID     members of this group count as Administrators in access
                        checks (root always does)
  --log stderr|syslog   where the log goes (default: stderr in the foreground,
                        syslog once detached); the level comes from $OBJMGR_LOG
                        (else $RUST_LOG): error, warn, info (default), debug, off

SIGTERM and SIGINT stop it cleanly (the socket file is removed).";

/// Entry point of the `objmgrd` binary.
pub fn main() -> ExitCode {
    let mut raw = std::env::args_os().skip(1);
    if raw.next().as_deref() == Some(std::ffi::OsStr::new(child_limits::SUSPENDED_START)) {
        return child_limits::suspended_start(raw);
    }
    let activation = fd_hygiene::activation_socket();
    fd_hygiene::close_inherited(activation.is_some());
    let mut args = std::env::args().skip(1);
    let mut socket: Option<PathBuf> = None;
    let mut daemon = false;
    let mut sink = None;
    let mut admin_gid = None;
    let mut system = false;
    let mut quota_settings: Vec<String> = std::env::var(quota::QUOTA_ENV).into_iter().collect();
    let mut idle = std::env::var("OBJMGR_IDLE_TIMEOUT_MS").ok();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            let value = args.next();
            if value.is_none() {
                eprintln!("objmgrd: {name} needs a value\n{USAGE}");
            }
            value
        };
        match arg.as_str() {
            "--socket" => match value("--socket") {
                Some(path) => socket = Some(PathBuf::from(path)),
                None => return ExitCode::from(2),
            },
            "--idle-timeout" => match value("--idle-timeout") {
                Some(ms) => idle = Some(ms),
                None => return ExitCode::from(2),
            },
            "--log" => match value("--log").as_deref() {
                Some("stderr") => sink = Some(log::Sink::Stderr),
                Some("syslog") => sink = Some(log::Sink::Syslog),
                Some(other) => {
                    eprintln!("objmgrd: --log takes stderr or syslog, not {other:?}");
                    return ExitCode::from(2);
                }
                None => return ExitCode::from(2),
            },
            "--quota" => match value("--quota") {
                Some(settings) => quota_settings.push(settings),
                None => return ExitCode::from(2),
            },
            "--admin-group" => match value("--admin-group").map(|g| g.parse::<u32>()) {
                Some(Ok(gid)) => admin_gid = Some(gid),
                Some(Err(_)) => {
                    eprintln!("objmgrd: --admin-group takes a numeric gid");
                    return ExitCode::from(2);
                }
                None => return ExitCode::from(2),
            },
            "--system" => system = true,
            "--daemon" => daemon = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("objmgrd {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("objmgrd: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let quota_settings = quota_settings.join(",");
    match quota::Quotas::parse(&quota_settings) {
        Ok(quotas) => quota::set(quotas),
        Err(why) => {
            eprintln!("objmgrd: {why}");
            return ExitCode::from(2);
        }
    }
    if system && !rustix::process::geteuid().is_root() {
        eprintln!("objmgrd: --system runs as root (it serves every user)");
        return ExitCode::from(2);
    }
    if system && idle.is_none() {
        idle = Some("never".to_owned());
    }
    let idle_timeout = match idle.as_deref() {
        None => Some(DEFAULT_IDLE_TIMEOUT),
        Some("never") => None,
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                eprintln!("objmgrd: --idle-timeout takes milliseconds or 'never', not {ms:?}");
                return ExitCode::from(2);
            }
        },
    };
    let location = match socket {
        Some(path) => SocketLocation {
            socket: path,
            is_default: false,
        },
        None if system => rendezvous::system_location(),
        None => rendezvous::socket_location(
            std::env::var_os(rendezvous::SOCKET_ENV),
            std::env::var_os("XDG_RUNTIME_DIR"),
            rustix::process::getuid().as_raw(),
        ),
    };
    let config = Config {
        location,
        idle_timeout,
        log: sink.unwrap_or(if daemon {
            log::Sink::Syslog
        } else {
            log::Sink::Stderr
        }),
        quota_settings,
        admin_gid,
        system,
    };
    if daemon {
        return spawn_detached(&config);
    }
    match run_with(&config, true, activation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("objmgrd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The readiness line a foreground broker prints on stdout once it listens.
pub const READY_LINE: &str = "objmgrd ready";
/// What it prints instead when another broker already serves the socket.
pub const ALREADY_RUNNING_LINE: &str = "objmgrd already running";

/// Starts a broker as a detached process (its own process group, stdio on
/// /dev/null) and returns once it listens. The broker is a grandchild of the
/// caller's caller, so it is reaped by init, never left a zombie.
fn spawn_detached(config: &Config) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("objmgrd: cannot find own executable");
        return ExitCode::FAILURE;
    };
    let mut cmd = Command::new(exe);
    // A default location is worked out again by the child from the same
    // environment, so that it applies the default directory's stricter rules.
    if !config.location.is_default {
        cmd.arg("--socket").arg(&config.location.socket);
    }
    match config.idle_timeout {
        Some(t) => cmd.arg("--idle-timeout").arg(t.as_millis().to_string()),
        None => cmd.arg("--idle-timeout").arg("never"),
    };
    if !config.quota_settings.is_empty() {
        cmd.arg("--quota").arg(&config.quota_settings);
    }
    if let Some(gid) = config.admin_gid {
        cmd.arg("--admin-group").arg(gid.to_string());
    }
    if config.system {
        cmd.arg("--system");
    }
    cmd.arg("--log").arg(match config.log {
        log::Sink::Stderr => "stderr",
        log::Sink::Syslog => "syslog",
    });
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("objmgrd: cannot start broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = String::new();
    let _ = child.stdout.take().expect("piped").read_to_string(&mut out);
    if out.contains(READY_LINE) || out.contains(ALREADY_RUNNING_LINE) {
        // The broker keeps running; it closed its stdout and stderr once ready.
        return ExitCode::SUCCESS;
    }
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    let _ = child.wait();
    eprintln!("objmgrd: broker failed to start: {}", err.trim());
    ExitCode::FAILURE
}

/// Raises the fd limit as far as allowed: the broker holds one fd per section.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    // Children the broker spawns get the limit back.
    let _ = broker::ORIGINAL_NOFILE.set(current.current.unwrap_or(1024));
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(max) = nr_open
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        )
        .is_ok()
    {
        return;
    }
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: current.maximum,
            maximum: current.maximum,
        },
    );
}

/// Binds, announces readiness, and serves until shutdown or idle exit.
pub fn run(config: &Config, announce: bool) -> std::io::Result<()> {
    run_with(config, announce, None)
}

/// [`run`], on the listening socket systemd passed if `activation` (socket
/// activation: systemd made the socket and its directory, and keeps them).
fn run_with(config: &Config, announce: bool, activation: Option<OwnedFd>) -> std::io::Result<()> {
    log::init(config.log);
    log::log_panics();
    // The directory must be one only this user controls (a default one is
    // made private here); the broker never listens where others could
    // replace its socket. The system broker's (/run/objmgr) is made here,
    // root's and readable by all.
    if config.system {
        let dir = config.location.dir();
        if !dir.exists() {
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
                .create(dir)?;
        }
    }
    let dir_owner = rendezvous::prepare_dir(&config.location, true)?;
    if config.system && dir_owner != 0 {
        // Root may use another user's directory as a client; the broker of
        // every user listens only where no user can replace its socket.
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {dir_owner}: the system-wide broker listens only in a \
                 directory of root's",
                config.location.dir().display()
            ),
        ));
    }
    // Not dumpable: no other process of the user can ptrace the broker, read
    // its memory or take its descriptors (`/proc/<pid>/fd`, `pidfd_getfd`),
    // which include the writable fd of every section.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    raise_fd_limit();
    let bound = match activation {
        Some(fd) => {
            server::Bound::Listening(server::Listener::activated(fd, &config.location.socket)?)
        }
        None => server::bind(&config.location.socket)?,
    };
    let listener = match bound {
        server::Bound::Listening(listener) => listener,
        server::Bound::AlreadyRunning => {
            if announce {
                println!("{ALREADY_RUNNING_LINE}");
            }
            return Ok(());
        }
    };
    if config.system && listener.owns_file() {
        // Every user may connect; the broker checks each caller itself.
        std::fs::set_permissions(
            &config.location.socket,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )?;
    }
    if announce {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{READY_LINE}");
        let _ = stdout.flush();
        drop(stdout);
        // Detach from whoever waited for readiness: nothing more goes to
        // stdout, nor to stderr once the log goes to syslog.
        if let Ok(null) = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDWR,
            rustix::fs::Mode::empty(),
        ) {
            let _ = rustix::stdio::dup2_stdout(&null);
            if config.log == log::Sink::Syslog {
                let _ = rustix::stdio::dup2_stderr(&null);
            }
        }
    }
    log::info!(
        "serving {} (pid {}, uid {})",
        config.location.socket.display(),
        std::process::id(),
        rendezvous::current_uid()
    );
    // A broker on its way out waits a few seconds at most for a client
    // that is starting one; then it leaves without the lock.
    let exit_lock = || loop {
        match rendezvous::StartLock::acquire(&config.location, Duration::from_secs(5)) {
            Ok(Some(lock)) => return Some(lock),
            Ok(None) => continue,
            Err(e) => {
                log::warning!("leaving without the start-up lock: {e}");
                return None;
            }
        }
    };
    let held_lock = server::serve(listener, config, &exit_lock)?;
    // The socket is gone; the lock file goes too, while still held, so that
    // the directory is left as it was found. The default directory stays:
    // removing it would let another user make it anew.
    if let Some(lock) = held_lock {
        lock.remove();
    }
    Ok(())
}
