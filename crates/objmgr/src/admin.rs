//! Looking into the broker: the namespace, one object, broker status and
//! shutdown. This is what the `objmgr` command is built on.

use crate::connection::call;
pub use crate::connection::set_autostart;
use crate::error::*;
pub use objmgr_proto::ObjectType;
pub use objmgr_proto::wire::{BrokerStatus, HandleInfo, ObjectEntry, ProcessEntry};
use objmgr_proto::wire::{MAX_LIST_ENTRIES, Reply, Request};

fn unexpected() -> Error {
    Error::new(
        ERROR_INVALID_DATA,
        "unexpected reply from the objmgr broker",
    )
}

/// Every named object, sorted by path.
pub fn list_objects() -> Result<Vec<ObjectEntry>> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (reply, _, _) = call(
            &Request::ListObjects {
                after: after.clone(),
                limit: MAX_LIST_ENTRIES,
            },
            None,
        )?;
        let Reply::Objects { entries, more } = reply else {
            return Err(unexpected());
        };
        if let Some(last) = entries.last() {
            after = last.path.clone();
        }
        all.extend(entries);
        if !more {
            return Ok(all);
        }
    }
}

/// The files open through objmgr that this process may see (`objmgr ls
/// --files`).
pub fn list_files() -> Result<Vec<ObjectEntry>> {
    match call(&Request::ListFiles, None)?.0 {
        Reply::Objects { entries, .. } => Ok(entries),
        _ => Err(unexpected()),
    }
}

/// Every connected process, by pid (`objmgr ps`).
pub fn list_processes() -> Result<Vec<ProcessEntry>> {
    let mut all: Vec<ProcessEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |p| p.pid);
        let Reply::Processes(entries) = call(&Request::ListProcesses { after }, None)?.0 else {
            return Err(unexpected());
        };
        if entries.is_empty() {
            return Ok(all);
        }
        all.extend(entries);
    }
}

/// Every handle process `pid` holds, by value (`objmgr handles PID`).
pub fn list_handles(pid: u32) -> Result<Vec<HandleInfo>> {
    let mut all: Vec<HandleInfo> = Vec::new();
    loop {
        let after = all.last().map_or(0, |h| h.value);
        let Reply::Handles(entries) = call(&Request::ListHandles { pid, after }, None)?.0 else {
            return Err(unexpected());
        };
        if entries.is_empty() {
            return Ok(all);
        }
        all.extend(entries);
    }
}

/// One named object, by name (`Global\x`, `x`) or full path (`\BaseNamedObjects\x`).
pub fn stat_object(name: &str) -> Result<ObjectEntry> {
    match call(
        &Request::StatObject {
            name: name.to_owned(),
        },
        None,
    )?
    .0
    {
        Reply::Object(entry) => Ok(entry),
        _ => Err(unexpected()),
    }
}

/// The broker's facts and request counters.
pub fn broker_status() -> Result<BrokerStatus> {
    match call(&Request::Status, None)?.0 {
        Reply::Status(status) => Ok(status),
        _ => Err(unexpected()),
    }
}

/// Asks the broker to exit now. Every handle of every process dies with it.
pub fn shutdown_broker() -> Result<()> {
    call(&Request::Shutdown, None).map(|_| ())
}
