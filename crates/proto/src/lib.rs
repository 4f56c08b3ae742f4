//! The vocabulary objmgr's broker and clients share: Win32 error codes,
//! object types and access masks, section flags and their validation rules,
//! object names, the wire protocol (see `docs/PROTOCOL.md`), and where the two
//! sides meet (`rendezvous`, the only module here that touches the system).
//!
//! The rules are pure functions, unit-tested directly.
#![deny(unsafe_code)] // exception: `rendezvous::peer` (SO_PEERCRED)

pub mod access;
pub mod error;
pub mod file;
pub mod job;
pub mod name;
pub mod process;
pub mod rendezvous;
pub mod section;
pub mod security;
pub mod sync;
pub mod wire;

pub use access::{AccessMask, ObjectType};
pub use error::Win32Error;
pub use name::{ObjectName, Scope};
pub use wire::Handle;
