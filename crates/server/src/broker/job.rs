//! Job objects: groups of processes the broker watches, ends together and
//! holds to limits.
//!
//! The broker knows a job's members exactly: processes assigned to it
//! (`AssignProcessToJobObject`, any process the caller may open with
//! `PROCESS_SET_QUOTA | PROCESS_TERMINATE`) and processes a member starts
//! through objmgr. A process a member starts by plain `fork` is not known,
//! but it is in the process group of a member the broker started, and
//! ending such a member ends its group. How each limit is enforced:
//!
//! - active processes: checked when a process joins (a spawn or an
//!   assignment past it fails with `ERROR_NOT_ENOUGH_QUOTA`, and an
//!   assigned process is ended, as on Windows);
//! - process memory: `RLIMIT_DATA` of each member (the kernel counts its
//!   private writable memory, what Windows calls committed), so an
//!   allocation past it fails;
//! - process and job user time: the broker reads the members' user time
//!   every 50 ms while such a limit is set and ends a process (or the whole
//!   job) past it, with exit code `ERROR_NOT_ENOUGH_QUOTA`;
//! - kill on close: when the job's last handle closes (also when its holder
//!   dies) every member is killed;
//! - job memory needs a memory cgroup, which the broker does not manage:
//!   refused with `ERROR_NOT_SUPPORTED`, as are the other limits it cannot
//!   enforce.
//!
//! Jobs nest as on Windows 8 and later: a process already in a job may be
//! assigned to an empty job, which then nests in the process's job; the
//! limits of every job in the chain apply, and a job's figures include its
//! nested jobs'.

use objmgr_proto::access::{
    JOB_OBJECT_ASSIGN_PROCESS, JOB_OBJECT_QUERY, JOB_OBJECT_SET_ATTRIBUTES, JOB_OBJECT_TERMINATE,
    PROCESS_SET_QUOTA, PROCESS_TERMINATE,
};
use objmgr_proto::job::*;
use objmgr_proto::wire::JobOp;

use super::process::{ProcessStats, process_stats};
use super::*;

/// How deep jobs may nest.
const MAX_JOB_DEPTH: usize = 32;

/// How often the broker reads members' user time while a time limit is set.
pub const JOB_TIME_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// A job's own state (its waitable state is its slot).
#[derive(Debug, Default)]
pub(super) struct Job {
    limits: JobLimits,
    /// The job it is nested in, and those nested in it.
    parent: Option<ObjectId>,
    children: Vec<ObjectId>,
    /// Its own running members (not those of nested jobs).
    members: Vec<RecordId>,
    /// Processes ever associated with it (nested jobs' included).
    total_processes: u32,
    /// Members ended for breaking a limit.
    terminated_by_limit: u32,
    /// What members that exited used (times in 100 ns).
    exited: ProcessStats,
    /// The user time the job time limit counts from.
    job_time_base: u64,
    peak_process_memory: u64,
    peak_job_memory: u64,
    /// Its last handle closed: it lives on, nameless, while it has members.
    closed: bool,
}

impl Broker {
    pub(super) fn job(&self, oid: ObjectId) -> Option<&Job> {
        match &self.objects.get(&oid)?.body {
            Body::Job { job, .. } => Some(job),
            _ => None,
        }
    }

    fn job_mut(&mut self, oid: ObjectId) -> Option<&mut Job> {
        match &mut self.objects.get_mut(&oid)?.body {
            Body::Job { job, .. } => Some(job),
            _ => None,
        }
    }

    /// `job` and the jobs it is nested in, innermost first.
    fn job_chain(&self, job: ObjectId) -> Vec<ObjectId> {
        let mut chain = vec![job];
        while let Some(parent) = self
            .job(*chain.last().expect("not empty"))
            .and_then(|j| j.parent)
        {
            chain.push(parent);
        }
        chain
    }

    /// `job` and the jobs nested in it, at any depth.
    fn job_tree(&self, job: ObjectId) -> Vec<ObjectId> {
        let mut tree = vec![job];
        let mut i = 0;
        while i < tree.len() {
            if let Some(j) = self.job(tree[i]) {
                tree.extend(j.children.iter().copied());
            }
            i += 1;
        }
        tree
    }

