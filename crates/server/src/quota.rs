//! Fair shares: what one process may hold of the broker, so that no process
//! can starve the others (over quota is `ERROR_NOT_ENOUGH_QUOTA`).
//!
//! | quota            | counts                                              | default |
//! |------------------|-----------------------------------------------------|---------|
//! | `handles`        | handles in the process's table                      | 1,048,576 |
//! | `objects`        | live objects the process created                    | 262,144 |
//! | `sections`       | live sections it created (each holds a broker fd)   | 16,384  |
//! | `section-bytes`  | total size of live sections it created              | the machine's RAM |
//! | `sync-objects`   | live mutexes, events, semaphores, timers, process and thread objects it created | 131,072 |
//! | `connections`    | connections from one pid at once                    | 8       |
//! | `user-connections` | connections from one user's processes at once (system broker; not root) | 1,024 |
//!
//! An object is charged to the process (pid) that created it until the
//! object is destroyed, whichever connection it came through, and even after
//! that process is gone (a process cannot shed its charges by handing its
//! objects to another and reconnecting). A pid reused by a new process finds
//! the charges of the old one's surviving objects. Set with `objmgrd --quota name=value,...` or `$OBJMGR_QUOTA`.
//!
//! Besides, the broker keeps reserves for everyone: it refuses a new
//! section (`ERROR_NO_SYSTEM_RESOURCES`) once fewer than
//! [`RESERVED_FDS`] descriptors would be left, so that it can still accept
//! connections, and answer `objmgr broker status`; and the sync arena keeps
//! [`RESERVED_SLOTS`] slots that only a process holding less than a
//! sixteenth of its quota may take.

use crate::Failure;
use objmgr_proto::error::ERROR_NOT_ENOUGH_QUOTA;
use std::sync::OnceLock;

/// The environment variable with quota settings (`name=value,...`).
pub const QUOTA_ENV: &str = "OBJMGR_QUOTA";
/// Descriptors the broker keeps for connections and inspection.
pub const RESERVED_FDS: u64 = 1024;
/// Arena slots kept for processes that hold few.
pub const RESERVED_SLOTS: u32 = 4096;
/// Sync objects shared between users (named in `Global\` or a private
/// namespace on the system broker) one user's domain may have at once, and
/// the broker in all: each takes a page, a mapping and a descriptor of the
/// broker's, and the kernel allows a process about 65,000 mappings.
pub const SHARED_SYNC_PER_USER: u32 = 4096;
pub const SHARED_SYNC_TOTAL: usize = 32768;

/// The limits of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub handles: u64,
    pub objects: u64,
    pub sections: u64,
    pub section_bytes: u64,
    pub sync_objects: u64,
    pub connections: u64,
    pub user_connections: u64,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            handles: 1 << 20,
            objects: 1 << 18,
            sections: 1 << 14,
            section_bytes: physical_memory().max(1 << 30),
            sync_objects: 1 << 17,
            connections: 8,
            user_connections: 1024,
        }
    }
}

/// The machine's RAM, from `/proc/meminfo` (0 if unknown).
fn physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

impl Quotas {
    /// The defaults with `settings` (`name=value,...`) applied.
    pub fn parse(settings: &str) -> Result<Quotas, String> {
        let mut quotas = Quotas::default();
        for setting in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("quota {setting:?} is not name=value"))?;
            let value: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("quota {name}: {value:?} is not a number"))?;
            let field = match name.trim() {
                "handles" => &mut quotas.handles,
                "objects" => &mut quotas.objects,
                "sections" => &mut quotas.sections,
                "section-bytes" => &mut quotas.section_bytes,
                "sync-objects" => &mut quotas.sync_objects,
                "connections" => &mut quotas.connections,
                "user-connections" => &mut quotas.user_connections,
                other => return Err(format!("unknown quota {other:?}")),
            };
            *field = value;
        }
        Ok(quotas)
    }
}

static QUOTAS: OnceLock<Quotas> = OnceLock::new();

/// Sets the broker's quotas (once, at start-up).
pub fn set(quotas: Quotas) {
    let _ = QUOTAS.set(quotas);
}

/// The broker's quotas.
pub fn get() -> &'static Quotas {
    QUOTAS.get_or_init(Quotas::default)
}

/// What creating one object costs its creator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Charge {
    pub sections: u64,
    pub section_bytes: u64,
    pub sync_objects: u64,
}

impl Charge {
    pub fn section(bytes: u64) -> Charge {
        Charge {
            sections: 1,
            section_bytes: bytes,
            sync_objects: 0,
        }
    }

    pub fn sync_object() -> Charge {
        Charge {
            sync_objects: 1,
            ..Charge::default()
        }
    }
}

/// What one process holds now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub objects: u64,
    pub sections: u64,
    pub section_bytes: u64,
    pub sync_objects: u64,
}

impl Usage {
    /// Checks that `charge` fits the quotas, without taking it.
    pub fn check(&self, charge: Charge) -> Result<(), Failure> {
        let q = get();
        let over = |what: &str, have: u64, add: u64, limit: u64| {
            (have.saturating_add(add) > limit).then(|| {
                Failure::new(
                    ERROR_NOT_ENOUGH_QUOTA,
                    format!("over this process's quota of {limit} {what} (it holds {have}; see objmgrd --quota)"),
                )
            })
        };
        let failure = over("objects", self.objects, 1, q.objects)
            .or_else(|| over("sections", self.sections, charge.sections, q.sections))
            .or_else(|| {
                over(
                    "bytes of sections",
                    self.section_bytes,
                    charge.section_bytes,
                    q.section_bytes,
                )
            })
            .or_else(|| {
                over(
                    "synchronization objects",
                    self.sync_objects,
                    charge.sync_objects,
                    q.sync_objects,
                )
            });
        failure.map_or(Ok(()), Err)
    }

    pub fn take(&mut self, charge: Charge) {
        self.objects += 1;
        self.sections += charge.sections;
        self.section_bytes += charge.section_bytes;
        self.sync_objects += charge.sync_objects;
    }

    /// Whether nothing is charged.
    pub fn is_empty(&self) -> bool {
        self.objects == 0
    }

    pub fn give_back(&mut self, charge: Charge) {
        self.objects = self.objects.saturating_sub(1);
        self.sections = self.sections.saturating_sub(charge.sections);
        self.section_bytes = self.section_bytes.saturating_sub(charge.section_bytes);
        self.sync_objects = self.sync_objects.saturating_sub(charge.sync_objects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_override_defaults() {
        let q = Quotas::parse("handles=10, sections=2").unwrap();
        assert_eq!((q.handles, q.sections), (10, 2));
        assert_eq!(q.objects, Quotas::default().objects);
        assert!(Quotas::parse("bogus=1").is_err());
        assert!(Quotas::parse("handles=many").is_err());
        assert!(Quotas::parse("handles").is_err());
    }
}
