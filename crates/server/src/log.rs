//! The broker's log: to stderr in the foreground, to syslog (and so the
//! journal) once detached, with levels.
//!
//! What is logged: every refused connection and refused request (who and
//! why), protocol violations, dropped clients, failed spawns, and panics.
//! The level comes from `OBJMGR_LOG` (else `RUST_LOG`): `error`, `warn`,
//! `info` (the default), `debug` or `off`; a `RUST_LOG`-style list such as
//! `objmgrd=debug,warn` is read for its `objmgrd` entry, else its bare level.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable with the log filter.
pub const LOG_ENV: &str = "OBJMGR_LOG";

/// How serious a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The syslog severity (RFC 5424).
    fn severity(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// Where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Syslog,
}

enum Output {
    Stderr,
    /// `None` when no syslog daemon listens: messages are dropped.
    Syslog(Option<UnixDatagram>),
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static OUTPUT: OnceLock<Output> = OnceLock::new();

/// The most detailed level a filter string asks for; `Some(0)` is `off`.
pub fn parse_filter(filter: &str) -> Option<u8> {
    let level = |word: &str| -> Option<u8> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => 0,
            "error" => Level::Error as u8,
            "warn" | "warning" => Level::Warn as u8,
            "info" => Level::Info as u8,
            "debug" | "trace" => Level::Debug as u8,
            _ => return None,
        })
    };
    let mut bare = None;
    for part in filter.split(',') {
        match part.split_once('=') {
            Some((target, value)) if target.trim() == "objmgrd" => return level(value),
            Some(_) => {}
            None => bare = level(part).or(bare),
        }
    }
    bare
}

/// The environment variable naming the syslog socket (default `/dev/log`).
pub const SYSLOG_SOCKET_ENV: &str = "OBJMGR_SYSLOG_SOCKET";

/// Where syslog listens: `$OBJMGR_SYSLOG_SOCKET`, else `/dev/log`.
fn syslog_socket() -> std::path::PathBuf {
    std::env::var_os(SYSLOG_SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| "/dev/log".into(), Into::into)
}

/// Sets where the log goes and its level (from the environment). Later
/// calls change nothing.
pub fn init(sink: Sink) {
    let filter = std::env::var(LOG_ENV)
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok());
    if let Some(level) = filter.as_deref().and_then(parse_filter) {
        MAX_LEVEL.store(level, Ordering::Relaxed);
    }
    let _ = OUTPUT.set(match sink {
        Sink::Stderr => Output::Stderr,
        // Non-blocking: a full syslog queue drops messages rather than
        // stalling the broker (any local user can fill /dev/log).
        Sink::Syslog => Output::Syslog(UnixDatagram::unbound().ok().and_then(|socket| {
            socket.connect(syslog_socket()).ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(socket)
        })),
    });
}

/// Writes only messages of `level` or more severe from now on (for a
/// program that runs the broker's code in its own process); never loosens
/// a stricter setting.
pub fn limit(level: Level) {
    MAX_LEVEL.fetch_min(level as u8, Ordering::Relaxed);
}

/// Whether messages of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes one message (use the macros).
pub fn write(level: Level, message: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    // Messages quote what clients sent (names, paths): no control character
    // of theirs reaches a terminal or the journal as such.
    let message = escape_controls(&message.to_string());
    match OUTPUT.get().unwrap_or(&Output::Stderr) {
        Output::Stderr => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "objmgrd: {}: {message}",
                level.name()
            );
        }
        Output::Syslog(Some(socket)) => {
            // LOG_USER (1): a per-user daemon.
            let line = format!(
                "<{}>objmgrd[{}]: {}: {message}",
                8 + level.severity(),
                std::process::id(),
                level.name()
            );
            let _ = socket.send(line.as_bytes());
        }
        Output::Syslog(None) => {}
    }
}

macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*)) };
}
pub(crate) use {debug, error, info, warning};

/// `text` with control characters written as escapes (`\n`, `\u{1b}`).
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Sends panic messages to the log (a detached broker has no stderr), with
/// where they happened.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        error!("panic{location}: {message}");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_like_rust_log() {
        assert_eq!(parse_filter("debug"), Some(Level::Debug as u8));
        assert_eq!(parse_filter("WARN"), Some(Level::Warn as u8));
        assert_eq!(parse_filter("off"), Some(0));
        assert_eq!(
            parse_filter("other=debug,objmgrd=error,info"),
            Some(Level::Error as u8)
        );
        assert_eq!(parse_filter("other=debug,warn"), Some(Level::Warn as u8));
        assert_eq!(parse_filter("nonsense"), None);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain"), "plain");
        assert_eq!(escape_controls("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
    }
}
