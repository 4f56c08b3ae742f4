//! Job objects: `CreateJobObjectA/W`, `OpenJobObjectA/W`,
//! `AssignProcessToJobObject`, `TerminateJobObject`, `IsProcessInJob`,
//! `SetInformationJobObject` and `QueryInformationJobObject` (basic and
//! extended limits, accounting, the process-id list, the end-of-job action).

use std::ffi::{c_char, c_void};

use objmgr::handle::Object;
use objmgr::job::{Job, JobAccounting, JobLimits};
use objmgr_proto::error::*;
use objmgr_proto::job::*;

use crate::api_sync::{Name, create, exports, open_named};
use crate::ffi;
use crate::last_error::{fail, guard};
use crate::table::{self, Entry};
use crate::types::*;

/// `JOBOBJECT_BASIC_PROCESS_ID_LIST`: two counts, then the ids.
const PROCESS_ID_LIST_HEADER: usize = 8;

/// Classes Windows has that objmgr does not.
const JOB_OBJECT_BASIC_UI_RESTRICTIONS: u32 = 4;
const JOB_OBJECT_SECURITY_LIMIT_INFORMATION: u32 = 5;
const JOB_OBJECT_ASSOCIATE_COMPLETION_PORT_INFORMATION: u32 = 7;

/// Runs `op` on the job behind `h`.
fn with_job<T>(h: HANDLE, failure: T, op: impl FnOnce(&Job) -> Result<T, Win32Error>) -> T {
    let entry = match table::object(h) {
        Ok(entry) => entry,
        Err(code) => return fail(code, failure),
    };
    match &*entry {
        Entry::Object(Object::Job(job)) => match op(job) {
            Ok(value) => value,
            Err(code) => fail(code, failure),
        },
        _ => fail(ERROR_INVALID_HANDLE, failure),
    }
}