    /// The running members of `job` and of the jobs nested in it.
    fn job_members(&self, job: ObjectId) -> Vec<RecordId> {
        self.job_tree(job)
            .iter()
            .filter_map(|&j| self.job(j))
            .flat_map(|j| j.members.iter().copied())
            .collect()
    }

    /// The job behind client `id`'s `handle`, if the handle has `rights`.
    fn job_handle(
        &mut self,
        id: ClientId,
        handle: Handle,
        rights: u32,
    ) -> Result<ObjectId, Failure> {
        let entry = *self
            .client(id)
            .handles
            .get(handle)
            .ok_or_else(|| not_open(handle))?;
        if self.job(entry.object).is_none() {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!("handle {:#x} is not a job", handle.0),
            ));
        }
        if !entry.access.contains(rights) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!("job handle {:#x} lacks access {rights:#x}", handle.0),
            ));
        }
        Ok(entry.object)
    }

    /// `CreateJobObject`.
    pub(super) fn create_job(
        &mut self,
        id: ClientId,
        name: &str,
        access: u32,
        inherit: bool,
        sddl: &str,
    ) -> Result<Outcome, Failure> {
        let resolved = self.resolve_name(id, name)?;
        let shared_name = resolved.global || resolved.namespace.is_some();
        let path = resolved.path;
        if let Some(existing) = self.existing(path.as_deref(), ObjectType::Job)? {
            let access = self.check_access(id, existing, access)?;
            return self.grant(id, existing, access, inherit, true);
        }
        let access = ObjectType::Job.map_generic(access);
        self.check_create_global(id, resolved.global, name)?;
        self.check_namespace_create(id, resolved.namespace)?;
        let security = self.security_for_new(id, sddl)?;
        self.check_quota(id, Charge::sync_object())?;
        let state = self.new_state(id, shared_name, |arena| {
            arena.allocate_exit(Kind::Job, 0, None)
        })?;
        let body = Body::Job {
            slot: state.slot,
            job: Box::default(),
        };
        let oid = self.insert_state_object(id, ObjectType::Job, path, body, security, state);
        self.grant(id, oid, access, inherit, false)
    }

    /// Serves [`Request::JobControl`].
    pub(super) fn job_control(
        &mut self,
        id: ClientId,
        op: JobOp,
        job: Handle,
        process: Handle,
        values: &[u64],
    ) -> Result<Outcome, Failure> {
        let numbers = |v: Vec<u64>| Ok(Outcome::reply(Reply::Numbers(v)));
        match op {
            JobOp::Assign => {
                let job = self.job_handle(id, job, JOB_OBJECT_ASSIGN_PROCESS)?;
                let record = self.process_for_job(id, process)?;
                self.assign(job, record)?;
                numbers(Vec::new())
            }
            JobOp::Terminate => {
                let job = self.job_handle(id, job, JOB_OBJECT_TERMINATE)?;
                let code = values.first().map_or(0, |&c| c as u32);
                self.terminate_job(job, code, true);
                numbers(Vec::new())
            }
            JobOp::SetLimits => {
                let job = self.job_handle(id, job, JOB_OBJECT_SET_ATTRIBUTES)?;
                let class = values.first().map_or(0, |&c| c as u32);
                let limits = JobLimits::from_values(values.get(1..).unwrap_or_default())
                    .ok_or_else(|| Failure::new(ERROR_INVALID_PARAMETER, "job limits"))?;
                self.set_limits(job, class, limits)?;
                numbers(Vec::new())
            }
            JobOp::SetEndOfJob => {
                self.job_handle(id, job, JOB_OBJECT_SET_ATTRIBUTES)?;
                match values.first().map(|&v| v as u32) {
                    Some(JOB_OBJECT_TERMINATE_AT_END_OF_JOB) => numbers(Vec::new()),
                    Some(JOB_OBJECT_POST_AT_END_OF_JOB) => Err(Failure::new(
                        ERROR_NOT_SUPPORTED,
                        "JOB_OBJECT_POST_AT_END_OF_JOB needs a completion port, which objmgr does not have",
                    )),
                    _ => Err(Failure::new(ERROR_INVALID_PARAMETER, "EndOfJobTimeAction")),
                }
            }
            JobOp::QueryLimits => {
                let job = self.job_handle(id, job, JOB_OBJECT_QUERY)?;
                let accounting = self.accounting(job);
                let mut values = self.job(job).expect("a job").limits.to_values();
                values.extend([accounting.peak_process_memory, accounting.peak_job_memory]);
                numbers(values)
            }
            JobOp::QueryAccounting => {
                let job = self.job_handle(id, job, JOB_OBJECT_QUERY)?;
                numbers(self.accounting(job).to_values())
            }
            JobOp::QueryProcessIds => {
                let job = self.job_handle(id, job, JOB_OBJECT_QUERY)?;
                let pids: Vec<u64> = self
                    .job_members(job)
                    .iter()
                    .filter_map(|r| self.processes.get(r))
                    .map(|r| u64::from(r.pid))
                    .collect();
                let mut values = vec![pids.len() as u64];
                values.extend(pids.into_iter().take(MAX_PROCESS_IDS));
                numbers(values)
            }
            JobOp::Contains => {
                // IsProcessInJob needs PROCESS_QUERY_(LIMITED_)INFORMATION
                // on the process and JOB_OBJECT_QUERY on the job.
                let record = if process == CURRENT_PROCESS {
                    let pid = self.clients[&id].pid;
                    self.live_pids.get(&pid).copied()
                } else {
                    Some(self.process_record(id, process, 0)?)
                };
                let within = if job.0 == 0 {
                    None
                } else {
                    Some(self.job_handle(id, job, JOB_OBJECT_QUERY)?)
                };
                let innermost = record
                    .and_then(|r| self.processes.get(&r))
                    .and_then(|r| r.job);
                let inside = match (innermost, within) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(own), Some(job)) => self.job_chain(own).contains(&job),
                };
                numbers(vec![u64::from(inside)])
            }
        }
    }

    /// The record of the process a job operation names (assignable: the
    /// handle needs `PROCESS_SET_QUOTA | PROCESS_TERMINATE`).
    fn process_for_job(&mut self, id: ClientId, process: Handle) -> Result<RecordId, Failure> {
        let record = if process == CURRENT_PROCESS {
            self.own_record(id)?
        } else {
            self.process_record(id, process, PROCESS_SET_QUOTA | PROCESS_TERMINATE)?
        };
        // The broker (root, on the system broker) sets the limits and may
        // kill: never for a process running with privileges the caller
        // does not have (a set-uid program it started, say).
        let caller = self.clients[&id].uid;
        if self.system && caller != 0 {
            let pid = self.processes.get(&record).map_or(0, |r| r.pid);
            let same = super::process::proc_all_uids(pid)
                .is_some_and(|uids| uids.iter().all(|&u| u == caller));
            if !same {
                return Err(Failure::new(
                    ERROR_ACCESS_DENIED,
                    format!("process {pid} runs with another user's privileges"),
                ));
            }
        }
        Ok(record)
    }

    /// `AssignProcessToJobObject`.
    fn assign(&mut self, job: ObjectId, record: RecordId) -> Result<(), Failure> {
        let rec = &self.processes[&record];
        if rec.exit.is_some() {
            return Err(Failure::new(ERROR_ACCESS_DENIED, "the process has exited"));
        }
        if let Some(current) = rec.job {
            // In a job already: the new one must be in its chain (nothing
            // changes) or empty and free, and then nests in the current.
            if self.job_chain(current).contains(&job) {
                return Ok(());
            }
            if self.job_chain(current).len() >= MAX_JOB_DEPTH {
                return Err(Failure::new(
                    ERROR_NOT_ENOUGH_QUOTA,
                    format!("jobs nest {MAX_JOB_DEPTH} deep at most"),
                ));
            }
            let target = self.job(job).expect("a job");
            if target.parent.is_some()
                || !target.children.is_empty()
                || !target.members.is_empty()
                || self.job_tree(job).contains(&current)
            {
                return Err(Failure::new(
                    ERROR_ACCESS_DENIED,
                    "the process is in another job, and this one is neither in its chain nor empty",
                ));
            }
            self.job_mut(job).expect("a job").parent = Some(current);
            self.job_mut(current).expect("a job").children.push(job);
            self.job_mut(current)
                .expect("a job")
                .members
                .retain(|&m| m != record);
            self.job_mut(job).expect("a job").members.push(record);
            self.job_mut(job).expect("a job").total_processes += 1;
            self.record(record).job = Some(job);
            return self.apply_process_limits(record);
        }
        let outcome = self.join_checked(job, record);
        if outcome.is_err() {
            self.leave(record);
        }
        outcome
    }

    /// Joins `record` to `job` if there is room, with its memory limit.
    fn join_checked(&mut self, job: ObjectId, record: RecordId) -> Result<(), Failure> {
        if let Err(failure) = self.check_room(job) {
            // As on Windows: the process that would break the limit ends.
            let _ = self.kill_member(record, ERROR_NOT_ENOUGH_QUOTA.0);
            return Err(failure);
        }
        self.join(job, record);
        self.apply_process_limits(record)
    }

    /// Takes `record` out of its job (an assignment that failed half way).
    fn leave(&mut self, record: RecordId) {
        let Some(job) = self.processes.get_mut(&record).and_then(|r| r.job.take()) else {
            return;
        };
        if let Some(j) = self.job_mut(job) {
            j.members.retain(|&m| m != record);
        }
    }

    /// The job a process that client `id` starts joins: the creator's, as
    /// on Windows, unless it breaks away (`CREATE_BREAKAWAY_FROM_JOB` in
    /// `flags`, which every job of the chain must allow, else
    /// `ERROR_ACCESS_DENIED`; or silently, where a job says so).
    pub(super) fn job_for_child(
        &self,
        id: ClientId,
        flags: u32,
    ) -> Result<Option<ObjectId>, Failure> {
        let pid = self.clients[&id].pid;
        let Some(job) = self
            .live_pids
            .get(&pid)
            .and_then(|r| self.processes.get(r))
            .and_then(|r| r.job)
        else {
            return Ok(None);
        };
        // A child leaves, from the innermost job out, the jobs that let it
        // go, and stays in the first that does not (so a member cannot
        // free its children from an outer job by nesting one of its own).
        let allows =
            |j: ObjectId, flag: u32| self.job(j).is_some_and(|j| j.limits.flags & flag != 0);
        let chain = self.job_chain(job);
        let first_keeping = |flag: u32| chain.iter().copied().find(|&j| !allows(j, flag));
        if flags & CREATE_BREAKAWAY_FROM_JOB != 0 {
            if !allows(job, JOB_OBJECT_LIMIT_BREAKAWAY_OK) {
                return Err(Failure::new(
                    ERROR_ACCESS_DENIED,
                    "CREATE_BREAKAWAY_FROM_JOB: the job does not allow breakaway (JOB_OBJECT_LIMIT_BREAKAWAY_OK)",
                ));
            }
            return Ok(first_keeping(JOB_OBJECT_LIMIT_BREAKAWAY_OK));
        }
        Ok(first_keeping(JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK))
    }

    /// Checks that one more process may join `job` (its chain's active
    /// process limits).
    pub(super) fn check_room(&self, job: ObjectId) -> Result<(), Failure> {
        for j in self.job_chain(job) {
            let limits = self.job(j).expect("a job").limits;
            if limits.flags & JOB_OBJECT_LIMIT_ACTIVE_PROCESS != 0
                && self.job_members(j).len() as u64 >= u64::from(limits.active_process_limit)
            {
                return Err(Failure::new(
                    ERROR_NOT_ENOUGH_QUOTA,
                    format!(
                        "the job's limit of {} active processes is reached",
                        limits.active_process_limit
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Makes `record` a member of `job`.
    pub(super) fn join(&mut self, job: ObjectId, record: RecordId) {
        for j in self.job_chain(job) {
            self.job_mut(j).expect("a job").total_processes += 1;
        }
        self.job_mut(job).expect("a job").members.push(record);
        self.record(record).job = Some(job);
    }

    /// The private-memory limit (bytes) a member of `job` gets: the least
    /// of its chain's, if any.
    pub(super) fn process_memory_limit(&self, job: ObjectId) -> Option<u64> {
        self.job_chain(job)
            .iter()
            .filter_map(|&j| self.job(j))
            .filter(|j| j.limits.flags & JOB_OBJECT_LIMIT_PROCESS_MEMORY != 0)
            .map(|j| j.limits.process_memory)
            .min()
    }

    /// Puts a member's memory limit in force (`RLIMIT_DATA`).
    fn apply_process_limits(&mut self, record: RecordId) -> Result<(), Failure> {
        let Some(rec) = self.processes.get(&record).filter(|r| r.alive()) else {
            return Ok(());
        };
        let Some(limit) = rec.job.and_then(|j| self.process_memory_limit(j)) else {
            return Ok(());
        };
        let pid = rec.pid;
        // Lowered, never raised past what the process may already have.
        let limit = super::process::data_hard_limit(pid).map_or(limit, |hard| hard.min(limit));
        let new = rustix::process::Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        };
        match rustix::process::prlimit(
            rustix::process::Pid::from_raw(pid as i32),
            rustix::process::Resource::Data,
            new,
        ) {
            // Gone meanwhile: its exit is on its way.
            Ok(_) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(Failure::new(
                crate::errno(e),
                format!("setting process {pid}'s memory limit"),
            )),
        }
    }

    /// `SetInformationJobObject` with a limit class.
    fn set_limits(
        &mut self,
        job: ObjectId,
        class: u32,
        mut limits: JobLimits,
    ) -> Result<(), Failure> {
        if class != JOB_OBJECT_BASIC_LIMIT_INFORMATION
            && class != JOB_OBJECT_EXTENDED_LIMIT_INFORMATION
        {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("job information class {class}"),
            ));
        }
        limits
            .validate(class)
            .map_err(|(code, why)| Failure::new(code, why))?;
        let before = self.job(job).expect("a job").limits;
        if class == JOB_OBJECT_BASIC_LIMIT_INFORMATION {
            // The basic class leaves the extended limits as they were.
            limits.flags |= before.flags & !JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS;
            limits.process_memory = before.process_memory;
            limits.job_memory = before.job_memory;
        }
        let preserve = limits.flags & JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME != 0;
        if preserve {
            limits.flags = (limits.flags & !JOB_OBJECT_LIMIT_JOB_TIME)
                | (before.flags & JOB_OBJECT_LIMIT_JOB_TIME);
            limits.per_job_user_time = before.per_job_user_time;
        } else if limits.flags & JOB_OBJECT_LIMIT_JOB_TIME != 0 {
            // The limit counts from the members' time now.
            let now = self.accounting(job).total_user_time;
            self.job_mut(job).expect("a job").job_time_base = now;
        }
        limits.flags &= !JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME;
        self.job_mut(job).expect("a job").limits = limits;
        for record in self.job_members(job) {
            if let Err(failure) = self.apply_process_limits(record) {
                self.job_mut(job).expect("a job").limits = before;
                return Err(failure);
            }
        }
        self.note_time_limits(job);
        Ok(())
    }

    /// What `job` (with its nested jobs) used: members that exited, and
    /// the running ones as `/proc` says now. Peaks are updated on the way.
    fn accounting(&mut self, job: ObjectId) -> JobAccounting {
        let tree = self.job_tree(job);
        let mut used = ProcessStats::default();
        let (mut total, mut terminated) = (0u32, 0u32);
        for &j in &tree {
            let j = self.job(j).expect("a job");
            used.add(&j.exited);
            terminated += j.terminated_by_limit;
        }
        total += self.job(job).expect("a job").total_processes;
        let members = self.job_members(job);
        let mut job_memory = 0u64;
        let mut peak_process = 0u64;
        for record in &members {
            if let Some(stats) = self.live_stats(*record) {
                used.add(&stats);
                job_memory += stats.private_memory;
                peak_process = peak_process.max(stats.peak_private_memory);
            }
        }
        let own = self.job_mut(job).expect("a job");
        own.peak_process_memory = own.peak_process_memory.max(peak_process);
        own.peak_job_memory = own.peak_job_memory.max(job_memory);
        JobAccounting {
            total_user_time: used.user_time,
            total_kernel_time: used.kernel_time,
            this_period_user_time: used.user_time,
            this_period_kernel_time: used.kernel_time,
            page_faults: u32::try_from(used.page_faults).unwrap_or(u32::MAX),
            total_processes: total,
            active_processes: members.len() as u32,
            terminated_processes: terminated,
            peak_process_memory: own.peak_process_memory,
            peak_job_memory: own.peak_job_memory,
        }
    }

    /// Ends every member of `job` and of its nested jobs with `code`;
    /// `signal`: the jobs become signaled (`TerminateJobObject`).
    pub(super) fn terminate_job(&mut self, job: ObjectId, code: u32, signal: bool) {
        for record in self.job_members(job) {
            let _ = self.kill_member(record, code);
        }
        if signal {
            for j in self.job_tree(job) {
                if let Some(object) = self.objects.get(&j)
                    && let Some((slot, _)) = object.body.sync_slot()
                    && let Some(arena) = self.arena_of(j)
                {
                    arena.mark_exited(slot, code);
                }
            }
        }
    }

    /// Ends a member with `code`: a process the broker started with its
    /// process group (the processes it forked), another alone.
    pub(super) fn kill_member(&mut self, record: RecordId, code: u32) -> bool {
        let Some(rec) = self.processes.get_mut(&record) else {
            return false;
        };
        if rec.exit.is_some() || rec.terminate_code.is_some() {
            return false;
        }
        rec.terminate_code = Some(code);
        let pid = rec.pid;
        if rec.child
            && let Some(group) = rustix::process::Pid::from_raw(pid as i32)
        {
            // Started by the broker in a process group of its own.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        if let Some(fd) = &rec.pidfd {
            let _ = rustix::process::pidfd_send_signal(&**fd, rustix::process::Signal::KILL);
        }
        true
    }

    /// A member exited: it leaves its job, which keeps what it used.
    pub(super) fn member_exited(&mut self, record: RecordId, used: Option<ProcessStats>) {
        let Some(job) = self.processes.get(&record).and_then(|r| r.job) else {
            return;
        };
        let Some(j) = self.job_mut(job) else {
            return;
        };
        j.members.retain(|&m| m != record);
        if let Some(used) = used {
            j.exited.add(&used);
        }
        self.destroy_closed_jobs(job);
    }

    /// The last handle to `job` closed: with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`
    /// its members are killed; the job lives on, nameless, while it has
    /// members. Returns whether it may go now.
    pub(super) fn job_closed(&mut self, job: ObjectId) -> bool {
        let Some(j) = self.job_mut(job) else {
            return true;
        };
        j.closed = true;
        if j.limits.flags & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE != 0 {
            self.terminate_job(job, 0, false);
        }
        self.job_members(job).is_empty() && self.job(job).is_some_and(|j| j.children.is_empty())
    }

    /// Destroys closed jobs in `job`'s chain that have nothing left.
    pub(super) fn destroy_closed_jobs(&mut self, job: ObjectId) {
        for j in self.job_chain(job) {
            let Some(state) = self.job(j) else {
                continue;
            };
            if state.closed && state.members.is_empty() && state.children.is_empty() {
                self.forget_job(j);
                if let Some(object) = self.objects.get_mut(&j) {
                    // `release` destroys it (its count is 0 already).
                    object.handle_count = 1;
                }
                self.release(j);
            }
        }
    }

    /// Keeps [`Broker::timed_jobs`] true for `job`.
    fn note_time_limits(&mut self, job: ObjectId) {
        let timed = self.job(job).is_some_and(|j| {
            j.limits.flags & (JOB_OBJECT_LIMIT_PROCESS_TIME | JOB_OBJECT_LIMIT_JOB_TIME) != 0
        });
        if timed {
            self.timed_jobs.insert(job);
        } else {
            self.timed_jobs.remove(&job);
        }
    }

    /// The job a destroyed job was nested in (it may have nothing left).
    pub(super) fn job_parent(&self, job: ObjectId) -> Option<ObjectId> {
        self.job(job).and_then(|j| j.parent)
    }

    /// What a running member used so far (`None` once it exited, even if
    /// the broker has not handled the exit yet: its pid may be reused).
    fn live_stats(&self, record: RecordId) -> Option<ProcessStats> {
        self.processes
            .get(&record)
            .filter(|r| r.alive())
            .and_then(|r| process_stats(r.pid))
    }

    /// A job object is destroyed: it leaves its parent, and its members
    /// (none, unless it is the broker shutting down) leave it.
    pub(super) fn forget_job(&mut self, job: ObjectId) {
        self.timed_jobs.remove(&job);
        let Some(state) = self.job(job) else {
            return;
        };
        let (parent, members) = (state.parent, state.members.clone());
        // What it counted stays counted in the job it was nested in.
        let (exited, terminated) = (state.exited, state.terminated_by_limit);
        if let Some(p) = parent.and_then(|p| self.job_mut(p)) {
            p.exited.add(&exited);
            p.terminated_by_limit += terminated;
        }
        for record in members {
            if let Some(rec) = self.processes.get_mut(&record) {
                rec.job = None;
            }
        }
        if let Some(parent) = parent
            && let Some(p) = self.job_mut(parent)
        {
            p.children.retain(|&c| c != job);
        }
    }

    /// When the broker should next look at its members' user time (a job
    /// has a time limit), if ever.
    pub fn job_check_due(&self) -> bool {
        self.timed_jobs
            .iter()
            .any(|&job| !self.job_members(job).is_empty())
    }

    /// Ends members past their job's user-time limits: a process past the
    /// per-process limit alone, every member of a job past its job limit
    /// (which then is signaled and its limit spent), with exit code
    /// `ERROR_NOT_ENOUGH_QUOTA`, as on Windows.
    pub fn check_job_times(&mut self) {
        let jobs: Vec<ObjectId> = self.timed_jobs.iter().copied().collect();
        for job in jobs {
            let Some(limits) = self.job(job).map(|j| j.limits) else {
                continue;
            };
            if limits.flags & JOB_OBJECT_LIMIT_PROCESS_TIME != 0 {
                for record in self.job_members(job) {
                    let over = self
                        .live_stats(record)
                        .is_some_and(|s| s.user_time > limits.per_process_user_time);
                    if over && self.kill_member(record, ERROR_NOT_ENOUGH_QUOTA.0) {
                        self.job_mut(job).expect("a job").terminated_by_limit += 1;
                    }
                }
            }
            if limits.flags & JOB_OBJECT_LIMIT_JOB_TIME != 0 {
                let used = self.accounting(job).total_user_time;
                let base = self.job(job).expect("a job").job_time_base;
                if used.saturating_sub(base) > limits.per_job_user_time {
                    let ended = self
                        .job_members(job)
                        .into_iter()
                        .filter(|&r| self.kill_member(r, ERROR_NOT_ENOUGH_QUOTA.0))
                        .count() as u32;
                    self.terminate_job(job, ERROR_NOT_ENOUGH_QUOTA.0, true);
                    let j = self.job_mut(job).expect("a job");
                    j.terminated_by_limit += ended;
                    j.limits.flags &= !JOB_OBJECT_LIMIT_JOB_TIME;
                    self.note_time_limits(job);
                }
            }
        }
    }

    /// What `objmgr stat` shows about a job.
    pub(super) fn job_properties(&self, job: ObjectId) -> Vec<(String, String)> {
        let Some(j) = self.job(job) else {
            return Vec::new();
        };
        let members = self.job_members(job);
        let pids: Vec<String> = members
            .iter()
            .filter_map(|r| self.processes.get(r))
            .map(|r| r.pid.to_string())
            .collect();
        let mut props = vec![
            ("processes".to_owned(), members.len().to_string()),
            ("members".to_owned(), pids.join(" ")),
            ("total_processes".to_owned(), j.total_processes.to_string()),
        ];
        let flags: Vec<&str> = LIMIT_NAMES
            .iter()
            .filter(|(bit, _)| j.limits.flags & bit != 0)
            .map(|&(_, name)| name)
            .collect();
        props.push((
            "limits".to_owned(),
            if flags.is_empty() {
                "none".to_owned()
            } else {
                flags.join(" ")
            },
        ));
        let l = &j.limits;
        if l.flags & JOB_OBJECT_LIMIT_ACTIVE_PROCESS != 0 {
            props.push((
                "active_process_limit".into(),
                l.active_process_limit.to_string(),
            ));
        }
        if l.flags & JOB_OBJECT_LIMIT_PROCESS_MEMORY != 0 {
            props.push(("process_memory_limit".into(), l.process_memory.to_string()));
        }
        if l.flags & JOB_OBJECT_LIMIT_PROCESS_TIME != 0 {
            props.push((
                "process_time_limit_ms".into(),
                (l.per_process_user_time / 10_000).to_string(),
            ));
        }
        if l.flags & JOB_OBJECT_LIMIT_JOB_TIME != 0 {
            props.push((
                "job_time_limit_ms".into(),
                (l.per_job_user_time / 10_000).to_string(),
            ));
        }
        if let Some(parent) = j.parent {
            let name = self.objects.get(&parent).and_then(|o| o.path.clone());
            props.push((
                "nested_in".into(),
                name.unwrap_or_else(|| "(unnamed)".into()),
            ));
        }
        props
    }
}
