//! Typed access masks: the rights a handle of each object type may be asked
//! for (`Open*`, `DuplicateHandle`), as Windows names them, so that an
//! event's rights cannot be handed to a mutex by mistake. Each type also
//! converts from a raw `u32` mask, for rights computed elsewhere (and the
//! generic rights `GENERIC_*`, which the broker maps per type).
//!
//! ```no_run
//! use objmgr::access::EventAccess;
//! use objmgr::Event;
//!
//! // Wait and set, nothing more (a descriptor may grant no more anyway).
//! let event = Event::open_with(
//!     "Global\\Ready",
//!     EventAccess::SYNCHRONIZE | EventAccess::MODIFY_STATE,
//!     false,
//! )?;
//! assert!(EventAccess(event.access()).contains(EventAccess::MODIFY_STATE));
//! # Ok::<(), objmgr::Error>(())
//! ```

use objmgr_proto::access as raw;

macro_rules! access_type {
    ($(#[$doc:meta])* $name:ident { $($(#[$cdoc:meta])* $constant:ident = $value:expr;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$cdoc])* pub const $constant: $name = $name($value);)*
            /// `DELETE`.
            pub const DELETE: $name = $name(raw::DELETE);
            /// `READ_CONTROL`: read the security descriptor.
            pub const READ_CONTROL: $name = $name(raw::READ_CONTROL);
            /// `WRITE_DAC`: change the DACL.
            pub const WRITE_DAC: $name = $name(raw::WRITE_DAC);
            /// `WRITE_OWNER`: change the owner.
            pub const WRITE_OWNER: $name = $name(raw::WRITE_OWNER);
            /// `MAXIMUM_ALLOWED`: whatever the descriptor grants.
            pub const MAXIMUM_ALLOWED: $name = $name(raw::MAXIMUM_ALLOWED);

            /// The raw mask.
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// Whether every right of `other` is in this mask.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl From<u32> for $name {
            fn from(mask: u32) -> $name {
                $name(mask)
            }
        }

        impl From<$name> for u32 {
            fn from(mask: $name) -> u32 {
                mask.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}

access_type!(
    /// The rights of an event handle.
    EventAccess {
        /// `SYNCHRONIZE`: wait on it.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `EVENT_MODIFY_STATE`: set, reset, pulse.
        MODIFY_STATE = raw::EVENT_MODIFY_STATE;
        /// `EVENT_QUERY_STATE`.
        QUERY_STATE = raw::EVENT_QUERY_STATE;
        /// `EVENT_ALL_ACCESS`.
        ALL_ACCESS = raw::EVENT_ALL_ACCESS;
    }
);

access_type!(
    /// The rights of a mutex handle.
    MutexAccess {
        /// `SYNCHRONIZE`: wait on (acquire) it.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `MUTEX_MODIFY_STATE`.
        MODIFY_STATE = raw::MUTEX_MODIFY_STATE;
        /// `MUTEX_ALL_ACCESS`.
        ALL_ACCESS = raw::MUTEX_ALL_ACCESS;
    }
);

access_type!(
    /// The rights of a semaphore handle.
    SemaphoreAccess {
        /// `SYNCHRONIZE`: wait on (take a count of) it.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `SEMAPHORE_MODIFY_STATE`: release it.
        MODIFY_STATE = raw::SEMAPHORE_MODIFY_STATE;
        /// `SEMAPHORE_QUERY_STATE`.
        QUERY_STATE = raw::SEMAPHORE_QUERY_STATE;
        /// `SEMAPHORE_ALL_ACCESS`.
        ALL_ACCESS = raw::SEMAPHORE_ALL_ACCESS;
    }
);

access_type!(
    /// The rights of a waitable timer handle.
    TimerAccess {
        /// `SYNCHRONIZE`: wait on it.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `TIMER_MODIFY_STATE`: set and cancel it.
        MODIFY_STATE = raw::TIMER_MODIFY_STATE;
        /// `TIMER_QUERY_STATE`.
        QUERY_STATE = raw::TIMER_QUERY_STATE;
        /// `TIMER_ALL_ACCESS`.
        ALL_ACCESS = raw::TIMER_ALL_ACCESS;
    }
);

access_type!(
    /// The rights of a job handle.
    JobAccess {
        /// `SYNCHRONIZE`: wait on it.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `JOB_OBJECT_ASSIGN_PROCESS`.
        ASSIGN_PROCESS = raw::JOB_OBJECT_ASSIGN_PROCESS;
        /// `JOB_OBJECT_SET_ATTRIBUTES`: set limits.
        SET_ATTRIBUTES = raw::JOB_OBJECT_SET_ATTRIBUTES;
        /// `JOB_OBJECT_QUERY`: accounting, limits, process list.
        QUERY = raw::JOB_OBJECT_QUERY;
        /// `JOB_OBJECT_TERMINATE`.
        TERMINATE = raw::JOB_OBJECT_TERMINATE;
    }
);

access_type!(
    /// The rights of a process handle.
    ProcessAccess {
        /// `SYNCHRONIZE`: wait for it to exit.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `PROCESS_TERMINATE`.
        TERMINATE = raw::PROCESS_TERMINATE;
        /// `PROCESS_DUP_HANDLE`: duplicate handles into or out of it.
        DUP_HANDLE = raw::PROCESS_DUP_HANDLE;
        /// `PROCESS_SET_QUOTA`: assign it to a job.
        SET_QUOTA = raw::PROCESS_SET_QUOTA;
        /// `PROCESS_QUERY_INFORMATION`.
        QUERY_INFORMATION = raw::PROCESS_QUERY_INFORMATION;
        /// `PROCESS_QUERY_LIMITED_INFORMATION`: its exit code.
        QUERY_LIMITED_INFORMATION = raw::PROCESS_QUERY_LIMITED_INFORMATION;
        /// `PROCESS_ALL_ACCESS`.
        ALL_ACCESS = raw::PROCESS_ALL_ACCESS;
    }
);

access_type!(
    /// The rights of a thread handle.
    ThreadAccess {
        /// `SYNCHRONIZE`: wait for it to exit.
        SYNCHRONIZE = raw::SYNCHRONIZE;
        /// `THREAD_QUERY_INFORMATION`.
        QUERY_INFORMATION = raw::THREAD_QUERY_INFORMATION;
        /// `THREAD_QUERY_LIMITED_INFORMATION`: its exit code.
        QUERY_LIMITED_INFORMATION = raw::THREAD_QUERY_LIMITED_INFORMATION;
        /// `THREAD_ALL_ACCESS`.
        ALL_ACCESS = raw::THREAD_ALL_ACCESS;
    }
);

access_type!(
    /// The rights of a file handle (`CreateFile`'s `dwDesiredAccess`).
    FileAccess {
        /// `FILE_READ_DATA`.
        READ_DATA = raw::FILE_READ_DATA;
        /// `FILE_WRITE_DATA`.
        WRITE_DATA = raw::FILE_WRITE_DATA;
        /// `FILE_APPEND_DATA`.
        APPEND_DATA = raw::FILE_APPEND_DATA;
        /// `FILE_EXECUTE`.
        EXECUTE = raw::FILE_EXECUTE;
        /// `FILE_GENERIC_READ`.
        GENERIC_READ = raw::FILE_GENERIC_READ;
        /// `FILE_GENERIC_WRITE`.
        GENERIC_WRITE = raw::FILE_GENERIC_WRITE;
        /// `FILE_ALL_ACCESS`.
        ALL_ACCESS = raw::FILE_ALL_ACCESS;
    }
);
