//! Job objects: limit flags, information classes, and the figures that travel
//! between client and broker (as lists of numbers, in the orders below).
//!
//! A job groups processes: terminating it ends them all, and its limits
//! apply to each (memory, user time, how many may run) or to all together
//! (user time). Names, flags and codes are Windows' (`winnt.h`).

use crate::error::{ERROR_INVALID_PARAMETER, ERROR_NOT_SUPPORTED, Win32Error};

pub const JOB_OBJECT_LIMIT_WORKINGSET: u32 = 0x0000_0001;
pub const JOB_OBJECT_LIMIT_PROCESS_TIME: u32 = 0x0000_0002;
pub const JOB_OBJECT_LIMIT_JOB_TIME: u32 = 0x0000_0004;
pub const JOB_OBJECT_LIMIT_ACTIVE_PROCESS: u32 = 0x0000_0008;
pub const JOB_OBJECT_LIMIT_AFFINITY: u32 = 0x0000_0010;
pub const JOB_OBJECT_LIMIT_PRIORITY_CLASS: u32 = 0x0000_0020;
pub const JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME: u32 = 0x0000_0040;
pub const JOB_OBJECT_LIMIT_SCHEDULING_CLASS: u32 = 0x0000_0080;
pub const JOB_OBJECT_LIMIT_PROCESS_MEMORY: u32 = 0x0000_0100;
pub const JOB_OBJECT_LIMIT_JOB_MEMORY: u32 = 0x0000_0200;
pub const JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION: u32 = 0x0000_0400;
pub const JOB_OBJECT_LIMIT_BREAKAWAY_OK: u32 = 0x0000_0800;
pub const JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK: u32 = 0x0000_1000;
pub const JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: u32 = 0x0000_2000;
pub const JOB_OBJECT_LIMIT_SUBSET_AFFINITY: u32 = 0x0000_4000;
/// The flags `JobObjectBasicLimitInformation` may set.
pub const JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS: u32 = 0x0000_00FF;
/// The flags `JobObjectExtendedLimitInformation` may set.
pub const JOB_OBJECT_EXTENDED_LIMIT_VALID_FLAGS: u32 = 0x0000_7FFF;

/// The limits objmgr enforces (the others are refused, never ignored).
pub const JOB_LIMITS_SUPPORTED: u32 = JOB_OBJECT_LIMIT_PROCESS_TIME
    | JOB_OBJECT_LIMIT_JOB_TIME
    | JOB_OBJECT_LIMIT_ACTIVE_PROCESS
    | JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME
    | JOB_OBJECT_LIMIT_PROCESS_MEMORY
    | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
    | JOB_OBJECT_LIMIT_BREAKAWAY_OK
    | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK
    | JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;

/// `CreateProcess` flag: the child does not join its creator's job (the
/// job must allow it: `JOB_OBJECT_LIMIT_BREAKAWAY_OK`).
pub const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;

/// `JOBOBJECTINFOCLASS` values.
pub const JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION: u32 = 1;
pub const JOB_OBJECT_BASIC_LIMIT_INFORMATION: u32 = 2;
pub const JOB_OBJECT_BASIC_PROCESS_ID_LIST: u32 = 3;
pub const JOB_OBJECT_END_OF_JOB_TIME_INFORMATION: u32 = 6;
pub const JOB_OBJECT_EXTENDED_LIMIT_INFORMATION: u32 = 9;

/// `EndOfJobTimeAction` values.
pub const JOB_OBJECT_TERMINATE_AT_END_OF_JOB: u32 = 0;
pub const JOB_OBJECT_POST_AT_END_OF_JOB: u32 = 1;

/// Most process ids one `JobObjectBasicProcessIdList` reply carries.
pub const MAX_PROCESS_IDS: usize = 4096;

/// A job's limits, as `JOBOBJECT_EXTENDED_LIMIT_INFORMATION` holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobLimits {
    /// `JOB_OBJECT_LIMIT_*` flags in effect.
    pub flags: u32,
    /// User-mode time each process may use, in 100 ns units.
    pub per_process_user_time: u64,
    /// User-mode time all processes together may use from now on, in 100
    /// ns units.
    pub per_job_user_time: u64,
    pub active_process_limit: u32,
    /// Bytes of private memory each process may commit.
    pub process_memory: u64,
    /// Bytes all processes together may commit.
    pub job_memory: u64,
}

