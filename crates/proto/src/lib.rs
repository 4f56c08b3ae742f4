//! The vocabulary objmgr's broker and clients share, with no I/O: Win32 error
//! codes, object types and access masks, section flags and their validation
//! rules, object names, and the wire protocol (see `docs/PROTOCOL.md`).
//!
//! Nothing here touches the operating system, so every rule is unit-tested
//! directly.
#![forbid(unsafe_code)]

pub mod access;
pub mod error;
pub mod name;
pub mod section;
pub mod wire;

pub use access::{AccessMask, ObjectType};
pub use error::Win32Error;
pub use name::{ObjectName, Scope};
pub use wire::Handle;
