//! Processes: spawning a child that inherits handles (`CreateProcess` with
//! `bInheritHandles`), opening a process by id, waiting for it, its exit
//! code, and terminating it.
//!
//! A child spawned here is started by the broker (so that its exit code is
//! known whoever waits for it, as on Windows); it gets the environment,
//! working directory and standard streams given here. With
//! [`Command::inherit_handles`], it holds every inheritable handle of this
//! process at the same value: pass the values on its command line and take
//! them over there with `from_handle`.
//!
//! ```no_run
//! use objmgr::process::Command;
//! use objmgr::{Section, SectionBuilder};
//! # fn main() -> objmgr::Result<()> {
//! let section = Section::builder().size(4096).inheritable(true).create()?;
//! let child = Command::new("worker")
//!     .arg(section.handle_value().to_string())
//!     .inherit_handles(true)
//!     .spawn()?;
//! child.process.wait(None)?;
//! println!("exit code {}", child.process.exit_code()?);
//! # Ok(()) }
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use objmgr_proto::access::{
    ObjectType, PROCESS_QUERY_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_TERMINATE,
};
use objmgr_proto::process::STILL_ACTIVE;
use objmgr_proto::wire::{Reply, Request};
use objmgr_sync::ops;

use crate::connection::{call, call_with_fds};
use crate::error::*;
use crate::sync::{SyncObject, waitable_type};
use crate::thread::Thread;

waitable_type!(
    /// A process (`OpenProcess`, or spawned with [`Command`]): waitable,
    /// signaled when it exits, with its exit code.
    Process,
    ObjectType::Process
);

impl Process {
    /// `OpenProcess`: a handle to the running process `pid` with `access`
    /// (`PROCESS_*` rights). A pid that does not exist fails with
    /// `ERROR_INVALID_PARAMETER`. The exit code of a process not started
    /// through objmgr is known only if the broker sees it exit before its
    /// parent reaps it; otherwise it reads 0.
    pub fn open(pid: u32, access: impl Into<crate::access::ProcessAccess>) -> Result<Process> {
        Process::open_with(pid, access, false)
    }

    /// [`Process::open`], with a handle child processes inherit if
    /// `inheritable` (`bInheritHandle`).
    pub fn open_with(
        pid: u32,
        access: impl Into<crate::access::ProcessAccess>,
        inheritable: bool,
    ) -> Result<Process> {
        let request = Request::OpenProcess {
            pid,
            access: access.into().bits(),
            inherit: inheritable,
        };
        SyncObject::from_reply(call(&request, None), ObjectType::Process, || {
            format!("opening process {pid}")
        })
        .map(|object| Process { object })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.object
            .slot()
            .owner_pid
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `GetExitCodeProcess`: the exit code, or `STILL_ACTIVE` (259) while it
    /// runs. A process killed by a signal other than through `terminate`
    /// reports 128 + the signal number.
    pub fn exit_code(&self) -> Result<u32> {
        let slot = self
            .object
            .require(PROCESS_QUERY_LIMITED_INFORMATION, "GetExitCodeProcess");
        let slot = match slot {
            Ok(slot) => slot,
            Err(e) => self
                .object
                .require(PROCESS_QUERY_INFORMATION, "GetExitCodeProcess")
                .map_err(|_| e)?,
        };
        Ok(ops::exit_code(slot).unwrap_or(STILL_ACTIVE))
    }

    /// `TerminateProcess`: kills the process; waiters see `exit_code`. A
    /// process that has exited already: `ERROR_ACCESS_DENIED`.
    pub fn terminate(&self, exit_code: u32) -> Result<()> {
        self.object.require(PROCESS_TERMINATE, "TerminateProcess")?;
        call(
            &Request::Terminate {
                handle: self.object.handle,
                exit_code,
            },
            None,
        )
        .map(|_| ())
        .map_err(|e| e.within(&format!("terminating process {}", self.pid())))
    }
}

/// Where a child's standard stream goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The same file as this process's (the default).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// This descriptor (a pipe end, a file).
    Fd(OwnedFd),
}

/// A spawned child: its process and main thread.
#[derive(Debug)]
pub struct Child {
    pub process: Process,
    pub thread: Thread,
}

impl Child {
    /// Lets a process started with [`Command::start_suspended`] run its
    /// program (`ResumeThread` of its main thread); a process that runs
    /// already is not affected.
    pub fn resume(&self) -> Result<()> {
        resume_process(self.process.pid())
    }
}

/// Continues a process started suspended: its start waits for `SIGCONT`
/// (blocked until then, so one sent early is not lost).
pub fn resume_process(pid: u32) -> Result<()> {
    let what = || format!("resuming process {pid}");
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| Error::new(ERROR_INVALID_PARAMETER, what()))?;
    rustix::process::kill_process(pid, rustix::process::Signal::CONT)
        .map_err(|e| Error::from_errno(e, what()))
}