impl JobLimits {
    /// As a list of numbers (the wire form).
    pub fn to_values(&self) -> Vec<u64> {
        vec![
            u64::from(self.flags),
            self.per_process_user_time,
            self.per_job_user_time,
            u64::from(self.active_process_limit),
            self.process_memory,
            self.job_memory,
        ]
    }

    pub fn from_values(values: &[u64]) -> Option<JobLimits> {
        let &[
            flags,
            per_process_user_time,
            per_job_user_time,
            active,
            process_memory,
            job_memory,
            ..,
        ] = values
        else {
            return None;
        };
        Some(JobLimits {
            flags: u32::try_from(flags).ok()?,
            per_process_user_time,
            per_job_user_time,
            active_process_limit: u32::try_from(active).ok()?,
            process_memory,
            job_memory,
        })
    }

    /// Checks limits given with `class` (basic or extended): flags of the
    /// other class are `ERROR_INVALID_PARAMETER`, limits this machine does
    /// not enforce `ERROR_NOT_SUPPORTED` (never accepted and ignored).
    pub fn validate(&self, class: u32) -> Result<(), (Win32Error, String)> {
        let valid = if class == JOB_OBJECT_BASIC_LIMIT_INFORMATION {
            JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS
        } else {
            JOB_OBJECT_EXTENDED_LIMIT_VALID_FLAGS
        };
        if self.flags & !valid != 0 {
            return Err((
                ERROR_INVALID_PARAMETER,
                format!(
                    "limit flags {:#x} are not valid for this information class",
                    self.flags & !valid
                ),
            ));
        }
        let unsupported = self.flags & !JOB_LIMITS_SUPPORTED;
        if unsupported != 0 {
            let names: Vec<&str> = LIMIT_NAMES
                .iter()
                .filter(|(bit, _)| unsupported & bit != 0)
                .map(|&(_, name)| name)
                .collect();
            return Err((
                ERROR_NOT_SUPPORTED,
                format!("objmgr cannot enforce {} on this machine", names.join(", ")),
            ));
        }
        let both = JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME | JOB_OBJECT_LIMIT_JOB_TIME;
        if self.flags & both == both {
            return Err((
                ERROR_INVALID_PARAMETER,
                "JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME keeps the job time limit: it cannot set one"
                    .into(),
            ));
        }
        if self.flags & JOB_OBJECT_LIMIT_ACTIVE_PROCESS != 0 && self.active_process_limit == 0 {
            return Err((
                ERROR_INVALID_PARAMETER,
                "an active process limit of 0".into(),
            ));
        }
        if self.flags & JOB_OBJECT_LIMIT_PROCESS_MEMORY != 0 && self.process_memory == 0 {
            return Err((
                ERROR_INVALID_PARAMETER,
                "a process memory limit of 0".into(),
            ));
        }
        Ok(())
    }
}

/// Names of the limit flags, for messages and `objmgr stat`.
pub const LIMIT_NAMES: [(u32, &str); 15] = [
    (JOB_OBJECT_LIMIT_WORKINGSET, "JOB_OBJECT_LIMIT_WORKINGSET"),
    (
        JOB_OBJECT_LIMIT_PROCESS_TIME,
        "JOB_OBJECT_LIMIT_PROCESS_TIME",
    ),
    (JOB_OBJECT_LIMIT_JOB_TIME, "JOB_OBJECT_LIMIT_JOB_TIME"),
    (
        JOB_OBJECT_LIMIT_ACTIVE_PROCESS,
        "JOB_OBJECT_LIMIT_ACTIVE_PROCESS",
    ),
    (JOB_OBJECT_LIMIT_AFFINITY, "JOB_OBJECT_LIMIT_AFFINITY"),
    (
        JOB_OBJECT_LIMIT_PRIORITY_CLASS,
        "JOB_OBJECT_LIMIT_PRIORITY_CLASS",
    ),
    (
        JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME,
        "JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME",
    ),
    (
        JOB_OBJECT_LIMIT_SCHEDULING_CLASS,
        "JOB_OBJECT_LIMIT_SCHEDULING_CLASS",
    ),
    (
        JOB_OBJECT_LIMIT_PROCESS_MEMORY,
        "JOB_OBJECT_LIMIT_PROCESS_MEMORY",
    ),
    (
        JOB_OBJECT_LIMIT_JOB_MEMORY,
        "JOB_OBJECT_LIMIT_JOB_MEMORY (needs a memory cgroup; use JOB_OBJECT_LIMIT_PROCESS_MEMORY)",
    ),
    (
        JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION,
        "JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION",
    ),
    (
        JOB_OBJECT_LIMIT_BREAKAWAY_OK,
        "JOB_OBJECT_LIMIT_BREAKAWAY_OK",
    ),
    (
        JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK,
        "JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK",
    ),
    (
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        "JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE",
    ),
    (
        JOB_OBJECT_LIMIT_SUBSET_AFFINITY,
        "JOB_OBJECT_LIMIT_SUBSET_AFFINITY",
    ),
];

