//! Handles across processes: spawning with handle inheritance, process and
//! thread objects, `DuplicateHandle`, handle flags, and the listings behind
//! `objmgr ps` and `objmgr handles`.
//!
//! A process spawned through objmgr is the broker's own child, so the broker
//! can reap it and report its exit code, as Windows does for any process.
//! Every process the broker cares about is watched through a pidfd (the
//! server loop polls them); its exit signals the process object and the
//! main thread object, and releases handles it was given but never claimed.
//! A spawned child finds the handles it inherited in a *pending* table that
//! it claims when it connects (by pid): the values are the parent's.

use crate::errno;
use std::os::fd::AsFd;

use objmgr_proto::access::{
    PROCESS_ALL_ACCESS, PROCESS_DUP_HANDLE, PROCESS_TERMINATE, THREAD_ALL_ACCESS,
};
use objmgr_proto::process::{
    CREATE_SUSPENDED, DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS, HANDLE_FLAG_INHERIT,
    HANDLE_FLAG_PROTECT_FROM_CLOSE, HANDLE_FLAGS, signal_exit_code,
};
use objmgr_proto::wire::{CURRENT_PROCESS, HandleInfo, ProcessEntry};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

use super::*;

/// Identifies a watched process for the broker's lifetime (pids are reused).
pub type RecordId = u64;

/// A pidfd the server loop must poll: readable when the process of
/// `record` exits.
#[derive(Debug)]
pub struct PidWatch {
    pub record: RecordId,
    pub fd: Rc<OwnedFd>,
}

/// What the broker knows about one process it watches.
#[derive(Debug)]
pub(super) struct ProcessRecord {
    pub(super) pid: u32,
    /// Until the exit is seen.
    pub(super) pidfd: Option<Rc<OwnedFd>>,
    /// Spawned by the broker, which reaps it.
    pub(super) child: bool,
    pub(super) exit: Option<u32>,
    /// The code `TerminateProcess` asked for.
    pub(super) terminate_code: Option<u32>,
    /// The innermost job it is a member of, while it runs.
    pub(super) job: Option<ObjectId>,
    /// The process object, while handles refer to it.
    object: Option<ObjectId>,
    /// A spawned child's main thread object, while handles refer to it.
    main_thread: Option<ObjectId>,
}

impl ProcessRecord {
    pub(super) fn running_child(&self) -> bool {
        self.child && self.exit.is_none()
    }

    /// Still running: no exit seen, and its pidfd does not say it ended
    /// (so that its pid is not yet anybody else's).
    pub(super) fn alive(&self) -> bool {
        self.exit.is_none() && self.pidfd.as_deref().is_some_and(|fd| !exited_already(fd))
    }
}

/// A process's handle table: a connected client's, or one waiting for the
/// process to connect.
#[derive(Clone, Copy, Debug)]
enum Holder {
    Client(ClientId),
    Pending(u32),
}

/// A process's `/proc/<pid>/stat`, read once, for its fields.
#[derive(Debug)]
pub struct ProcStat(String);

impl ProcStat {
    pub fn read(pid: u32) -> Option<ProcStat> {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .map(ProcStat)
    }

    /// Field `n`, numbered as in proc(5), from 3 (the state) on: those
    /// after the command name, which may hold spaces and parentheses.
    pub fn field(&self, n: usize) -> Option<&str> {
        self.0
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(n.checked_sub(3)?)
    }
}

/// The exit status of a process that is a zombie (exited, not yet reaped by
/// its parent), from `/proc/PID/stat`; `None` once it is gone.
fn zombie_exit_code(pid: u32) -> Option<u32> {
    let status: i32 = ProcStat::read(pid)?.field(52)?.parse().ok()?;
    Some(if status & 0x7f == 0 {
        ((status >> 8) & 0xff) as u32
    } else {
        signal_exit_code(status & 0x7f)
    })
}

/// Whether a pidfd says its process has exited (readable), without waiting.
fn exited_already(fd: &OwnedFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// What a process used, from `/proc/PID/stat` and `/proc/PID/status`
/// (times in 100 ns units, memory in bytes); readable for a zombie too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ProcessStats {
    pub user_time: u64,
    pub kernel_time: u64,
    pub page_faults: u64,
    /// Private writable memory now (`VmData`: what `RLIMIT_DATA` counts).
    pub private_memory: u64,
    /// The most it had (`VmPeak` bounds it; `VmData` at its largest is not
    /// kept by Linux, so the larger of now and the resident peak).
    pub peak_private_memory: u64,
}

impl ProcessStats {
    pub fn add(&mut self, other: &ProcessStats) {
        self.user_time += other.user_time;
        self.kernel_time += other.kernel_time;
        self.page_faults += other.page_faults;
    }
}

