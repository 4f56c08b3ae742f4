//! Object types and access masks, as the NT object manager defines them.
//!
//! Every object in the one namespace has an [`ObjectType`]; every handle has a
//! granted [`AccessMask`]. Generic rights (`GENERIC_READ`, ...) are mapped to
//! type-specific rights with the type's [`GenericMapping`] before they are
//! granted, exactly as Windows does, so that the granted mask is what access
//! checks see.

use std::fmt;

/// An `ACCESS_MASK`: standard, specific and generic rights.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccessMask(pub u32);

impl AccessMask {
    /// Whether every right in `rights` is present.
    pub const fn contains(self, rights: u32) -> bool {
        self.0 & rights == rights
    }
}

impl fmt::Debug for AccessMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessMask({:#x})", self.0)
    }
}

pub const DELETE: u32 = 0x0001_0000;
pub const READ_CONTROL: u32 = 0x0002_0000;
pub const WRITE_DAC: u32 = 0x0004_0000;
pub const WRITE_OWNER: u32 = 0x0008_0000;
pub const SYNCHRONIZE: u32 = 0x0010_0000;
pub const STANDARD_RIGHTS_REQUIRED: u32 = 0x000F_0000;
pub const STANDARD_RIGHTS_READ: u32 = READ_CONTROL;
pub const STANDARD_RIGHTS_WRITE: u32 = READ_CONTROL;
pub const STANDARD_RIGHTS_EXECUTE: u32 = READ_CONTROL;
pub const STANDARD_RIGHTS_ALL: u32 = 0x001F_0000;
pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
pub const GENERIC_ALL: u32 = 0x1000_0000;
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
pub const GENERIC_WRITE: u32 = 0x4000_0000;
pub const GENERIC_READ: u32 = 0x8000_0000;

pub const SECTION_QUERY: u32 = 0x0001;
pub const SECTION_MAP_WRITE: u32 = 0x0002;
pub const SECTION_MAP_READ: u32 = 0x0004;
pub const SECTION_MAP_EXECUTE: u32 = 0x0008;
pub const SECTION_EXTEND_SIZE: u32 = 0x0010;
pub const SECTION_MAP_EXECUTE_EXPLICIT: u32 = 0x0020;
pub const SECTION_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED
    | SECTION_QUERY
    | SECTION_MAP_WRITE
    | SECTION_MAP_READ
    | SECTION_MAP_EXECUTE
    | SECTION_EXTEND_SIZE;

pub const EVENT_QUERY_STATE: u32 = 0x0001;
pub const EVENT_MODIFY_STATE: u32 = 0x0002;
pub const EVENT_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x3;
pub const MUTANT_QUERY_STATE: u32 = 0x0001;
pub const MUTEX_MODIFY_STATE: u32 = 0x0001;
pub const MUTEX_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | MUTANT_QUERY_STATE;
pub const SEMAPHORE_QUERY_STATE: u32 = 0x0001;
pub const SEMAPHORE_MODIFY_STATE: u32 = 0x0002;
pub const SEMAPHORE_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x3;
pub const TIMER_QUERY_STATE: u32 = 0x0001;
pub const TIMER_MODIFY_STATE: u32 = 0x0002;
pub const TIMER_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x3;
pub const FILE_READ_DATA: u32 = 0x0001;
pub const FILE_WRITE_DATA: u32 = 0x0002;
pub const FILE_APPEND_DATA: u32 = 0x0004;
pub const FILE_EXECUTE: u32 = 0x0020;
pub const FILE_READ_ATTRIBUTES: u32 = 0x0080;
pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0100;
pub const FILE_GENERIC_READ: u32 =
    STANDARD_RIGHTS_READ | FILE_READ_DATA | FILE_READ_ATTRIBUTES | 0x0008 | SYNCHRONIZE;
pub const FILE_GENERIC_WRITE: u32 = STANDARD_RIGHTS_WRITE
    | FILE_WRITE_DATA
    | FILE_WRITE_ATTRIBUTES
    | 0x0010
    | FILE_APPEND_DATA
    | SYNCHRONIZE;
