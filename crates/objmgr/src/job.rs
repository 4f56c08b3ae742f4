//! Job objects (`CreateJobObject`): a group of processes that end together
//! and share limits.
//!
//! A process joins a job when it is assigned ([`Job::assign`], any process
//! this one may open with `PROCESS_SET_QUOTA | PROCESS_TERMINATE`), and
//! every process a member starts through objmgr joins it too, unless it
//! breaks away ([`Command::breakaway_from_job`](crate::process::Command::breakaway_from_job)).
//! Jobs share the namespace with the other objects, are waitable (signaled
//! once terminated), and nest as on Windows 8 and later.
//!
//! ```no_run
//! use objmgr::job::{Job, JobLimits, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE};
//! use objmgr::process::Command;
//! # fn main() -> objmgr::Result<()> {
//! let job = Job::create(None)?;
//! job.set_limits(&JobLimits {
//!     flags: JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
//!     ..JobLimits::default()
//! })?;
//! job.assign_current()?;
//! // Every worker started from now on is in the job, and dies with this
//! // process (when the job's last handle closes), however it ends.
//! let worker = Command::new("worker").spawn()?;
//! # let _ = worker;
//! # Ok(()) }
//! ```
//!
//! # Differences from Windows
//! - Limits enforced: active processes, process memory (private writable
//!   memory, through `RLIMIT_DATA`), process and job user time (checked
//!   every 50 ms), kill on close, breakaway. Others (job memory, working
//!   set, affinity, priority and scheduling class) are refused with
//!   `ERROR_NOT_SUPPORTED`, never accepted and ignored.
//! - A process a member starts by plain `fork`/`exec` is not a member, but
//!   ending a member the broker started ends its process group too.
//! - Accounting reads `/proc`: the times of a member that exits are counted
//!   if the broker sees it before its parent reaps it (always, for
//!   processes started through objmgr); peak memory is sampled.

use objmgr_proto::access::{JOB_OBJECT_ALL_ACCESS, ObjectType};
use objmgr_proto::wire::{CURRENT_PROCESS, Handle, JobOp, Reply, Request};

pub use objmgr_proto::job::{
    JOB_OBJECT_BASIC_LIMIT_INFORMATION, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_BREAKAWAY_OK,
    JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOB_OBJECT_LIMIT_JOB_TIME, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME, JOB_OBJECT_LIMIT_PROCESS_MEMORY,
    JOB_OBJECT_LIMIT_PROCESS_TIME, JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK, JobAccounting, JobLimits,
};

use crate::connection::call;
use crate::error::*;
use crate::process::Process;
use crate::sync::{CreateOptions, SyncObject, waitable_type};

waitable_type!(
    /// A job object: waitable, signaled once the job was terminated.
    Job,
    ObjectType::Job
);

impl Job {
    /// `CreateJobObject`: a new job (unnamed with `None`), or the existing
    /// one of that name ([`Job::existed`]).
    pub fn create(name: Option<&str>) -> Result<Job> {
        Job::create_with(name, &CreateOptions::default())
    }

    pub fn create_with(name: Option<&str>, options: &CreateOptions) -> Result<Job> {
        let request = Request::CreateJob {
            name: name.unwrap_or("").to_owned(),
            access: options.access.unwrap_or(JOB_OBJECT_ALL_ACCESS),
            inherit: options.inheritable,
            security: crate::handle::wire_sddl(options.security.as_ref())?,
        };
        SyncObject::from_reply(call(&request, None), ObjectType::Job, || {
            format!("creating job {:?}", name.unwrap_or(""))
        })
        .map(Job::from_object)
    }

    /// `OpenJobObject` with `access` (`JOB_OBJECT_*` rights).
    pub fn open_with(
        name: &str,
        access: impl Into<crate::access::JobAccess>,
        inheritable: bool,
    ) -> Result<Job> {
        let access = access.into().bits();
        let request = Request::Open {
            object_type: ObjectType::Job,
            name: name.to_owned(),
            access,
            inherit: inheritable,
            known_fd: None,
        };
        SyncObject::from_reply(call(&request, None), ObjectType::Job, || {
            format!("opening job {name:?}")
        })
        .map(Job::from_object)
    }

    /// Whether the create call found the name existing.
    pub fn existed(&self) -> bool {
        self.object.existed
    }

    fn control(
        &self,
        op: JobOp,
        process: Handle,
        values: Vec<u64>,
        what: &str,
    ) -> Result<Vec<u64>> {
        let request = Request::JobControl {
            op,
            job: self.object.handle,
            process,
            values,
        };
        match call(&request, None).map_err(|e| e.within(what))?.0 {
            Reply::Numbers(values) => Ok(values),
            _ => Err(Error::new(
                ERROR_INVALID_DATA,
                format!("{what}: unexpected reply"),
            )),
        }
    }

