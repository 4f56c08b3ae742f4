//! Handles across processes: `DuplicateHandle`, and
//! `GetHandleInformation`/`SetHandleInformation`.
//!
//! Handle values are the broker's, per process, as on Windows: a value
//! duplicated into another process is valid *there*, and that process takes
//! it over with the type's `from_handle` (e.g. [`crate::Section::from_handle`]).

use objmgr_proto::process::{DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS};
use objmgr_proto::wire::{CURRENT_PROCESS, Handle, Reply, Request};

pub use objmgr_proto::process::{
    DUPLICATE_CLOSE_SOURCE as CLOSE_SOURCE, HANDLE_FLAG_INHERIT, HANDLE_FLAG_PROTECT_FROM_CLOSE,
};

use crate::connection::call;
use crate::error::*;
use crate::process::Process;

fn process_handle(process: Option<&Process>) -> Handle {
    process.map_or(CURRENT_PROCESS, |p| Handle(p.handle_value()))
}

fn value_reply(request: &Request, what: impl Fn() -> String) -> Result<u32> {
    match call(request, None).map_err(|e| e.within(&what()))?.0 {
        Reply::Value(v) => Ok(v),
        _ => Err(Error::new(
            ERROR_INVALID_DATA,
            format!("{}: unexpected reply", what()),
        )),
    }
}

/// `DuplicateHandle`: copies handle `source` of `source_process` into
/// `target_process` (`None` = this process; other processes need handles
/// with `PROCESS_DUP_HANDLE`) and returns the new value, valid in the target.
/// `access`: `None` for the source's access (`DUPLICATE_SAME_ACCESS`), else
/// the rights wanted, which may not exceed the source's
/// (`ERROR_ACCESS_DENIED`). `close_source` closes the source handle even if
/// the duplication fails (`DUPLICATE_CLOSE_SOURCE`).
pub fn duplicate_handle(
    source_process: Option<&Process>,
    source: u32,
    target_process: Option<&Process>,
    access: Option<u32>,
    inheritable: bool,
    close_source: bool,
) -> Result<u32> {
    let mut options = if close_source {
        DUPLICATE_CLOSE_SOURCE
    } else {
        0
    };
    if access.is_none() {
        options |= DUPLICATE_SAME_ACCESS;
    }
    let request = Request::Duplicate {
        source_process: process_handle(source_process),
        source: Handle(source),
        target_process: process_handle(target_process),
        access: access.unwrap_or(0),
        inherit: inheritable,
        options,
    };
    value_reply(&request, || format!("duplicating handle {source:#x}"))
}

/// `GetHandleInformation`: the handle's `HANDLE_FLAG_*` bits.
pub fn handle_information(handle: u32) -> Result<u32> {
    let request = Request::HandleFlags {
        handle: Handle(handle),
        mask: 0,
        flags: 0,
    };
    value_reply(&request, || format!("GetHandleInformation({handle:#x})"))
}

/// `SetHandleInformation`: sets the flags in `mask` to their values in `flags`.
pub fn set_handle_information(handle: u32, mask: u32, flags: u32) -> Result<()> {
    let request = Request::HandleFlags {
        handle: Handle(handle),
        mask,
        flags,
    };
    value_reply(&request, || format!("SetHandleInformation({handle:#x})")).map(|_| ())
}