/// Runs `op` with the process behind `h` (`None`: this process).
fn with_process<T>(
    h: HANDLE,
    op: impl FnOnce(Option<&objmgr::process::Process>) -> Result<T, Win32Error>,
) -> Result<T, Win32Error> {
    if h == CURRENT_PROCESS {
        return op(None);
    }
    let entry = table::object(h)?;
    match &*entry {
        Entry::Object(Object::Process(p)) => op(Some(p)),
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

fn code<T>(result: objmgr::Result<T>) -> Result<T, Win32Error> {
    result.map_err(|e| e.code())
}

/// A time limit in 100 ns units, if its flag is set (a negative one is
/// refused); 0 otherwise (the field is ignored).
fn ticks(flags: u32, flag: u32, value: i64) -> Result<u64, Win32Error> {
    if flags & flag == 0 {
        return Ok(0);
    }
    u64::try_from(value).map_err(|_| ERROR_INVALID_PARAMETER)
}

fn limits_from_basic(basic: &JOBOBJECT_BASIC_LIMIT_INFORMATION) -> Result<JobLimits, Win32Error> {
    let flags = basic.LimitFlags;
    Ok(JobLimits {
        flags,
        per_process_user_time: ticks(
            flags,
            JOB_OBJECT_LIMIT_PROCESS_TIME,
            basic.PerProcessUserTimeLimit,
        )?,
        per_job_user_time: ticks(flags, JOB_OBJECT_LIMIT_JOB_TIME, basic.PerJobUserTimeLimit)?,
        active_process_limit: basic.ActiveProcessLimit,
        process_memory: 0,
        job_memory: 0,
    })
}

fn basic_from_limits(limits: &JobLimits) -> JOBOBJECT_BASIC_LIMIT_INFORMATION {
    JOBOBJECT_BASIC_LIMIT_INFORMATION {
        PerProcessUserTimeLimit: limits.per_process_user_time as i64,
        PerJobUserTimeLimit: limits.per_job_user_time as i64,
        LimitFlags: limits.flags,
        ActiveProcessLimit: limits.active_process_limit,
        ..Default::default()
    }
}

/// Reads the structure of `class` from `info` (`len` bytes) and sets it.
unsafe fn set_information(h: HANDLE, class: u32, info: *const c_void, len: DWORD) -> BOOL {
    let size = |want: usize| -> Result<(), Win32Error> {
        if info.is_null() {
            Err(ERROR_INVALID_PARAMETER)
        } else if len as usize != want {
            Err(ERROR_BAD_LENGTH)
        } else {
            Ok(())
        }
    };
    with_job(h, FALSE, |job| {
        match class {
            JOB_OBJECT_BASIC_LIMIT_INFORMATION => {
                size(std::mem::size_of::<JOBOBJECT_BASIC_LIMIT_INFORMATION>())?;
                // SAFETY: non-NULL and `len` bytes, checked above.
                let basic = unsafe { ffi::get(info.cast::<JOBOBJECT_BASIC_LIMIT_INFORMATION>()) }
                    .ok_or(ERROR_INVALID_PARAMETER)?;
                code(job.set_limits_as(class, &limits_from_basic(&basic)?))?;
            }
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION => {
                size(std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>())?;
                // SAFETY: non-NULL and `len` bytes, checked above.
                let extended =
                    unsafe { ffi::get(info.cast::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>()) }
                        .ok_or(ERROR_INVALID_PARAMETER)?;
                let mut limits = limits_from_basic(&extended.BasicLimitInformation)?;
                limits.process_memory = extended.ProcessMemoryLimit as u64;
                limits.job_memory = extended.JobMemoryLimit as u64;
                code(job.set_limits_as(class, &limits))?;
            }
            JOB_OBJECT_END_OF_JOB_TIME_INFORMATION => {
                size(std::mem::size_of::<DWORD>())?;
                // SAFETY: non-NULL and 4 bytes, checked above.
                let action =
                    unsafe { ffi::get(info.cast::<DWORD>()) }.ok_or(ERROR_INVALID_PARAMETER)?;
                code(job.set_end_of_job_action(action))?;
            }
            JOB_OBJECT_BASIC_UI_RESTRICTIONS
            | JOB_OBJECT_SECURITY_LIMIT_INFORMATION
            | JOB_OBJECT_ASSOCIATE_COMPLETION_PORT_INFORMATION => return Err(ERROR_NOT_SUPPORTED),
            _ => return Err(ERROR_INVALID_PARAMETER),
        }
        Ok(TRUE)
    })
}

/// Writes the structure of `class` into `info` (`len` bytes).
unsafe fn query_information(
    h: HANDLE,
    class: u32,
    info: *mut c_void,
    len: DWORD,
    returned: *mut DWORD,
) -> BOOL {
    let room = |want: usize| -> Result<(), Win32Error> {
        if info.is_null() {
            Err(ERROR_INVALID_PARAMETER)
        } else if (len as usize) < want {
            Err(ERROR_BAD_LENGTH)
        } else {
            Ok(())
        }
    };
    with_job(h, FALSE, |job| {
        let written = match class {
            JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION => {
                let want = std::mem::size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>();
                room(want)?;
                let a: JobAccounting = code(job.accounting())?;
                let value = JOBOBJECT_BASIC_ACCOUNTING_INFORMATION {
                    TotalUserTime: a.total_user_time as i64,
                    TotalKernelTime: a.total_kernel_time as i64,
                    ThisPeriodTotalUserTime: a.this_period_user_time as i64,
                    ThisPeriodTotalKernelTime: a.this_period_kernel_time as i64,
                    TotalPageFaultCount: a.page_faults,
                    TotalProcesses: a.total_processes,
                    ActiveProcesses: a.active_processes,
                    TotalTerminatedProcesses: a.terminated_processes,
                };
                // SAFETY: non-NULL with room, checked above.
                unsafe { ffi::put(info.cast(), value) };
                want
            }
            JOB_OBJECT_BASIC_LIMIT_INFORMATION => {
                let want = std::mem::size_of::<JOBOBJECT_BASIC_LIMIT_INFORMATION>();
                room(want)?;
                let (limits, _, _) = code(job.limits())?;
                let mut basic = basic_from_limits(&limits);
                basic.LimitFlags &= JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS;
                // SAFETY: non-NULL with room, checked above.
                unsafe { ffi::put(info.cast(), basic) };
                want
            }
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION => {
                let want = std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>();
                room(want)?;
                let (limits, peak_process, peak_job) = code(job.limits())?;
                let value = JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
                    BasicLimitInformation: basic_from_limits(&limits),
                    IoInfo: IO_COUNTERS::default(),
                    ProcessMemoryLimit: limits.process_memory as usize,
                    JobMemoryLimit: limits.job_memory as usize,
                    PeakProcessMemoryUsed: peak_process as usize,
                    PeakJobMemoryUsed: peak_job as usize,
                };
                // SAFETY: non-NULL with room, checked above.
                unsafe { ffi::put(info.cast(), value) };
                want
            }
            JOB_OBJECT_BASIC_PROCESS_ID_LIST => {
                let slot = std::mem::size_of::<usize>();
                room(PROCESS_ID_LIST_HEADER + slot)?;
                let (assigned, pids) = code(job.process_ids())?;
                let fits = (len as usize - PROCESS_ID_LIST_HEADER) / slot;
                let listed = pids.len().min(fits);
                let base = info.cast::<u8>();
                // SAFETY: the header and `listed` ids lie inside the `len`
                // writable bytes at `info` (checked above).
                unsafe {
                    ffi::put(base.cast::<DWORD>(), assigned);
                    ffi::put(base.add(4).cast::<DWORD>(), listed as DWORD);
                    for (i, &pid) in pids.iter().take(listed).enumerate() {
                        ffi::put(
                            base.add(PROCESS_ID_LIST_HEADER + i * slot).cast::<usize>(),
                            pid as usize,
                        );
                    }
                }
                if listed < assigned as usize {
                    return Err(ERROR_MORE_DATA);
                }
                PROCESS_ID_LIST_HEADER + listed * slot
            }
            JOB_OBJECT_END_OF_JOB_TIME_INFORMATION => {
                room(std::mem::size_of::<DWORD>())?;
                // SAFETY: non-NULL with room, checked above.
                unsafe { ffi::put(info.cast::<DWORD>(), JOB_OBJECT_TERMINATE_AT_END_OF_JOB) };
                std::mem::size_of::<DWORD>()
            }
            JOB_OBJECT_BASIC_UI_RESTRICTIONS
            | JOB_OBJECT_SECURITY_LIMIT_INFORMATION
            | JOB_OBJECT_ASSOCIATE_COMPLETION_PORT_INFORMATION => return Err(ERROR_NOT_SUPPORTED),
            _ => return Err(ERROR_INVALID_PARAMETER),
        };
        // SAFETY: NULL or writable per the Win32 contract.
        unsafe { ffi::put(returned, written as DWORD) };
        Ok(TRUE)
    })
}

unsafe fn is_in_job(process: HANDLE, job: HANDLE, result: *mut BOOL) -> BOOL {
    if result.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let answer = with_process(process, |p| {
        if job.is_null() {
            return code(objmgr::job::is_in_job(p, None));
        }
        let entry = table::object(job)?;
        match &*entry {
            Entry::Object(Object::Job(j)) => code(objmgr::job::is_in_job(p, Some(j))),
            _ => Err(ERROR_INVALID_HANDLE),
        }
    });
    match answer {
        Ok(inside) => {
            // SAFETY: checked non-NULL; writable per the Win32 contract.
            unsafe { ffi::put(result, BOOL::from(inside)) };
            TRUE
        }
        Err(code) => fail(code, FALSE),
    }
}

const NULL: HANDLE = std::ptr::null_mut();

exports! {
    fn CreateJobObjectA(a: *const SECURITY_ATTRIBUTES, name: *const c_char) -> HANDLE = NULL
        => create(a, Name::Ansi(name), JOB_OBJECT_ALL, Job::create_with, Job::existed, Object::Job);
    fn CreateJobObjectW(a: *const SECURITY_ATTRIBUTES, name: *const WCHAR) -> HANDLE = NULL
        => create(a, Name::Wide(name), JOB_OBJECT_ALL, Job::create_with, Job::existed, Object::Job);
    fn OpenJobObjectA(access: DWORD, inherit: BOOL, name: *const c_char) -> HANDLE = NULL
        => open_named(Name::Ansi(name), |n| Job::open_with(n, access, inherit != 0), Object::Job);
    fn OpenJobObjectW(access: DWORD, inherit: BOOL, name: *const WCHAR) -> HANDLE = NULL
        => open_named(Name::Wide(name), |n| Job::open_with(n, access, inherit != 0), Object::Job);
    fn AssignProcessToJobObject(job: HANDLE, process: HANDLE) -> BOOL = FALSE
        => with_job(job, FALSE, |j| with_process(process, |p| code(match p {
            Some(p) => j.assign(p),
            None => j.assign_current(),
        }).map(|()| TRUE)));
    fn TerminateJobObject(job: HANDLE, exit_code: UINT) -> BOOL = FALSE
        => with_job(job, FALSE, |j| code(j.terminate(exit_code)).map(|()| TRUE));
    fn IsProcessInJob(process: HANDLE, job: HANDLE, result: *mut BOOL) -> BOOL = FALSE
        => is_in_job(process, job, result);
    fn SetInformationJobObject(job: HANDLE, class: u32, info: *const c_void, len: DWORD) -> BOOL = FALSE
        => set_information(job, class, info, len);
    fn QueryInformationJobObject(job: HANDLE, class: u32, info: *mut c_void, len: DWORD, returned: *mut DWORD) -> BOOL = FALSE
        => query_information(job, class, info, len, returned);
}

/// `JOB_OBJECT_ALL_ACCESS`, the access a created job's handle gets.
const JOB_OBJECT_ALL: u32 = objmgr_proto::access::JOB_OBJECT_ALL_ACCESS;