pub(super) fn process_stats(pid: u32) -> Option<ProcessStats> {
    let stat = ProcStat::read(pid)?;
    // minflt 10, majflt 12, utime 14, stime 15 (clock ticks).
    let field = |n: usize| stat.field(n).and_then(|v| v.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let to_100ns = |t: u64| t.saturating_mul(10_000_000) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    // Its own time, and that of the children it reaped (a member's plain
    // fork children count for its job).
    let user = field(14)? + field(16).unwrap_or(0);
    let kernel = field(15)? + field(17).unwrap_or(0);
    let kib = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let private = kib("VmData:");
    Some(ProcessStats {
        user_time: to_100ns(user),
        kernel_time: to_100ns(kernel),
        page_faults: field(10)? + field(12)?,
        private_memory: private,
        peak_private_memory: private.max(kib("VmHWM:")),
    })
}

/// The real, effective, saved and file-system uids of process `pid`.
pub(super) fn proc_all_uids(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let uids: Vec<u32> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    (uids.len() == 4).then_some(uids)
}

/// Process `pid`'s hard `RLIMIT_DATA` (`None`: unlimited or unknown).
pub(super) fn data_hard_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max data size"))?;
    let hard = line
        .strip_prefix("Max data size")?
        .split_whitespace()
        .nth(1)?;
    hard.parse().ok()
}

/// The real uid of process `pid`, from `/proc/PID/status`.
fn process_uid(pid: u32) -> Option<u32> {
    proc_ids(pid).map(|ids| ids.uid)
}

/// Who process `pid` is, from `/proc/<pid>/status`: real uid and gid and
/// supplementary groups (`None` if it cannot be read).
#[derive(Debug)]
pub(crate) struct ProcIds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

pub(crate) fn proc_ids(pid: u32) -> Option<ProcIds> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<Vec<u32>> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(
            line[name.len()..]
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect(),
        )
    };
    Some(ProcIds {
        uid: *field("Uid:")?.first()?,
        gid: *field("Gid:")?.first()?,
        groups: field("Groups:").unwrap_or_default(),
    })
}

/// The file-descriptor limit the broker started with: children get it back
/// (the broker raises its own as far as it may, which slows programs that
/// walk every possible descriptor).
pub static ORIGINAL_NOFILE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

impl Broker {
    /// Pidfds to register with the event loop (taken once).
    pub fn take_watches(&mut self) -> Vec<PidWatch> {
        std::mem::take(&mut self.new_watches)
    }

    /// Gives back a watch the event loop could not register, to try again
    /// on its next turn ([`Broker::has_watches`] keeps that turn coming).
    pub fn retry_watch(&mut self, watch: PidWatch) {
        self.new_watches.push(watch);
    }

    /// Whether watches wait to be registered.
    pub fn has_watches(&self) -> bool {
        !self.new_watches.is_empty()
    }

    /// The arena, created with the first object that lives in it.
    /// The arena of security domain `domain`, made on first need.
    pub(super) fn arena_mut(&mut self, domain: u32) -> Result<&mut SyncArena, Failure> {
        match self.sync.entry(domain) {
            std::collections::hash_map::Entry::Occupied(arena) => Ok(arena.into_mut()),
            std::collections::hash_map::Entry::Vacant(slot) => Ok(slot.insert(SyncArena::new()?)),
        }
    }

    /// The security domain of process `pid`'s own process object: its real
    /// uid on the system broker, the one domain of a per-user broker.
    pub(super) fn domain_of_pid(&self, pid: u32) -> u32 {
        if !self.system {
            return self.own_uid;
        }
        process_uid(pid).unwrap_or(self.own_uid)
    }

    /// The security domain of what client `id` creates: its uid on the
    /// system broker, the one domain of a per-user broker.
    pub(super) fn domain_of(&self, id: ClientId) -> u32 {
        if self.system {
            self.clients[&id].uid
        } else {
            self.own_uid
        }
    }

    pub(super) fn record(&mut self, record: RecordId) -> &mut ProcessRecord {
        self.processes.get_mut(&record).expect("live record")
    }