pub const FILE_GENERIC_EXECUTE: u32 =
    STANDARD_RIGHTS_EXECUTE | FILE_READ_ATTRIBUTES | FILE_EXECUTE | SYNCHRONIZE;
pub const FILE_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1FF;
pub const JOB_OBJECT_ASSIGN_PROCESS: u32 = 0x0001;
pub const JOB_OBJECT_SET_ATTRIBUTES: u32 = 0x0002;
pub const JOB_OBJECT_QUERY: u32 = 0x0004;
pub const JOB_OBJECT_TERMINATE: u32 = 0x0008;
pub const JOB_OBJECT_SET_SECURITY_ATTRIBUTES: u32 = 0x0010;
pub const JOB_OBJECT_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x3F;
pub const PROCESS_TERMINATE: u32 = 0x0001;
pub const PROCESS_SET_QUOTA: u32 = 0x0100;
pub const PROCESS_DUP_HANDLE: u32 = 0x0040;
pub const PROCESS_QUERY_INFORMATION: u32 = 0x0400;
pub const PROCESS_QUERY_LIMITED_INFORMATION: u32 = 0x1000;
pub const PROCESS_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0xFFFF;
pub const THREAD_TERMINATE: u32 = 0x0001;
pub const THREAD_QUERY_INFORMATION: u32 = 0x0040;
pub const THREAD_QUERY_LIMITED_INFORMATION: u32 = 0x0800;
pub const THREAD_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0xFFFF;

/// How a type turns the four generic rights into its specific rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericMapping {
    pub read: u32,
    pub write: u32,
    pub execute: u32,
    pub all: u32,
}

/// The type of an object in the namespace. Every named type shares one
/// namespace: a name held by one type cannot be created or opened as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ObjectType {
    Section = 1,
    Event = 2,
    Mutex = 3,
    Semaphore = 4,
    WaitableTimer = 5,
    Job = 6,
    Process = 7,
    Thread = 8,
    /// An open file (`CreateFile`): never named in the namespace.
    File = 9,
}