/// What `JobObjectBasicAccountingInformation` reports (times in 100 ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobAccounting {
    pub total_user_time: u64,
    pub total_kernel_time: u64,
    pub this_period_user_time: u64,
    pub this_period_kernel_time: u64,
    pub page_faults: u32,
    /// Processes ever associated with the job.
    pub total_processes: u32,
    pub active_processes: u32,
    /// Processes ended because they broke a limit.
    pub terminated_processes: u32,
    /// Peak private memory of one process, and of all together (bytes).
    pub peak_process_memory: u64,
    pub peak_job_memory: u64,
}

impl JobAccounting {
    pub fn to_values(&self) -> Vec<u64> {
        vec![
            self.total_user_time,
            self.total_kernel_time,
            self.this_period_user_time,
            self.this_period_kernel_time,
            u64::from(self.page_faults),
            u64::from(self.total_processes),
            u64::from(self.active_processes),
            u64::from(self.terminated_processes),
            self.peak_process_memory,
            self.peak_job_memory,
        ]
    }

    pub fn from_values(values: &[u64]) -> Option<JobAccounting> {
        let &[
            user,
            kernel,
            period_user,
            period_kernel,
            faults,
            total,
            active,
            terminated,
            peak_process,
            peak_job,
            ..,
        ] = values
        else {
            return None;
        };
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Some(JobAccounting {
            total_user_time: user,
            total_kernel_time: kernel,
            this_period_user_time: period_user,
            this_period_kernel_time: period_kernel,
            page_faults: small(faults),
            total_processes: small(total),
            active_processes: small(active),
            terminated_processes: small(terminated),
            peak_process_memory: peak_process,
            peak_job_memory: peak_job,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_accounting_round_trip() {
        let limits = JobLimits {
            flags: JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_ACTIVE_PROCESS,
            per_process_user_time: 1,
            per_job_user_time: 2,
            active_process_limit: 3,
            process_memory: 4,
            job_memory: 5,
        };
        assert_eq!(JobLimits::from_values(&limits.to_values()), Some(limits));
        assert_eq!(JobLimits::from_values(&[1, 2]), None);
        let accounting = JobAccounting {
            total_user_time: 9,
            active_processes: 2,
            peak_job_memory: 1 << 40,
            ..JobAccounting::default()
        };
        assert_eq!(
            JobAccounting::from_values(&accounting.to_values()),
            Some(accounting)
        );
    }

    #[test]
    fn limits_are_enforced_or_refused() {
        let with = |flags| JobLimits {
            flags,
            active_process_limit: 1,
            process_memory: 1 << 20,
            ..JobLimits::default()
        };
        let all = JOB_LIMITS_SUPPORTED & !JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME;
        assert!(with(all).validate(9).is_ok());
        // Preserving the job time limit while setting one is a contradiction.
        let (code, _) = with(JOB_LIMITS_SUPPORTED).validate(9).unwrap_err();
        assert_eq!(code, ERROR_INVALID_PARAMETER);
        let (code, why) = with(JOB_OBJECT_LIMIT_JOB_MEMORY).validate(9).unwrap_err();
        assert_eq!(code, ERROR_NOT_SUPPORTED);
        assert!(why.contains("JOB_OBJECT_LIMIT_JOB_MEMORY"), "{why}");
        // Extended flags through the basic class.
        let (code, _) = with(JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE)
            .validate(JOB_OBJECT_BASIC_LIMIT_INFORMATION)
            .unwrap_err();
        assert_eq!(code, ERROR_INVALID_PARAMETER);
    }
}