    /// `AssignProcessToJobObject`: `process` joins the job (its handle needs
    /// `PROCESS_SET_QUOTA | PROCESS_TERMINATE`). Past the job's active
    /// process limit it fails with `ERROR_NOT_ENOUGH_QUOTA` and the process
    /// is ended, as on Windows.
    pub fn assign(&self, process: &Process) -> Result<()> {
        let handle = Handle(process.handle_value());
        self.control(
            JobOp::Assign,
            handle,
            Vec::new(),
            "AssignProcessToJobObject",
        )
        .map(drop)
    }

    /// `AssignProcessToJobObject(job, GetCurrentProcess())`.
    pub fn assign_current(&self) -> Result<()> {
        self.control(
            JobOp::Assign,
            CURRENT_PROCESS,
            Vec::new(),
            "AssignProcessToJobObject",
        )
        .map(drop)
    }

    /// `TerminateJobObject`: ends every member with `exit_code`; the job
    /// becomes signaled.
    pub fn terminate(&self, exit_code: u32) -> Result<()> {
        let values = vec![u64::from(exit_code)];
        self.control(JobOp::Terminate, Handle(0), values, "TerminateJobObject")
            .map(drop)
    }

    /// `SetInformationJobObject(JobObjectExtendedLimitInformation)`.
    pub fn set_limits(&self, limits: &JobLimits) -> Result<()> {
        self.set_limits_as(JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, limits)
    }

    /// `SetInformationJobObject` with the basic or extended limit class.
    pub fn set_limits_as(&self, class: u32, limits: &JobLimits) -> Result<()> {
        let mut values = vec![u64::from(class)];
        values.extend(limits.to_values());
        self.control(
            JobOp::SetLimits,
            Handle(0),
            values,
            "SetInformationJobObject",
        )
        .map(drop)
    }

    /// `SetInformationJobObject(JobObjectEndOfJobTimeInformation)`: only
    /// `JOB_OBJECT_TERMINATE_AT_END_OF_JOB` (the default) is supported;
    /// posting to a completion port is `ERROR_NOT_SUPPORTED`.
    pub fn set_end_of_job_action(&self, action: u32) -> Result<()> {
        let values = vec![u64::from(action)];
        self.control(
            JobOp::SetEndOfJob,
            Handle(0),
            values,
            "SetInformationJobObject",
        )
        .map(drop)
    }

    /// The job's limits and the peak memory figures (`QueryInformationJobObject`
    /// with `JobObjectExtendedLimitInformation`): `(limits, peak process
    /// memory, peak job memory)`.
    pub fn limits(&self) -> Result<(JobLimits, u64, u64)> {
        let what = "QueryInformationJobObject";
        let values = self.control(JobOp::QueryLimits, Handle(0), Vec::new(), what)?;
        let bad = || Error::new(ERROR_INVALID_DATA, format!("{what}: bad limits"));
        let limits = JobLimits::from_values(&values).ok_or_else(bad)?;
        let peaks = values.get(6..8).ok_or_else(bad)?;
        Ok((limits, peaks[0], peaks[1]))
    }

    /// `JobObjectBasicAccountingInformation` (and the peak memory figures).
    pub fn accounting(&self) -> Result<JobAccounting> {
        let what = "QueryInformationJobObject";
        let values = self.control(JobOp::QueryAccounting, Handle(0), Vec::new(), what)?;
        JobAccounting::from_values(&values)
            .ok_or_else(|| Error::new(ERROR_INVALID_DATA, format!("{what}: bad accounting")))
    }

    /// `JobObjectBasicProcessIdList`: how many processes are in the job,
    /// and their ids (at most the first 4096).
    pub fn process_ids(&self) -> Result<(u32, Vec<u32>)> {
        let what = "QueryInformationJobObject";
        let values = self.control(JobOp::QueryProcessIds, Handle(0), Vec::new(), what)?;
        let (&count, pids) = values
            .split_first()
            .ok_or_else(|| Error::new(ERROR_INVALID_DATA, format!("{what}: no count")))?;
        Ok((
            u32::try_from(count).unwrap_or(u32::MAX),
            pids.iter().map(|&p| p as u32).collect(),
        ))
    }

    /// `IsProcessInJob(process, job)` (`None`: this process).
    pub fn contains(&self, process: Option<&Process>) -> Result<bool> {
        is_in_job(process, Some(self))
    }
}

/// `IsProcessInJob`: whether `process` (`None`: this process) is in `job`
/// (`None`: in any job).
pub fn is_in_job(process: Option<&Process>, job: Option<&Job>) -> Result<bool> {
    let request = Request::JobControl {
        op: JobOp::Contains,
        job: job.map_or(Handle(0), |j| j.object.handle),
        process: process.map_or(CURRENT_PROCESS, |p| Handle(p.handle_value())),
        values: Vec::new(),
    };
    match call(&request, None)
        .map_err(|e| e.within("IsProcessInJob"))?
        .0
    {
        Reply::Numbers(values) => Ok(values.first() == Some(&1)),
        _ => Err(Error::new(
            ERROR_INVALID_DATA,
            "IsProcessInJob: unexpected reply",
        )),
    }
}