    /// The record of the running process `pid`, watched from now on if it
    /// was not. Fails for a process that does not exist
    /// (`ERROR_INVALID_PARAMETER`, as `OpenProcess` does).
    fn watch(&mut self, pid: u32, child: bool) -> Result<RecordId, Failure> {
        if let Some(&known) = self.live_pids.get(&pid) {
            let record = &self.processes[&known];
            let gone = record.pidfd.as_deref().is_none_or(exited_already);
            if !gone && !child {
                return Ok(known);
            }
            // That process is gone (its exit not handled yet): settle it,
            // and a new record for the process that has its pid now.
            self.process_exited(known);
            self.live_pids.remove(&pid);
        }
        let no_such = || Failure::new(ERROR_INVALID_PARAMETER, format!("no process with id {pid}"));
        // Pids are positive i32s; anything else names no process (and must
        // not reach rustix, which asserts on negative pids).
        let raw = i32::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .and_then(Pid::from_raw)
            .ok_or_else(no_such)?;
        let fd = match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
            Ok(fd) => Rc::new(fd),
            Err(rustix::io::Errno::SRCH) => {
                // Gone, but its process object may live on (someone holds a
                // handle): opening it then gives that exited process, as on
                // Windows.
                let exited = self
                    .processes
                    .iter()
                    .find(|(_, r)| r.pid == pid && r.exit.is_some() && r.object.is_some())
                    .map(|(&id, _)| id);
                return exited.filter(|_| !child).ok_or_else(no_such);
            }
            Err(e) => return Err(Failure::new(errno(e), format!("watching process {pid}"))),
        };
        let id = self.next_record;
        self.next_record += 1;
        self.new_watches.push(PidWatch {
            record: id,
            fd: fd.clone(),
        });
        self.processes.insert(
            id,
            ProcessRecord {
                pid,
                pidfd: Some(fd),
                child,
                exit: None,
                terminate_code: None,
                job: None,
                object: None,
                main_thread: None,
            },
        );
        self.live_pids.insert(pid, id);
        Ok(id)
    }

    /// The process of `record` exited (its pidfd became readable): record
    /// the exit code, signal its process and main-thread objects, reap it if
    /// it is ours, and release the handles it never claimed.
    pub fn process_exited(&mut self, record: RecordId) {
        let Some(rec) = self.processes.get_mut(&record) else {
            return; // A stale event of a record gone already.
        };
        let Some(fd) = rec.pidfd.take() else {
            return;
        };
        let pid = rec.pid;
        // What it used, read while it is still a zombie.
        let used = rec.job.and_then(|_| process_stats(pid));
        let observed = if rec.child {
            match rustix::process::waitid(
                WaitId::PidFd(fd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(status)) => match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => Some(code as u32),
                    (None, Some(signal)) => Some(signal_exit_code(signal)),
                    (None, None) => None,
                },
                Ok(None) => {
                    // Not exited after all (a stale wake-up): keep watching.
                    rec.pidfd = Some(fd);
                    return;
                }
                Err(_) => None,
            }
        } else {
            zombie_exit_code(pid)
        };
        // TerminateProcess's code counts only if the kill is what ended it.
        let killed = observed.is_none_or(|c| c == signal_exit_code(9));
        let code = match rec.terminate_code {
            Some(asked) if killed => asked,
            _ => observed.unwrap_or(0),
        };
        rec.exit = Some(code);
        // The thread first: whoever the process's exit wakes must find the
        // main thread ended too.
        let objects = [rec.main_thread, rec.object];
        if self.live_pids.get(&pid) == Some(&record) {
            self.live_pids.remove(&pid);
        }
        for oid in objects.into_iter().flatten() {
            if let Some(object) = self.objects.get(&oid)
                && let (Some((slot, _)), Some(sync)) =
                    (object.body.sync_slot(), self.sync.get(&object.domain))
            {
                sync.mark_exited(slot, code);
            }
        }
        // It leaves its job first: releasing its handles below may forget
        // its record.
        self.member_exited(record, used);
        if let Some(rec) = self.processes.get_mut(&record) {
            rec.job = None;
        }
        if self.processes[&record].child
            && let Some(mut table) = self.pending.remove(&pid)
        {
            let entries: Vec<HandleEntry> = table.drain().collect();
            for entry in entries {
                self.release(entry.object);
            }
        }
        self.forget_if_unused(record);
    }

    /// Drops a record nobody needs to hear about any more.
    fn forget_if_unused(&mut self, record: RecordId) {
        let Some(rec) = self.processes.get(&record) else {
            return;
        };
        let pending = rec.exit.is_none() && self.pending.contains_key(&rec.pid);
        // A member stays known until it has left its job.
        let member = rec.job.is_some();
        if rec.object.is_none()
            && rec.main_thread.is_none()
            && !rec.running_child()
            && !pending
            && !member
        {
            let pid = rec.pid;
            self.processes.remove(&record);
            if self.live_pids.get(&pid) == Some(&record) {
                self.live_pids.remove(&pid);
            }
        }
    }

    /// Destroys an object made for a handle that could not be given.
    pub(super) fn destroy_if_unreferenced(&mut self, oid: ObjectId) {
        if let Some(object) = self.objects.get_mut(&oid)
            && object.handle_count == 0
        {
            object.handle_count = 1;
            self.release(oid);
        }
    }

    /// The last handle to a process object closed.
    pub(super) fn process_object_gone(&mut self, record: RecordId) {
        if let Some(rec) = self.processes.get_mut(&record) {
            rec.object = None;
        }
        self.forget_if_unused(record);
    }

    /// The last handle to a main-thread object closed.
    pub(super) fn main_thread_gone(&mut self, record: RecordId) {
        if let Some(rec) = self.processes.get_mut(&record) {
            rec.main_thread = None;
        }
        self.forget_if_unused(record);
    }

    /// Threads started by the process with `tag` end with it.
    pub(super) fn end_threads_of(&mut self, tag: u16, pid: u32) {
        // The process's newest record (its exit may be known already, or
        // just not handled yet).
        let newest = self
            .processes
            .iter()
            .filter(|(_, r)| r.pid == pid)
            .map(|(&id, _)| id)
            .max();
        if let Some(record) = newest
            && self.processes[&record]
                .pidfd
                .as_deref()
                .is_some_and(exited_already)
        {
            self.process_exited(record);
        }
        let code = newest
            .and_then(|r| self.processes.get(&r))
            .and_then(|r| r.exit.or(r.terminate_code))
            .unwrap_or(0);
        for (&oid, object) in &self.objects {
            if let Body::Thread {
                slot,
                creator: Some(creator),
                ..
            } = object.body
                && creator == tag
                && let Some(sync) = self.arena_of(oid)
            {
                sync.mark_exited(slot, code);
            }
        }
    }

    /// The process object of `record` (made on first need, with its state).
    fn process_object(&mut self, record: RecordId) -> Result<ObjectId, Failure> {
        let rec = &self.processes[&record];
        if let Some(oid) = rec.object {
            return Ok(oid);
        }
        let (pid, exit) = (rec.pid, rec.exit);
        let domain = self.domain_of_pid(pid);
        let slot = self
            .arena_mut(domain)?
            .allocate_exit(Kind::Process, pid, exit)?;
        let security = self.own_security();
        let oid = self.insert_object(
            ObjectType::Process,
            None,
            Body::Process { slot, record },
            None,
            security,
            domain,
        );
        self.record(record).object = Some(oid);
        Ok(oid)
    }

    /// A holder's table, to read or change (a pending table only if it
    /// exists).
    fn holder_table(&mut self, holder: Holder) -> Option<&mut HandleTable> {
        match holder {
            Holder::Client(id) => Some(&mut self.client(id).handles),
            Holder::Pending(pid) => self.pending.get_mut(&pid),
        }
    }

    /// The record of client `id`'s own process, watched from now on.
    /// Refused once the process that connected has exited (its pid may be
    /// another process's by now; a forked child may hold the connection).
    pub(super) fn own_record(&mut self, id: ClientId) -> Result<RecordId, Failure> {
        let client = &self.clients[&id];
        if client.pidfd.as_ref().is_some_and(exited_already) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the process that opened this connection has exited",
            ));
        }
        let pid = client.pid;
        self.watch(pid, false)
    }

    /// The record of the process a process handle of client `id` refers to;
    /// the handle must grant `rights`.
    pub(super) fn process_record(
        &mut self,
        id: ClientId,
        handle: Handle,
        rights: u32,
    ) -> Result<RecordId, Failure> {
        let entry = *self
            .client(id)
            .handles
            .get(handle)
            .ok_or_else(|| not_open(handle))?;
        let Body::Process { record, .. } = self.objects[&entry.object].body else {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!("handle {:#x} is not a process", handle.0),
            ));
        };
        if !entry.access.contains(rights) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!("process handle {:#x} lacks access {rights:#x}", handle.0),
            ));
        }
        Ok(record)
    }

    /// The process a process handle of client `id` refers to (which must
    /// grant `rights`): its record, and who holds its handle table.
    fn process_holder(
        &mut self,
        id: ClientId,
        handle: Handle,
        rights: u32,
    ) -> Result<(Option<RecordId>, Holder), Failure> {
        if handle == CURRENT_PROCESS {
            return Ok((None, Holder::Client(id)));
        }
        let record = self.process_record(id, handle, rights)?;
        let rec = &self.processes[&record];
        if rec.exit.is_some() {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!("process {} has exited", rec.pid),
            ));
        }
        let (pid, child) = (rec.pid, rec.child);
        let connected = self
            .clients
            .iter()
            .find(|(_, c)| c.pid == pid && c.greeted)
            .map(|(&cid, _)| cid);
        match connected {
            Some(cid) => Ok((Some(record), Holder::Client(cid))),
            // A child the broker started will connect: its handles wait.
            None if child => Ok((Some(record), Holder::Pending(pid))),
            None => Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!("process {pid} is not an objmgr client"),
            )),
        }
    }

    /// Adds a handle to `oid` in client `id`'s table and builds the grant,
    /// with the arena's fd if this is the client's first sync grant.
    fn grant_new(
        &mut self,
        id: ClientId,
        oid: ObjectId,
        access: u32,
    ) -> Result<(SyncGrant, Option<Rc<OwnedFd>>), Failure> {
        let outcome = self.grant(id, oid, AccessMask(access), false, false)?;
        match outcome.reply {
            Reply::Sync(grant) => Ok((grant, outcome.fd)),
            _ => unreachable!("process and thread objects are sync objects"),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    pub(super) fn spawn(
        &mut self,
        id: ClientId,
        program: &str,
        args: &[String],
        env: &[String],
        cwd: &str,
        (inherit_handles, flags): (bool, u32),
        stdio: u8,
        fds: Vec<OwnedFd>,
    ) -> Result<Outcome, Failure> {
        if program.is_empty() {
            return Err(Failure::new(ERROR_INVALID_PARAMETER, "no program to run"));
        }
        let suspended = flags & CREATE_SUSPENDED != 0;
        let mut command = if suspended {
            // Started as objmgrd, which waits for ResumeThread, then
            // becomes the program.
            let mut command = std::process::Command::new("/proc/self/exe");
            command
                .arg(crate::child_limits::SUSPENDED_START)
                .arg(program)
                .arg(program);
            crate::child_limits::start_with_continue_blocked(&mut command);
            command
        } else {
            std::process::Command::new(program)
        };
        command.args(args).env_clear();
        for pair in env {
            if let Some((key, value)) = pair.split_once('=')
                && !key.is_empty()
            {
                command.env(key, value);
            }
        }
        // The child talks to this broker, whatever the environment said.
        command.env("OBJMGR_SOCKET", &self.socket);
        // On the system broker the child changes directory only once it is
        // the user who asked (below): a directory root could enter but the
        // user could not is refused, not entered.
        if !cwd.is_empty() && !self.system {
            command.current_dir(cwd);
        }
        let mut fds = fds.into_iter();
        let mut io = |bit: u8| match (stdio & bit != 0).then(|| fds.next()).flatten() {
            Some(fd) => std::process::Stdio::from(fd),
            None => std::process::Stdio::null(),
        };
        command.stdin(io(1)).stdout(io(2)).stderr(io(4));
        // The job the child joins (its creator's, unless it breaks away),
        // with room for it and its memory limit in force from the start.
        let job = self.job_for_child(id, flags)?;
        if let Some(job) = job {
            self.check_room(job)?;
            if let Some(limit) = self.process_memory_limit(job) {
                crate::child_limits::start_with_data_limit(&mut command, limit);
            }
        }
        // Everything that can fail is reserved before the child exists.
        let handle_quota = crate::quota::get()
            .handles
            .min(MAX_HANDLES_PER_PROCESS as u64);
        if self.client(id).handles.live as u64 + 2 > handle_quota {
            return Err(Failure::new(
                ERROR_NOT_ENOUGH_QUOTA,
                format!(
                    "over this process's quota of {handle_quota} handles (see objmgrd --quota)"
                ),
            ));
        }
        // The process and thread objects are charged to the spawner.
        self.check_quota(
            id,
            Charge {
                sync_objects: 2,
                ..Charge::default()
            },
        )?;
        let domain = self.domain_of(id);
        let process_slot = self
            .arena_mut(domain)?
            .allocate_exit(Kind::Process, 0, None)?;
        let thread_slot = match self.arena_mut(domain)?.allocate_exit(Kind::Thread, 0, None) {
            Ok(slot) => slot,
            Err(failure) => {
                self.arena_mut(domain)?.free(process_slot);
                return Err(failure);
            }
        };
        crate::child_limits::start_in_own_session(&mut command);
        if let Some(&original) = ORIGINAL_NOFILE.get() {
            crate::child_limits::start_with_fd_limit(&mut command, original);
        }
        // The system-wide broker runs as root: the child runs as the user
        // who asked, with that user's groups.
        if self.system {
            let token = &self.clients[&id].token;
            let uid = self.clients[&id].uid;
            let gid = token.primary_group.unix_gid().unwrap_or(u32::MAX);
            let groups: Vec<u32> = token.groups.iter().filter_map(|g| g.unix_gid()).collect();
            let dir = (!cwd.is_empty())
                .then(|| std::ffi::CString::new(cwd))
                .transpose()
                .map_err(|_| Failure::new(ERROR_INVALID_PARAMETER, "a NUL in the directory"))?;
            crate::child_limits::start_as(&mut command, uid, gid, groups, dir);
        }
        if suspended {
            // The program is found in the child, as the user, from its
            // directory: a missing one fails the spawn, as it would
            // without CREATE_SUSPENDED.
            let path = env.iter().find_map(|pair| pair.strip_prefix("PATH="));
            crate::child_limits::start_only_if_runnable(&mut command, program, path);
        }
        let spawned = command.spawn();
        let record = spawned
            .map_err(|e| Failure::new(spawn_error_code(&e), format!("starting {program:?}: {e}")))
            .and_then(|child| {
                let pid = child.id();
                // Not waited for here: the pidfd says when it exits, then it is
                // reaped. If it cannot be watched, it must not run unwatched.
                drop(child);
                self.watch(pid, true).inspect_err(|_| {
                    if let Some(raw) = Pid::from_raw(pid as i32) {
                        let _ = rustix::process::kill_process(raw, Signal::KILL);
                        let _ = rustix::process::waitpid(
                            Some(raw),
                            rustix::process::WaitOptions::empty(),
                        );
                    }
                })
            });
        let record = match record {
            Ok(record) => record,
            Err(failure) => {
                let arena = self.arena_mut(domain)?;
                arena.free(process_slot);
                arena.free(thread_slot);
                return Err(failure);
            }
        };
        let pid = self.processes[&record].pid;
        if let Some(job) = job {
            self.join(job, record);
        }
        if inherit_handles {
            let inherited: Vec<(Handle, HandleEntry)> = self
                .client(id)
                .handles
                .iter()
                .filter(|(_, e)| e.inherit)
                .map(|(h, e)| (h, *e))
                .collect();
            // The child runs as the spawner's domain (user) says.
            let mut table = HandleTable {
                owner: Some(self.domain_of(id)),
                ..HandleTable::default()
            };
            for (handle, entry) in inherited {
                table.insert_at(handle, entry);
                self.objects
                    .get_mut(&entry.object)
                    .expect("live object")
                    .handle_count += 1;
            }
            if table.live > 0 {
                self.pending.insert(pid, table);
            }
        }
        let sync = self.arena_mut(domain)?;
        sync.set_pid(process_slot, pid);
        sync.set_pid(thread_slot, pid);
        sync.set_tid(thread_slot, pid);
        let own_security = self.own_security();
        let process = self.insert_object(
            ObjectType::Process,
            None,
            Body::Process {
                slot: process_slot,
                record,
            },
            Some((id, Charge::sync_object())),
            own_security.clone(),
            domain,
        );
        let thread = self.insert_object(
            ObjectType::Thread,
            None,
            Body::Thread {
                slot: thread_slot,
                creator: None,
                main_of: Some(record),
            },
            Some((id, Charge::sync_object())),
            own_security,
            domain,
        );
        let rec = self.record(record);
        rec.object = Some(process);
        rec.main_thread = Some(thread);
        let (process, arena_fd) = self.grant_new(id, process, PROCESS_ALL_ACCESS)?;
        let (thread, _) = self.grant_new(id, thread, THREAD_ALL_ACCESS)?;
        Ok(Outcome {
            reply: Reply::Spawned {
                process,
                thread,
                pid,
            },
            fd: arena_fd,
            shutdown: false,
        })
    }

    pub(super) fn open_process(
        &mut self,
        id: ClientId,
        pid: u32,
        access: u32,
        inherit: bool,
    ) -> Result<Outcome, Failure> {
        // A process of the caller's own user only, unless the caller is
        // root (Windows' default process DACL grants nothing to other users).
        let caller = self.clients[&id].uid;
        if let Some(uid) = process_uid(pid)
            && uid != caller
            && caller != 0
        {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!("process {pid} belongs to another user"),
            ));
        }
        let record = self.watch(pid, false)?;
        let oid = self
            .process_object(record)
            .inspect_err(|_| self.forget_if_unused(record))?;
        let access = ObjectType::Process.map_generic(access);
        self.grant(id, oid, access, inherit, false)
    }

    pub(super) fn terminate(
        &mut self,
        id: ClientId,
        handle: Handle,
        code: u32,
    ) -> Result<Outcome, Failure> {
        let record = if handle == CURRENT_PROCESS {
            self.own_record(id)?
        } else {
            self.process_record(id, handle, PROCESS_TERMINATE)?
        };
        // An exit that happened but is not handled yet counts as an exit.
        if self.processes[&record]
            .pidfd
            .as_deref()
            .is_some_and(exited_already)
        {
            // (This may forget a record nothing refers to any more.)
            self.process_exited(record);
        }
        let exited = || Failure::new(ERROR_ACCESS_DENIED, "the process has already exited");
        let Some(rec) = self.processes.get(&record).filter(|r| r.exit.is_none()) else {
            return Err(exited());
        };
        let pid = rec.pid;
        if pid == std::process::id() {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the broker does not terminate itself",
            ));
        }
        let Some(fd) = rec.pidfd.clone() else {
            return Err(exited());
        };
        match rustix::process::pidfd_send_signal(&*fd, Signal::KILL) {
            Ok(()) => {}
            Err(rustix::io::Errno::SRCH) => return Err(exited()),
            Err(e) => return Err(Failure::new(errno(e), format!("terminating process {pid}"))),
        }
        self.record(record).terminate_code.get_or_insert(code);
        Ok(Outcome::reply(Reply::Done))
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    pub(super) fn duplicate(
        &mut self,
        id: ClientId,
        source_process: Handle,
        source: Handle,
        target_process: Handle,
        access: u32,
        inherit: bool,
        options: u32,
    ) -> Result<Outcome, Failure> {
        let (_, from) = self.process_holder(id, source_process, PROCESS_DUP_HANDLE)?;
        let result =
            self.duplicate_from(id, from, source, target_process, access, inherit, options);
        // DUPLICATE_CLOSE_SOURCE closes the source whatever else happened
        // (but never a handle protected from close).
        if options & DUPLICATE_CLOSE_SOURCE != 0
            && let Some(table) = self.holder_table(from)
            && table.get(source).is_some_and(|e| !e.protect)
            && let Some(entry) = table.remove(source)
        {
            self.release(entry.object);
            // A handle closed behind its holder's back (or named through a
            // real handle to itself, which its library does not follow).
            if let Holder::Client(cid) = from
                && (cid != id || source_process != CURRENT_PROCESS)
            {
                self.journal_gift(cid);
                // Its note of what it holds is out of date: a close it
                // leaves in its close ring may now free a section.
                self.stale_holders.insert(cid);
            }
        }
        result
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    fn duplicate_from(
        &mut self,
        id: ClientId,
        from: Holder,
        source: Handle,
        target_process: Handle,
        access: u32,
        inherit: bool,
        options: u32,
    ) -> Result<Outcome, Failure> {
        let (_, to) = self.process_holder(id, target_process, PROCESS_DUP_HANDLE)?;
        let entry = if source == CURRENT_PROCESS {
            // The pseudo-handle stands for the source process: the new
            // handle is a real handle to that process, with any access.
            let pid = match from {
                Holder::Client(cid) => self.clients[&cid].pid,
                Holder::Pending(pid) => pid,
            };
            let record = self.watch(pid, false)?;
            HandleEntry {
                object: self
                    .process_object(record)
                    .inspect_err(|_| self.forget_if_unused(record))?,
                access: AccessMask(PROCESS_ALL_ACCESS),
                inherit: false,
                protect: false,
            }
        } else {
            *self
                .holder_table(from)
                .and_then(|t| t.get(source))
                .ok_or_else(|| not_open(source))?
        };
        let object_type = self.objects[&entry.object].object_type;
        let access = if options & DUPLICATE_SAME_ACCESS != 0 {
            entry.access
        } else {
            let wanted = object_type.map_generic(access);
            if source != CURRENT_PROCESS && wanted.0 & !entry.access.0 != 0 {
                // More than the source handle has: as on Windows, the
                // object's descriptor decides, for the target process.
                // A process that has not connected yet is checked as what
                // it runs as (read from /proc), never as the broker.
                let token = match to {
                    Holder::Client(cid) => Some(self.clients[&cid].token.clone()),
                    Holder::Pending(pid) => self.token_of_pid(pid),
                }
                .ok_or_else(|| {
                    Failure::new(
                        ERROR_ACCESS_DENIED,
                        "the target process cannot be identified",
                    )
                })?;
                self.check_access_for(&token, entry.object, access)
                    .map_err(|failure| {
                        Failure::new(
                            ERROR_ACCESS_DENIED,
                            format!(
                                "access {:#x} exceeds the source handle's {:#x}, and {}",
                                wanted.0, entry.access.0, failure.context
                            ),
                        )
                    })?
            } else {
                wanted
            }
        };
        let table = match to {
            Holder::Client(cid) => &mut self.client(cid).handles,
            Holder::Pending(pid) => self.pending.entry(pid).or_insert_with(|| HandleTable {
                owner: process_uid(pid),
                ..HandleTable::default()
            }),
        };
        let inserted = table.insert(HandleEntry {
            object: entry.object,
            access,
            inherit,
            protect: false,
        });
        let handle = match inserted {
            Ok(handle) => handle,
            Err(failure) => {
                self.destroy_if_unreferenced(entry.object);
                return Err(failure);
            }
        };
        self.objects
            .get_mut(&entry.object)
            .expect("live object")
            .handle_count += 1;
        if let Holder::Client(cid) = to {
            self.ledger_grant(cid, entry.object, access.0);
        }
        if let Holder::Client(cid) = to
            && (cid != id || target_process != CURRENT_PROCESS)
        {
            // A handle it did not ask for (or asked for through a real
            // handle to itself, which its library does not follow), which it
            // may not have taken over when a broker dies: it cannot come back
            // to the next one.
            self.journal_gift(cid);
        }
        Ok(Outcome::reply(Reply::Value(handle.0)))
    }

    pub(super) fn handle_flags(
        &mut self,
        id: ClientId,
        handle: Handle,
        mask: u32,
        flags: u32,
    ) -> Result<Outcome, Failure> {
        let entry = self
            .client(id)
            .handles
            .get_mut(handle)
            .ok_or_else(|| not_open(handle))?;
        let before = (u32::from(entry.inherit) * HANDLE_FLAG_INHERIT)
            | (u32::from(entry.protect) * HANDLE_FLAG_PROTECT_FROM_CLOSE);
        let after = (before & !(mask & HANDLE_FLAGS)) | (flags & mask & HANDLE_FLAGS);
        entry.inherit = after & HANDLE_FLAG_INHERIT != 0;
        entry.protect = after & HANDLE_FLAG_PROTECT_FROM_CLOSE != 0;
        Ok(Outcome::reply(Reply::Value(before)))
    }

    pub(super) fn create_thread(
        &mut self,
        id: ClientId,
        inherit: bool,
    ) -> Result<Outcome, Failure> {
        let (tag, pid) = (self.clients[&id].tag, self.clients[&id].pid);
        self.check_quota(id, Charge::sync_object())?;
        let domain = self.domain_of(id);
        let slot = self
            .arena_mut(domain)?
            .allocate_exit(Kind::Thread, pid, None)?;
        let body = Body::Thread {
            slot,
            creator: Some(tag),
            main_of: None,
        };
        let own_security = self.own_security();
        let oid = self.insert_object(
            ObjectType::Thread,
            None,
            body,
            Some((id, Charge::sync_object())),
            own_security,
            domain,
        );
        self.ledger_note(oid);
        self.grant(id, oid, AccessMask(THREAD_ALL_ACCESS), inherit, false)
    }

    pub(super) fn list_processes(&self, after: u32) -> Reply {
        let mut clients: Vec<&Client> = self
            .clients
            .values()
            .filter(|c| c.greeted && c.pid > after)
            .collect();
        clients.sort_by_key(|c| c.pid);
        let mut entries = Vec::new();
        let mut used = 0;
        for c in clients {
            if used > MAX_MESSAGE_SIZE - 2 * MAX_STRING_LEN {
                break;
            }
            let name = std::fs::read_to_string(format!("/proc/{}/comm", c.pid))
                .map(|n| n.trim_end().to_owned())
                .unwrap_or_default();
            used += 16 + name.len();
            entries.push(ProcessEntry {
                pid: c.pid,
                tag: c.tag,
                handles: c.handles.live as u32,
                name,
            });
        }
        Reply::Processes(entries)
    }

    pub(super) fn list_handles(
        &self,
        id: ClientId,
        pid: u32,
        after: u32,
    ) -> Result<Outcome, Failure> {
        // Another user's handles are theirs to see (root: anyone's).
        let caller = self.clients[&id].uid;
        if self.system && caller != 0 && process_uid(pid).is_none_or(|uid| uid != caller) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!("process {pid} belongs to another user"),
            ));
        }
        let table = self
            .clients
            .values()
            .find(|c| c.pid == pid && c.greeted)
            .map(|c| &c.handles)
            .or_else(|| self.pending.get(&pid))
            .ok_or_else(|| {
                Failure::new(
                    ERROR_INVALID_PARAMETER,
                    format!("process {pid} holds no objmgr handles"),
                )
            })?;
        let mut entries = Vec::new();
        let mut used = 0;
        for (handle, entry) in table.iter().filter(|(h, _)| h.0 > after) {
            if used > MAX_MESSAGE_SIZE - 2 * MAX_STRING_LEN {
                break;
            }
            let object = &self.objects[&entry.object];
            let path = object.path.clone().unwrap_or_default();
            used += 24 + path.len();
            entries.push(HandleInfo {
                value: handle.0,
                object_type: object.object_type,
                path,
                access: entry.access.0,
                flags: (u32::from(entry.inherit) * HANDLE_FLAG_INHERIT)
                    | (u32::from(entry.protect) * HANDLE_FLAG_PROTECT_FROM_CLOSE),
            });
        }
        Ok(Outcome::reply(Reply::Handles(entries)))
    }
}

/// The Win32 error for a program that cannot be started.
fn spawn_error_code(e: &std::io::Error) -> Win32Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => ERROR_FILE_NOT_FOUND,
        std::io::ErrorKind::PermissionDenied => ERROR_ACCESS_DENIED,
        _ => e
            .raw_os_error()
            .map_or(ERROR_INVALID_FUNCTION, Win32Error::from_errno),
    }
}
