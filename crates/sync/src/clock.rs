//! Time for waits and timers: `CLOCK_MONOTONIC` nanoseconds, and Windows'
//! due-time conventions (100 ns units; negative = relative, positive =
//! absolute `FILETIME`, UTC since 1601).

use rustix::time::{ClockId, Timespec, clock_gettime};

/// Nanoseconds on the monotonic clock, the same in every process.
pub fn now() -> u64 {
    to_nanos(clock_gettime(ClockId::Monotonic))
}

fn to_nanos(ts: Timespec) -> u64 {
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A monotonic deadline as a `Timespec`, for absolute futex timeouts.
pub fn timespec(nanos: u64) -> Timespec {
    Timespec {
        tv_sec: (nanos / 1_000_000_000) as i64,
        tv_nsec: (nanos % 1_000_000_000) as _,
    }
}

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// Converts a `SetWaitableTimer` due time to a monotonic deadline (never 0,
/// which means "not armed"). An absolute time is converted once, now: later
/// changes of the wall clock do not move it.
pub fn due_from_filetime(due: i64) -> u64 {
    let now = now();
    let deadline = if due < 0 {
        now.saturating_add(due.unsigned_abs().saturating_mul(100))
    } else {
        let ahead = due.saturating_sub(filetime_now());
        if ahead <= 0 {
            now
        } else {
            now.saturating_add((ahead as u64).saturating_mul(100))
        }
    };
    deadline.max(1)
}

/// The current wall-clock time as a `FILETIME` value.
pub fn filetime_now() -> i64 {
    let wall = clock_gettime(ClockId::Realtime);
    wall.tv_sec * 10_000_000 + wall.tv_nsec as i64 / 100 + FILETIME_UNIX_EPOCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_due_times() {
        let before = now();
        let rel = due_from_filetime(-10_000_000); // 1 s from now
        assert!(rel >= before + 1_000_000_000 && rel < now() + 1_100_000_000);
        let abs = due_from_filetime(filetime_now() + 20_000_000); // 2 s from now
        assert!(abs > before + 1_900_000_000 && abs < now() + 2_100_000_000);
        let past = due_from_filetime(0);
        assert!(past <= now() && past >= before);
    }
}
