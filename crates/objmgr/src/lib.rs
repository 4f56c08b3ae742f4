//! objmgr brings the Win32 model of sharing files and memory between
//! processes to Linux: named file-mapping objects ("sections") over files or
//! over memory, one namespace shared by every object type, object lifetime
//! by handle count — also when processes crash — and the objects that
//! coordinate access: [`Mutex`], [`Event`], [`Semaphore`], [`WaitableTimer`],
//! with [`wait_any`], [`wait_all`] and [`signal_and_wait`] (see [`sync`]),
//! and the ways unnamed objects travel between processes: inheritance by a
//! spawned child ([`process::Command`]), [`handle::duplicate_handle`], with
//! waitable [`process::Process`] and [`thread::Thread`] objects, and
//! [`job::Job`]s that group processes, end them together and hold them to
//! limits.
//!
//! A per-user broker (`objmgrd`, started on first use) keeps the namespace and
//! the handle counts; the memory itself is mapped directly, so reading and
//! writing a view never involves the broker, and neither do waits and signals
//! (atomics and futexes on shared memory).
//!
//! # Named shared memory
//! The first process creates a named section and writes into a view:
//! ```no_run
//! use objmgr::{MapAccess, Section};
//! # fn main() -> objmgr::Result<()> {
//! let section = Section::create("Local\\MyFileMappingObject", 256)?;
//! let view = section.map(MapAccess::WRITE)?;
//! view.write_at(0, b"Message from first process.")?;
//! # Ok(()) }
//! ```
//! A second process opens it by name and reads:
//! ```no_run
//! use objmgr::{MapAccess, Section};
//! # fn main() -> objmgr::Result<()> {
//! let section = Section::open("Local\\MyFileMappingObject", MapAccess::READ)?;
//! let view = section.map(MapAccess::READ)?;
//! let mut message = [0u8; 27];
//! view.read_at(0, &mut message)?;
//! # Ok(()) }
//! ```
//! The section is destroyed when the last handle to it closes, in whichever
//! process, including by the process dying.
//!
//! # Errors
//! Every failure is an [`Error`] carrying the Win32 error code Windows gives
//! in the same situation ([`Error::code`]), such as
//! [`ERROR_FILE_NOT_FOUND`](error::ERROR_FILE_NOT_FOUND) for a missing name.
//!
//! # Environment
//! - `OBJMGR_SOCKET`: talk to the broker at this socket path instead of the
//!   per-user default (isolated brokers for tests). Its directory must be the
//!   user's (or root's) and writable by nobody else.
//! - `OBJMGR_BROKER`: the `objmgrd` executable to start on demand (default:
//!   the path fixed when this library was built, else on `$PATH`). It and its
//!   directory must not be writable by other users.
//! - `OBJMGR_IDLE_TIMEOUT_MS`: how long a broker started on demand waits
//!   without clients before exiting (default 10 s).
//! - `OBJMGR_DEBUG_START=1`: print why a broker could not be started on
//!   stderr (the error says it too).
//!
//! Before it sends anything, the library checks that the broker's directory
//! and the broker itself (`SO_PEERCRED`) belong to the user; anything else is
//! `ERROR_ACCESS_DENIED` saying what is wrong (see `SECURITY.md`).
//!
//! # Differences from Windows
//! - Each section handle holds one file descriptor in the process (and the
//!   broker holds one per section), so the fd limit bounds how many sections
//!   a process can hold open.
//! - Memory-backed sections are sparse, as Linux memory is: pages are
//!   committed on first touch, not at creation (except with large pages).
//! - A file-backed section cannot stop another program from truncating the
//!   file; touching a view past the new end of file raises `SIGBUS`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod access;
pub mod admin;
pub mod by_value;
mod connection;
pub mod error;
pub mod file;
pub mod handle;
pub mod job;
pub mod namespace;
mod owner;
pub mod process;
mod reclaim;
mod remote_sync;
pub mod section;
pub mod sync;
mod sys;
pub mod thread;

pub use error::{Error, Result};
pub use objmgr_proto::Win32Error;
/// Security descriptors, SIDs, tokens and SDDL (see `SECURITY.md`).
pub use objmgr_proto::security;
pub use section::{MapAccess, MapOptions, PageProtection, Section, SectionBuilder, View};
pub use sync::{
    CreateOptions, Event, Mutex, MutexGuard, Reset, Semaphore, WaitOutcome, Waitable,
    WaitableTimer, signal_and_wait, wait_all, wait_any, wait_for,
};
/// For crates layered on this one (the C ABI), whose own locks must not be
/// held by another thread when the process forks.
#[doc(hidden)]
pub use sys::on_fork;

/// The README's Rust example, compiled as a doc test so it stays true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