/// Builds a child process, like `std::process::Command`.
#[derive(Debug)]
pub struct Command {
    program: String,
    args: Vec<String>,
    env: Vec<(String, Option<String>)>,
    clear_env: bool,
    cwd: Option<String>,
    inherit_handles: bool,
    stdio: [Stdio; 3],
    /// `CreateProcess` flags the broker acts on.
    flags: u32,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Command {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            inherit_handles: false,
            stdio: Default::default(),
            flags: 0,
        }
    }

    /// Starts the process suspended (`CREATE_SUSPENDED`): it exists (it can
    /// be waited on, assigned to a job, or terminated) but its program does
    /// not start until [`Child::resume`].
    pub fn start_suspended(&mut self, suspended: bool) -> &mut Command {
        if suspended {
            self.flags |= objmgr_proto::process::CREATE_SUSPENDED;
        } else {
            self.flags &= !objmgr_proto::process::CREATE_SUSPENDED;
        }
        self
    }

    /// `CREATE_BREAKAWAY_FROM_JOB`: the child does not join the job this
    /// process is in (the job must allow it, else the spawn fails with
    /// `ERROR_ACCESS_DENIED`). By default a child joins its creator's job.
    pub fn breakaway_from_job(&mut self, breakaway: bool) -> &mut Command {
        let flag = objmgr_proto::job::CREATE_BREAKAWAY_FROM_JOB;
        self.flags = if breakaway {
            self.flags | flag
        } else {
            self.flags & !flag
        };
        self
    }

    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Command {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, args: I) -> &mut Command {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Command {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    pub fn env_remove(&mut self, key: impl Into<String>) -> &mut Command {
        self.env.push((key.into(), None));
        self
    }

    /// Start from an empty environment instead of this process's.
    pub fn env_clear(&mut self) -> &mut Command {
        self.clear_env = true;
        self.env.clear();
        self
    }

    pub fn current_dir(&mut self, dir: impl Into<String>) -> &mut Command {
        self.cwd = Some(dir.into());
        self
    }

    /// `bInheritHandles`: the child gets every inheritable handle of this
    /// process, at the same values and with the same access.
    pub fn inherit_handles(&mut self, inherit: bool) -> &mut Command {
        self.inherit_handles = inherit;
        self
    }

    pub fn stdin(&mut self, stdio: Stdio) -> &mut Command {
        self.stdio[0] = stdio;
        self
    }

    pub fn stdout(&mut self, stdio: Stdio) -> &mut Command {
        self.stdio[1] = stdio;
        self
    }

    pub fn stderr(&mut self, stdio: Stdio) -> &mut Command {
        self.stdio[2] = stdio;
        self
    }

    fn environment(&self) -> Vec<String> {
        let mut env: Vec<(String, String)> = if self.clear_env {
            Vec::new()
        } else {
            std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect()
        };
        for (key, value) in &self.env {
            env.retain(|(k, _)| k != key);
            if let Some(value) = value {
                env.push((key.clone(), value.clone()));
            }
        }
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Starts the child (`CreateProcess`). A program that cannot be found
    /// fails with `ERROR_FILE_NOT_FOUND`.
    pub fn spawn(&self) -> Result<Child> {
        let cwd = match &self.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let standard = [
            rustix::stdio::stdin(),
            rustix::stdio::stdout(),
            rustix::stdio::stderr(),
        ];
        let mut mask = 0u8;
        let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(3);
        for (i, stdio) in self.stdio.iter().enumerate() {
            let fd = match stdio {
                Stdio::Inherit => standard[i],
                Stdio::Null => continue,
                Stdio::Fd(fd) => fd.as_fd(),
            };
            mask |= 1 << i;
            fds.push(fd);
        }
        let request = Request::Spawn {
            program: self.program.clone(),
            args: self.args.clone(),
            env: self.environment(),
            cwd,
            inherit_handles: self.inherit_handles,
            stdio: mask,
            flags: self.flags,
        };
        let what = || format!("starting {:?}", self.program);
        let (reply, fd, generation) =
            call_with_fds(&request, &fds).map_err(|e| e.within(&what()))?;
        let Reply::Spawned {
            process, thread, ..
        } = reply
        else {
            return Err(Error::new(
                ERROR_INVALID_DATA,
                format!("{}: unexpected reply", what()),
            ));
        };
        // The arena's fd, if this reply carried it, maps with the first object.
        let process = SyncObject::from_reply(
            Ok((Reply::Sync(process), fd, generation)),
            ObjectType::Process,
            what,
        )?;
        let thread = SyncObject::from_reply(
            Ok((Reply::Sync(thread), None, generation)),
            ObjectType::Thread,
            what,
        )?;
        Ok(Child {
            process: Process { object: process },
            thread: Thread::from_object(thread),
        })
    }
}
