//! Looking into the broker: the namespace, one object, broker status and
//! shutdown. This is what the `objmgr` command is built on.

use crate::connection::call;
pub use crate::connection::set_autostart;
use crate::error::*;
pub use objmgr_proto::ObjectType;
pub use objmgr_proto::wire::{BrokerStatus, ObjectEntry};
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