impl ObjectType {
    /// Every type, in wire-code order.
    pub const ALL: [ObjectType; 9] = [
        ObjectType::Section,
        ObjectType::Event,
        ObjectType::Mutex,
        ObjectType::Semaphore,
        ObjectType::WaitableTimer,
        ObjectType::Job,
        ObjectType::Process,
        ObjectType::Thread,
        ObjectType::File,
    ];

    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Decodes a wire code.
    pub fn from_code(code: u8) -> Option<ObjectType> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The name WinObj shows for the type.
    pub const fn name(self) -> &'static str {
        match self {
            ObjectType::Section => "Section",
            ObjectType::Event => "Event",
            ObjectType::Mutex => "Mutant",
            ObjectType::Semaphore => "Semaphore",
            ObjectType::WaitableTimer => "Timer",
            ObjectType::Job => "Job",
            ObjectType::Process => "Process",
            ObjectType::Thread => "Thread",
            ObjectType::File => "File",
        }
    }

    /// The type's generic mapping (Windows' values).
    pub const fn generic_mapping(self) -> GenericMapping {
        let sync_x = STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE;
        match self {
            ObjectType::Section => GenericMapping {
                read: STANDARD_RIGHTS_READ | SECTION_QUERY | SECTION_MAP_READ,
                write: STANDARD_RIGHTS_WRITE | SECTION_MAP_WRITE,
                execute: STANDARD_RIGHTS_EXECUTE | SECTION_MAP_EXECUTE,
                all: SECTION_ALL_ACCESS,
            },
            ObjectType::Event => GenericMapping {
                read: STANDARD_RIGHTS_READ | EVENT_QUERY_STATE,
                write: STANDARD_RIGHTS_WRITE | EVENT_MODIFY_STATE,
                execute: sync_x,
                all: EVENT_ALL_ACCESS,
            },
            ObjectType::Mutex => GenericMapping {
                read: STANDARD_RIGHTS_READ | MUTANT_QUERY_STATE,
                write: STANDARD_RIGHTS_WRITE,
                execute: sync_x,
                all: MUTEX_ALL_ACCESS,
            },
            ObjectType::Semaphore => GenericMapping {
                read: STANDARD_RIGHTS_READ | SEMAPHORE_QUERY_STATE,
                write: STANDARD_RIGHTS_WRITE | SEMAPHORE_MODIFY_STATE,
                execute: sync_x,
                all: SEMAPHORE_ALL_ACCESS,
            },
            ObjectType::WaitableTimer => GenericMapping {
                read: STANDARD_RIGHTS_READ | TIMER_QUERY_STATE,
                write: STANDARD_RIGHTS_WRITE | TIMER_MODIFY_STATE,
                execute: sync_x,
                all: TIMER_ALL_ACCESS,
            },
            ObjectType::Job => GenericMapping {
                read: STANDARD_RIGHTS_READ | JOB_OBJECT_QUERY,
                write: STANDARD_RIGHTS_WRITE
                    | JOB_OBJECT_ASSIGN_PROCESS
                    | JOB_OBJECT_SET_ATTRIBUTES
                    | JOB_OBJECT_TERMINATE
                    | JOB_OBJECT_SET_SECURITY_ATTRIBUTES,
                execute: sync_x,
                all: JOB_OBJECT_ALL_ACCESS,
            },
            ObjectType::Process => GenericMapping {
                read: STANDARD_RIGHTS_READ | PROCESS_QUERY_INFORMATION | 0x0010,
                write: STANDARD_RIGHTS_WRITE | 0x0BEA,
                execute: sync_x | PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_TERMINATE,
                all: PROCESS_ALL_ACCESS,
            },
            ObjectType::Thread => GenericMapping {
                read: STANDARD_RIGHTS_READ | THREAD_QUERY_INFORMATION | 0x0008,
                write: STANDARD_RIGHTS_WRITE | 0x0437,
                execute: sync_x | THREAD_QUERY_LIMITED_INFORMATION | 0x0002,
                all: THREAD_ALL_ACCESS,
            },
            ObjectType::File => GenericMapping {
                read: FILE_GENERIC_READ,
                write: FILE_GENERIC_WRITE,
                execute: FILE_GENERIC_EXECUTE,
                all: FILE_ALL_ACCESS,
            },
        }
    }

    /// Maps generic rights to specific ones and drops bits the type does not
    /// define, giving the mask a handle is granted.
    pub fn map_generic(self, desired: u32) -> AccessMask {
        let m = self.generic_mapping();
        let mut mask = crate::security::map_generic(desired, &m);
        if desired & MAXIMUM_ALLOWED != 0 {
            mask |= m.all;
        }
        AccessMask(mask & (m.all | ACCESS_SYSTEM_SECURITY))
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip() {
        for t in ObjectType::ALL {
            assert_eq!(ObjectType::from_code(t.code()), Some(t));
        }
        assert_eq!(ObjectType::from_code(0), None);
        assert_eq!(ObjectType::from_code(200), None);
    }

    #[test]
    fn generic_rights_map_to_section_rights() {
        let s = ObjectType::Section;
        assert_eq!(
            s.map_generic(GENERIC_READ).0,
            READ_CONTROL | SECTION_QUERY | SECTION_MAP_READ
        );
        assert_eq!(s.map_generic(GENERIC_ALL).0, SECTION_ALL_ACCESS);
        // FILE_MAP_ALL_ACCESS is SECTION_ALL_ACCESS.
        assert_eq!(s.map_generic(0xF001F).0, SECTION_ALL_ACCESS);
        // Rights a section does not define are dropped.
        assert_eq!(
            s.map_generic(SYNCHRONIZE | SECTION_MAP_READ).0,
            SECTION_MAP_READ
        );
    }
}
