//! Synchronization-object constants and creation rules (`CreateEvent`,
//! `CreateMutex`, `CreateSemaphore`, `CreateWaitableTimer`, the waits).

use crate::access::{
    EVENT_ALL_ACCESS, MUTEX_ALL_ACCESS, ObjectType, SEMAPHORE_ALL_ACCESS, TIMER_ALL_ACCESS,
};
use crate::error::{ERROR_INVALID_PARAMETER, Win32Error};

/// `WaitFor*` result: object `n` was signaled is `WAIT_OBJECT_0 + n`.
pub const WAIT_OBJECT_0: u32 = 0;
/// `WaitFor*` result: mutex `n` was abandoned is `WAIT_ABANDONED_0 + n`.
pub const WAIT_ABANDONED_0: u32 = 0x80;
/// `WaitFor*` result: the timeout elapsed.
pub const WAIT_TIMEOUT: u32 = 0x102;
/// `WaitFor*` result: the call failed (see `GetLastError`).
pub const WAIT_FAILED: u32 = 0xFFFF_FFFF;
/// A timeout that never elapses.
pub const INFINITE: u32 = 0xFFFF_FFFF;
/// Most objects one `WaitForMultipleObjects` accepts.
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;

/// `CreateEventEx` flag: manual-reset event.
pub const CREATE_EVENT_MANUAL_RESET: u32 = 0x1;
/// `CreateEventEx` flag: created signaled.
pub const CREATE_EVENT_INITIAL_SET: u32 = 0x2;
/// `CreateMutexEx` flag: the creating thread owns it.
pub const CREATE_MUTEX_INITIAL_OWNER: u32 = 0x1;
/// `CreateWaitableTimerEx` flag: manual-reset (notification) timer.
pub const CREATE_WAITABLE_TIMER_MANUAL_RESET: u32 = 0x1;

/// Largest semaphore count (`LONG` maximum).
pub const MAX_SEMAPHORE_COUNT: u32 = i32::MAX as u32;

/// How a synchronization object starts life. Ignored when the name exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncInit {
    Event {
        manual_reset: bool,
        signaled: bool,
    },
    /// The creating thread owns it when `owned`.
    Mutex {
        owned: bool,
    },
    Semaphore {
        initial: u32,
        maximum: u32,
    },
    Timer {
        manual_reset: bool,
    },
}

impl SyncInit {
    pub const fn object_type(self) -> ObjectType {
        match self {
            SyncInit::Event { .. } => ObjectType::Event,
            SyncInit::Mutex { .. } => ObjectType::Mutex,
            SyncInit::Semaphore { .. } => ObjectType::Semaphore,
            SyncInit::Timer { .. } => ObjectType::WaitableTimer,
        }
    }

    /// Checks the arguments as `CreateSemaphore` does: the maximum must be
    /// positive and the initial count between 0 and the maximum.
    pub fn validate(self) -> Result<(), Win32Error> {
        match self {
            SyncInit::Semaphore { initial, maximum }
                if maximum == 0 || maximum > MAX_SEMAPHORE_COUNT || initial > maximum =>
            {
                Err(ERROR_INVALID_PARAMETER)
            }
            _ => Ok(()),
        }
    }
}

/// The access a `Create*` call grants its caller.
pub const fn creator_access(object_type: ObjectType) -> u32 {
    match object_type {
        ObjectType::Event => EVENT_ALL_ACCESS,
        ObjectType::Mutex => MUTEX_ALL_ACCESS,
        ObjectType::Semaphore => SEMAPHORE_ALL_ACCESS,
        ObjectType::WaitableTimer => TIMER_ALL_ACCESS,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semaphore_limits_follow_create_semaphore() {
        let sem = |initial, maximum| SyncInit::Semaphore { initial, maximum }.validate();
        assert_eq!(sem(0, 1), Ok(()));
        assert_eq!(sem(1, 1), Ok(()));
        assert_eq!(sem(2, 1), Err(ERROR_INVALID_PARAMETER));
        assert_eq!(sem(0, 0), Err(ERROR_INVALID_PARAMETER));
        assert_eq!(
            sem(0, MAX_SEMAPHORE_COUNT + 1),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert_eq!(sem(MAX_SEMAPHORE_COUNT, MAX_SEMAPHORE_COUNT), Ok(()));
    }
}
