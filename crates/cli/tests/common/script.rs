//! The child side: a tiny interpreter of objmgr operations, one per line.
//! Results are printed as `@@...` lines; failures as `@@err <code>`.
//!
//! | command                                   | does                                         |
//! |-------------------------------------------|----------------------------------------------|
//! | `create NAME SIZE [PROT]`                 | memory-backed section (`-` = unnamed)        |
//! | `create_large NAME SIZE`                  | with `SEC_LARGE_PAGES`                       |
//! | `create_file PATH ro|rw|rw-leased NAME SIZE [PROT]` | file-backed section (`rw-leased`: under a write lease on the fd) |
//! | `open NAME read|write|all|copy`           | `OpenFileMapping`                            |
//! | `map ACCESS [OFFSET LEN [prefault]]`      | view of the last section                     |
//! | `map_at ACCESS ADDR`                      | view at ADDR (hex; `last`: the last view's, `freed`: the last unmapped one's, `inside`: an aligned one in the last view) |
//! | `write OFF TEXT` / `read OFF LEN`         | through the last view                        |
//! | `add OFF` / `load OFF`                    | atomic u32 add 1 / load                      |
//! | `flush` / `unmap` / `close`               | last view / last view / last section         |
//! | `fdmode`                                  | access mode of the last section's fd         |
//! | `force_write`                             | `mprotect` the last view writable, and write through `/proc/self/mem` |
//! | `reopen_rw`                               | reopen the last section's fd writable through `/proc/self/fd` and write a byte |
//! | `size` / `existed`                        | facts about the last section                 |
//! | `truncate LEN`                            | `ftruncate` the last section's fd directly   |
//! | `hold`                                    | print `@@holding`, wait for a stdin line     |
//! | `bg_wait_event NAME`                      | a thread opens event NAME and waits on it forever (prints `@@bg` and the outcome when the wait ends) |
//! | `hold_waiting I`                          | `hold` while a thread waits forever on object I (prints `@@bg` and the outcome when the wait ends; the hold ends after it) |
//!
//! Synchronization objects go into a second list, addressed by index (`I`):
//!
//! | command                                   | does                                         |
//! |-------------------------------------------|----------------------------------------------|
//! | `event NAME manual|auto 0|1`              | `CreateEvent` (`-` = unnamed)                |
//! | `whoami`                                  | this process's uid and gid                   |
//! | `sleep MS`                                | sleep (without touching objmgr)              |
//! | `ns_create B ALIAS SID,... [SDDL]` / `ns_open B ALIAS SID,...` | private namespace with boundary B |
//! | `ns_close keep|destroy`                   | close the last namespace (`destroy`: `PRIVATE_NAMESPACE_FLAG_DESTROY`) |
//! | `get_sd V WHICH` / `set_sd V WHICH SDDL`  | `Get`/`SetKernelObjectSecurity` on handle value V (prints `sd SDDL`) |
//! | `create_sd NAME SDDL` / `event_sd NAME SDDL` | a 64 KiB section / manual-reset event with that security descriptor |
//! | `mutex_sd NAME SDDL` / `semaphore_sd NAME SDDL` / `timer_sd NAME SDDL` | a mutex / a semaphore (count 0, maximum 10) / an auto-reset timer with that descriptor |
//! | `corrupt_timer`                           | write due = 1, period = 2^64-1 into the slot of the first solo arena this process maps writable |
//! | `shared_events ALIAS N`                   | create events `ALIAS\eI` until refused or N made; prints how many and the refusal's code |
//! | `requeue MS`                              | for MS ms, `FUTEX_CMP_REQUEUE` every sleeper on each shared object mapped onto a word of our own; prints `requeue moved=1` if any was moved |
//! | `scribble`                                | try to write every 8 bytes of every sync arena mapped (via `/proc/self/mem`) and `mprotect` every page writable; prints how many arenas, bytes, and how many writes and mprotects succeeded |
//! | `mutex NAME 0|1` / `semaphore NAME INIT MAX` / `timer NAME manual|auto` | create |
//! | `open_event|open_mutex|open_semaphore|open_timer NAME [ACCESS]` | open (hex access) |
//! | `set I` / `reset I` / `pulse I`           | event operations                             |
//! | `release I [N]`                           | `ReleaseMutex` / `ReleaseSemaphore` (prints the previous count) |
//! | `wait I MS` / `wait_any I,J MS` / `wait_all I,J MS` | waits (`inf` = forever); prints `wait object N`, `wait abandoned N` or `wait timeout` |
//! | `signal_wait I J MS`                      | `SignalObjectAndWait`                        |
//! | `settimer I DUE PERIOD_MS` / `cancel I`   | `SetWaitableTimer` (100 ns units) / cancel   |
//! | `closeobj I`                              | close object I (later indices shift down)    |
//! | `thread_lock I`                           | a thread locks mutex I and exits holding it  |
//! | `thread_lock_hold I`                      | the same, but the thread prints `@@thread holding` and exits only after a stdin line |
//! | `requests`                                | broker requests so far, except `status`      |
//! | `exclusive I,J OFF ITER CAP`              | ITER times: wait-all on I,J, count holders in the last view's counter at OFF+4*I for each object I (more than CAP at once is a violation), release |
//! | `twait I MS`                              | `wait`, also printing `after=` elapsed ms    |
//! | `settimer_abs I MS`                       | `SetWaitableTimer` at an absolute FILETIME MS from now |
//! | `churn EVENT SEM MUTEX N`                 | N rounds of set+wait, release+wait, lock+release |
//! | `many_events N`                           | N unnamed events; prints the fds and mappings the last N-1 added |
//! | `fork_sleep`                              | fork a child that sleeps 60 s; prints `forked PID` |
//!
//! Processes and handles (`$IN` in a line is the text the last `hold` read,
//! `$H` the last section's handle value, `$E` the last object's, `$P` the
//! last spawned child's pid, `$D` the last duplicated value):
//!
//! | command                                   | does                                         |
//! |-------------------------------------------|----------------------------------------------|
//! | `create_inh NAME SIZE` / `event_inh NAME auto|manual 0|1` | inheritable section / event  |
//! | `adopt_section V` / `adopt_event V`       | take over handle value V (`from_handle`)    |
//! | `spawn inherit|noinherit LINE;LINE...`    | spawn this binary running that script (`|` separates the lines of a script it spawns in turn); its output is collected |
//! | `child_finish`                            | wait for the last child; print its lines as `child ...` and `child exit=N` |
//! | `child_kill9` / `terminate CODE` / `exit_code` | the last child: SIGKILL / `TerminateProcess` / `GetExitCodeProcess` |
//! | `child_process`                           | push the last child's process object (waitable) |
//! | `open_process PID [ACCESS]`               | `OpenProcess` (hex access; default all)      |
//! | `dup_into I V ACCESS|same [close] [inherit]` | `DuplicateHandle` of our V into process object I |
//! | `dup_from I V ACCESS|same`                | `DuplicateHandle` of process I's V into us  |
//! | `dup_self V ACCESS`                       | `DuplicateHandle` of our V into us with ACCESS (hex) |
//! | `handle_info V` / `set_handle_info V MASK FLAGS` | `Get`/`SetHandleInformation`        |
//! | `thread_spawn CODE MS`                    | `objmgr::thread::spawn` returning CODE after MS ms |
//! | `exitcode I`                              | exit code of process/thread object I         |
//! | `fork_check [raw]`                        | fork (`raw`: by `clone`, no atfork handlers); the child reports its old and new handles |
//! | `exit N`                                  | exit the process with code N                 |
//! | `dup_pseudo`                              | `DuplicateHandle` of `GetCurrentProcess()`: a real handle to this process |
//! | `terminate_obj I CODE`                    | `TerminateProcess` of process object I       |
//!
//! Jobs go into a third list, addressed by index (`J`); `spawn breakaway ...`
//! spawns with `CREATE_BREAKAWAY_FROM_JOB`:
//!
//! | command                                   | does                                         |
//! |-------------------------------------------|----------------------------------------------|
//! | `job NAME` / `open_job NAME [ACCESS]`     | `CreateJobObject` (`-` = unnamed) / `OpenJobObject` |
//! | `job_limits J FLAGS ACTIVE MEM_MB PROCESS_MS JOB_MS` | `SetInformationJobObject` (extended; FLAGS hex) |
//! | `job_assign J I|self`                     | `AssignProcessToJobObject` of process object I (or this process) |
//! | `job_terminate J CODE` / `job_wait J MS`  | `TerminateJobObject` / wait on the job       |
//! | `job_pids J` / `job_acct J`               | the member pids (sorted) / accounting figures |
//! | `in_job I|self J|any`                     | `IsProcessInJob`                             |
//! | `burn MS` / `alloc MB` / `mypid`          | spend CPU time / commit memory / print our pid |
//! | `fopen PATH r|w|rw SHARE [inherit]`       | open (creating if writing) and register a file with that share mode (hex); prints its handle value |
//! | `fopen_path PATH` / `ffdmode F`           | register an `O_PATH` fd claiming read access / the access mode of file F's fd |
//! | `adopt_file V` / `fclose F`               | take over file handle V / close file F       |
//! | `fdcount PATH`                            | how many of this process's descriptors are the file at PATH |
//! | `flock F OFF LEN x|s wait|now` / `funlock F OFF LEN` | `LockFileEx` / `UnlockFileEx` on file F |
//! | `fseek F POS` / `fwrite F TEXT` / `fread F N` | position, write, read (lock-checked)     |
//! | `fsetlen F LEN` / `fdelete PATH`          | `SetEndOfFile` / `DeleteFile` (share-checked; pending while open with share-delete) |
//! | `fopen_doc PATH SHARE` / `exists PATH`    | open read-write with `FILE_FLAG_DELETE_ON_CLOSE` / whether the path exists |
//! | `close_job J` / `job_count J N`           | close job J (later indices shift down) / wait (10 s at most) until J has N running members, print how many |

use objmgr::job::{Job, JobLimits};
use objmgr::process::{Command, Process, Stdio};
use objmgr::thread::Thread;
use objmgr::{
    CreateOptions, Error, Event, MapAccess, MapOptions, Mutex, PageProtection, Reset, Section,
    Semaphore, View, WaitOutcome, Waitable, WaitableTimer,
};
use std::io::BufRead;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Private namespaces the script opened (kept open until `ns_close` or exit).
static NAMESPACES: std::sync::Mutex<Vec<objmgr::namespace::PrivateNamespace>> =
    std::sync::Mutex::new(Vec::new());

fn access(word: &str) -> MapAccess {
    match word {
        "read" => MapAccess::READ,
        "write" => MapAccess::WRITE,
        "all" => MapAccess::ALL_ACCESS,
        "copy" => MapAccess::COPY,
        "none" => MapAccess(0),
        "query" => MapAccess(0x1), // SECTION_QUERY
        "rx" => MapAccess::READ | MapAccess::EXECUTE,
        other => panic!("unknown access {other}"),
    }
}

fn protection(word: Option<&&str>) -> PageProtection {
    match word.copied().unwrap_or("rw") {
        "rw" => PageProtection::ReadWrite,
        "ro" => PageProtection::ReadOnly,
        "wc" => PageProtection::WriteCopy,
        "rx" => PageProtection::ExecuteRead,
        other => panic!("unknown protection {other}"),
    }
}

fn name(word: &str) -> Option<String> {
    (word != "-").then(|| word.replace("\\\\", "\\"))
}

/// A synchronization object of any type.
enum Obj {
    Event(Event),
    Mutex(Mutex),
    Semaphore(Semaphore),
    Timer(WaitableTimer),
    Process(Process),
    Thread(Thread),
}

impl Obj {
    fn waitable(&self) -> &dyn Waitable {
        match self {
            Obj::Event(o) => o,
            Obj::Mutex(o) => o,
            Obj::Semaphore(o) => o,
            Obj::Timer(o) => o,
            Obj::Process(o) => o,
            Obj::Thread(o) => o,
        }
    }

    fn existed(&self) -> bool {
        match self {
            Obj::Event(o) => o.existed(),
            Obj::Mutex(o) => o.existed(),
            Obj::Semaphore(o) => o.existed(),
            Obj::Timer(o) => o.existed(),
            Obj::Process(_) | Obj::Thread(_) => false,
        }
    }

    fn handle_value(&self) -> u32 {
        match self {
            Obj::Event(o) => o.handle_value(),
            Obj::Mutex(o) => o.handle_value(),
            Obj::Semaphore(o) => o.handle_value(),
            Obj::Timer(o) => o.handle_value(),
            Obj::Process(o) => o.handle_value(),
            Obj::Thread(o) => o.handle_value(),
        }
    }
}

fn reset(word: &str) -> Reset {
    if word == "manual" {
        Reset::Manual
    } else {
        Reset::Auto
    }
}

fn timeout(word: &str) -> Option<Duration> {
    (word != "inf").then(|| Duration::from_millis(word.parse().unwrap()))
}

fn indices(word: &str) -> Vec<usize> {
    word.split(',').map(|i| i.parse().unwrap()).collect()
}

fn outcome(o: WaitOutcome) -> String {
    match o {
        WaitOutcome::Object(n) => format!("wait object {n}"),
        WaitOutcome::Abandoned(n) => format!("wait abandoned {n}"),
        WaitOutcome::Timeout => "wait timeout".into(),
    }
}

fn release(obj: &Obj, count: u32) -> Result<String, Error> {
    Ok(match obj {
        Obj::Mutex(m) => {
            m.release()?;
            "released".into()
        }
        Obj::Semaphore(s) => format!("released previous={}", s.release(count)?),
        _ => panic!("release of an event or timer"),
    })
}

/// Repeatedly takes `objs` together and checks that at most `cap` holders
/// (processes or threads) have each of them at once: each object has a
/// counter of holders in the view. Returns how many violations were seen and
/// how many waits reported abandonment.
fn exclusive(
    all: &[Obj],
    which: &[usize],
    view: &View,
    offset: usize,
    iterations: u32,
    cap: u32,
) -> (u32, u32) {
    let objs: Vec<&Obj> = which.iter().map(|&i| &all[i]).collect();
    let waitables: Vec<&dyn Waitable> = objs.iter().map(|o| o.waitable()).collect();
    let cells: Vec<_> = which
        .iter()
        .map(|&i| view.atomic_u32(offset + 4 * i).unwrap())
        .collect();
    let (mut violations, mut abandoned) = (0, 0);
    for _ in 0..iterations {
        // Long enough never to end a healthy wait; a lost wake-up then
        // fails the test instead of hanging it.
        match objmgr::wait_all(&waitables, Some(Duration::from_secs(60))).unwrap() {
            WaitOutcome::Abandoned(_) => abandoned += 1,
            WaitOutcome::Object(_) => {}
            WaitOutcome::Timeout => panic!("a wait-all waited 60 s: a lost wake-up"),
        }
        for cell in &cells {
            if cell.fetch_add(1, Ordering::SeqCst) >= cap {
                violations += 1;
            }
        }
        std::thread::yield_now();
        for cell in &cells {
            cell.fetch_sub(1, Ordering::SeqCst);
        }
        for o in &objs {
            release(o, 1).unwrap();
        }
    }
    (violations, abandoned)
}

/// A child spawned through objmgr, and the read end of its stdout.
struct Spawned {
    process: Process,
    output: std::os::fd::OwnedFd,
}

/// Parses a handle value (decimal or 0x-hex).
fn value(word: &str) -> u32 {
    match word.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
        None => word.parse().unwrap(),
    }
}

fn spawn_script(inherit: bool, breakaway: bool, script: &str) -> Result<Spawned, Error> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap().to_string_lossy());
    command
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(
            super::common::CHILD_ROLE_ENV,
            script.replace(';', "\n").replace('|', ";"),
        )
        .inherit_handles(inherit)
        .breakaway_from_job(breakaway)
        .stdin(Stdio::Null)
        .stdout(Stdio::Fd(write));
    let child = command.spawn()?;
    Ok(Spawned {
        process: child.process,
        output: read,
    })
}

pub fn run_script(script: &str) {
    let mut objs: Vec<Obj> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut views: Vec<View> = Vec::new();
    let mut children: Vec<Spawned> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut files: Vec<objmgr::file::File> = Vec::new();
    let mut input = String::new();
    let mut duplicated = 0u32;
    let mut freed = 0usize;
    for line in script.lines() {
        let line = line
            .replace("$IN", &input)
            .replace(
                "$H",
                &sections.last().map_or(0, |s| s.handle_value()).to_string(),
            )
            .replace("$E", &objs.last().map_or(0, Obj::handle_value).to_string())
            .replace(
                "$P",
                &children.last().map_or(0, |c| c.process.pid()).to_string(),
            )
            .replace("$D", &duplicated.to_string());
        let words: Vec<&str> = line.split(' ').collect();
        let result: Result<String, Error> = (|| {
            Ok(match words[0] {
                "create" | "create_large" => {
                    let mut builder = Section::builder()
                        .size(words[2].parse().unwrap())
                        .protection(protection(words.get(3)));
                    if let Some(n) = name(words[1]) {
                        builder = builder.name(&n);
                    }
                    let section = builder.large_pages(words[0] == "create_large").create()?;
                    let existed = section.existed();
                    sections.push(section);
                    format!("create existed={}", existed as u8)
                }
                "create_file" => {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(words[2].starts_with("rw"))
                        .open(words[1])
                        .unwrap();
                    if words[2] == "rw-leased" {
                        // SAFETY: ignoring SIGIO (a lease holder is told of a
                        // break with it), then F_SETLEASE on an open fd; no
                        // pointers, no handler code.
                        let rc = unsafe {
                            libc::signal(libc::SIGIO, libc::SIG_IGN);
                            libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK)
                        };
                        assert_eq!(rc, 0, "taking a write lease");
                    }
                    let mut builder = Section::builder()
                        .size(words[4].parse().unwrap())
                        .protection(protection(words.get(5)));
                    if let Some(n) = name(words[3]) {
                        builder = builder.name(&n);
                    }
                    sections.push(builder.create_from_file(&file)?);
                    "create_file".into()
                }
                "open" => {
                    sections.push(Section::open(
                        &name(words[1]).unwrap_or_default(),
                        access(words[2]),
                    )?);
                    "open".into()
                }
                "map" => {
                    let mut options = MapOptions::new(access(words[1]));
                    if words.len() >= 4 {
                        options.offset = words[2].parse().unwrap();
                        options.len = words[3].parse().unwrap();
                    }
                    options.prefault = words.get(4) == Some(&"prefault");
                    let view = sections.last().unwrap().map_with(&options)?;
                    let line = format!("map len={} addr={:x}", view.len(), view.as_ptr() as usize);
                    views.push(view);
                    line
                }
                "map_at" => {
                    let addr = match words[2] {
                        "last" => views.last().unwrap().as_ptr() as usize,
                        "freed" => freed,
                        // A 64 KiB-aligned address inside the last view.
                        "inside" => {
                            (views.last().unwrap().as_ptr() as usize).next_multiple_of(65536)
                        }
                        hex => usize::from_str_radix(hex, 16).unwrap(),
                    };
                    let options = MapOptions {
                        address: std::ptr::NonNull::new(addr as *mut u8),
                        ..MapOptions::new(access(words[1]))
                    };
                    let view = sections.last().unwrap().map_with(&options)?;
                    let line = format!("map_at addr={:x}", view.as_ptr() as usize);
                    views.push(view);
                    line
                }
                "write" => {
                    views
                        .last()
                        .unwrap()
                        .write_at(words[1].parse().unwrap(), words[2].as_bytes())?;
                    "write".into()
                }
                "read" => {
                    let mut buf = vec![0u8; words[2].parse().unwrap()];
                    views
                        .last()
                        .unwrap()
                        .read_at(words[1].parse().unwrap(), &mut buf)?;
                    format!(
                        "read {}",
                        String::from_utf8_lossy(&buf).trim_end_matches('\0')
                    )
                }
                "add" => {
                    views
                        .last()
                        .unwrap()
                        .atomic_u32(words[1].parse().unwrap())?
                        .fetch_add(1, Ordering::SeqCst);
                    "add".into()
                }
                "load" => format!(
                    "load {}",
                    views
                        .last()
                        .unwrap()
                        .atomic_u32(words[1].parse().unwrap())?
                        .load(Ordering::SeqCst)
                ),
                "flush" => {
                    views.last().unwrap().flush()?;
                    "flush".into()
                }
                "unmap" => {
                    freed = views.pop().unwrap().as_ptr() as usize;
                    "unmap".into()
                }
                "close" => {
                    sections.pop().unwrap().close()?;
                    "close".into()
                }
                "fdmode" => {
                    let flags = rustix::fs::fcntl_getfl(sections.last().unwrap().as_fd()).unwrap();
                    let mode = flags & rustix::fs::OFlags::RWMODE;
                    format!(
                        "fdmode {}",
                        if mode == rustix::fs::OFlags::RDONLY {
                            "ro"
                        } else {
                            "rw"
                        }
                    )
                }
                "force_write" => {
                    // Other routes to writing through a read-only view: make
                    // it writable, or write through /proc/self/mem (which
                    // debuggers use to write read-only pages).
                    let addr = views.last().unwrap().as_ptr() as usize;
                    // SAFETY: mprotect of the view's first page, which this
                    // process mapped; nothing is written through it here.
                    let protect = unsafe {
                        rustix::mm::mprotect(
                            addr as *mut _,
                            4096,
                            rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
                        )
                    };
                    let mem = std::fs::OpenOptions::new()
                        .write(true)
                        .open("/proc/self/mem")
                        .unwrap();
                    let poke = std::os::unix::fs::FileExt::write_at(&mem, b"X", addr as u64);
                    format!(
                        "force_write mprotect={} mem={}",
                        protect.map_or_else(
                            |e| format!("errno={}", e.raw_os_error()),
                            |()| "ok".into()
                        ),
                        poke.map_or_else(
                            |e| format!("errno={}", e.raw_os_error().unwrap_or(0)),
                            |_| "ok".into()
                        )
                    )
                }
                "scribble" => {
                    // Every route to changing sync state by writing memory:
                    // every page of every sync arena this process maps,
                    // made writable or written through /proc/self/mem.
                    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                    let mem = std::fs::OpenOptions::new()
                        .write(true)
                        .open("/proc/self/mem")
                        .unwrap();
                    let (mut arenas, mut bytes, mut writes, mut protects) = (0, 0, 0, 0);
                    for line in maps.lines().filter(|l| l.contains("objmgr-sync-arena")) {
                        let range = line.split_whitespace().next().unwrap();
                        let (start, end) = range.split_once('-').unwrap();
                        let start = usize::from_str_radix(start, 16).unwrap();
                        let end = usize::from_str_radix(end, 16).unwrap();
                        arenas += 1;
                        bytes += end - start;
                        for at in (start..end).step_by(8) {
                            let poke =
                                std::os::unix::fs::FileExt::write_at(&mem, &[0xFF; 8], at as u64);
                            writes += u32::from(poke.is_ok());
                        }
                        for page in (start..end).step_by(4096) {
                            // SAFETY: mprotect of a page this process maps;
                            // nothing is written through it here.
                            let protect = unsafe {
                                rustix::mm::mprotect(
                                    page as *mut _,
                                    4096,
                                    rustix::mm::MprotectFlags::READ
                                        | rustix::mm::MprotectFlags::WRITE,
                                )
                            };
                            protects += u32::from(protect.is_ok());
                        }
                    }
                    format!(
                        "scribble arenas={arenas} bytes={bytes} writes={writes} mprotects={protects}"
                    )
                }
                "corrupt_timer" => {
                    // A service that writes its own shared timer's page:
                    // due long past, a period no clock can reach.
                    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                    let line = maps
                        .lines()
                        .find(|l| l.contains("objmgr-sync-arena") && l.contains("rw-s"))
                        .expect("a writable solo arena");
                    let start = usize::from_str_radix(line.split('-').next().unwrap(), 16).unwrap();
                    // SAFETY: slot 1's `due` and `period` (offsets 32 and 40
                    // of the 64-byte slot) in a page this process maps
                    // writable; both are atomics that every process only
                    // accesses atomically.
                    let (due, period) = unsafe {
                        (
                            &*((start + 64 + 32) as *const std::sync::atomic::AtomicU64),
                            &*((start + 64 + 40) as *const std::sync::atomic::AtomicU64),
                        )
                    };
                    period.store(u64::MAX, Ordering::SeqCst);
                    due.store(1, Ordering::SeqCst);
                    "corrupted".into()
                }
                "shared_events" => {
                    // Events named in private namespace alias $1 until the
                    // broker says no (or N made).
                    let n: usize = words[2].parse().unwrap();
                    let mut events = Vec::new();
                    let mut refused = String::from("none");
                    for i in 0..n {
                        match Event::create(
                            Some(&format!("{}\\e{i}", words[1])),
                            Reset::Auto,
                            false,
                        ) {
                            Ok(e) => events.push(e),
                            Err(e) => {
                                refused = e.code().0.to_string();
                                break;
                            }
                        }
                    }
                    format!("shared_events made={} refused={refused}", events.len())
                }
                "requeue" => {
                    // An attacker that may only wait: move every thread
                    // sleeping on a shared object it maps (a solo arena's
                    // object, slot 1) onto a futex word of its own, for MS ms.
                    let until = std::time::Instant::now()
                        + Duration::from_millis(words[1].parse().unwrap());
                    let decoy = std::sync::atomic::AtomicU32::new(0);
                    let mut moved = 0;
                    while std::time::Instant::now() < until {
                        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                        for line in maps.lines().filter(|l| l.contains("objmgr-sync-arena")) {
                            let start = line.split('-').next().unwrap();
                            let start = usize::from_str_radix(start, 16).unwrap();
                            // SAFETY: slot 1's state word of a page this
                            // process maps (read-only) for as long as the
                            // script holds the handle; only read here and
                            // handed to the kernel as a futex address.
                            let word =
                                unsafe { &*((start + 64) as *const std::sync::atomic::AtomicU32) };
                            let value = word.load(Ordering::SeqCst);
                            moved += rustix::thread::futex::cmp_requeue(
                                word,
                                rustix::thread::futex::Flags::empty(),
                                0,
                                i32::MAX as u32,
                                &decoy,
                                value,
                            )
                            .unwrap_or(0);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    format!("requeue moved={}", moved.min(1))
                }
                "reopen_rw" => {
                    // The attacker's route around a read-only fd: open it
                    // afresh, writable, through /proc, then map it shared.
                    let fd = sections.last().unwrap().as_fd();
                    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    match rustix::fs::open(
                        &path,
                        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    ) {
                        Err(e) => format!("reopen_rw refused errno={}", e.raw_os_error()),
                        Ok(rw) => match rustix::io::pwrite(&rw, b"X", 0) {
                            Ok(_) => "reopen_rw wrote".into(),
                            Err(e) => {
                                format!("reopen_rw opened write-refused errno={}", e.raw_os_error())
                            }
                        },
                    }
                }
                "raw_map_write" => {
                    // Straight to the kernel, past the library's access check.
                    let fd = sections.last().unwrap().as_fd();
                    // SAFETY: a new shared mapping at a kernel-chosen address,
                    // unmapped at once; nothing reads or writes it.
                    let mapped = unsafe {
                        rustix::mm::mmap(
                            std::ptr::null_mut(),
                            4096,
                            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                            rustix::mm::MapFlags::SHARED,
                            fd,
                            0,
                        )
                    };
                    match mapped {
                        Ok(p) => {
                            // SAFETY: the mapping made just above.
                            unsafe { rustix::mm::munmap(p, 4096).unwrap() };
                            "raw_map_write mapped".into()
                        }
                        Err(e) => format!("raw_map_write refused errno={}", e.raw_os_error()),
                    }
                }
                "size" => format!("size {}", sections.last().unwrap().size()),
                "truncate" => {
                    let fd = sections.last().unwrap().as_fd();
                    match rustix::fs::ftruncate(fd, words[1].parse().unwrap()) {
                        Ok(()) => "truncated".into(),
                        Err(e) => format!("truncate refused errno={}", e.raw_os_error()),
                    }
                }
                "existed" => format!("existed {}", sections.last().unwrap().existed() as u8),
                "bg_wait_event" => {
                    // A thread of its own opens the event and waits forever.
                    let event = Event::open(words[1])?;
                    std::thread::spawn(move || {
                        let ended = match event.wait(None) {
                            Ok(o) => outcome(o),
                            Err(e) => format!("err {} {}", e.code().code(), e.context()),
                        };
                        println!("@@bg {ended}");
                        std::io::Write::flush(&mut std::io::stdout()).unwrap();
                    });
                    "bg waiting".into()
                }
                "hold_waiting" => {
                    // A thread waits forever on object I while the script holds.
                    let object = &objs[words[1].parse::<usize>().unwrap()];
                    std::thread::scope(|scope| {
                        let waiter = scope.spawn(|| {
                            let ended = match objmgr::wait_any(&[object.waitable()], None) {
                                Ok(o) => outcome(o),
                                Err(e) => format!("err {} {}", e.code().code(), e.context()),
                            };
                            println!("@@bg {ended}");
                            std::io::Write::flush(&mut std::io::stdout()).unwrap();
                        });
                        println!("@@holding");
                        std::io::Write::flush(&mut std::io::stdout()).unwrap();
                        let mut line = String::new();
                        let _ = std::io::stdin().lock().read_line(&mut line);
                        waiter.join().unwrap();
                    });
                    "released".into()
                }
                "hold" => {
                    println!("@@holding");
                    let mut line = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut line);
                    input = line.trim().to_owned();
                    "released".into()
                }
                "ns_create" | "ns_open" => {
                    let mut boundary = objmgr::namespace::Boundary::new(words[1]);
                    for sid in words[3].split(',') {
                        boundary.add_sid(objmgr::security::Sid::parse(sid).unwrap());
                    }
                    let namespace = if words[0] == "ns_create" {
                        let sd = words
                            .get(4)
                            .map(|t| objmgr::security::SecurityDescriptor::from_sddl(t).unwrap());
                        objmgr::namespace::PrivateNamespace::create(
                            &boundary,
                            words[2],
                            sd.as_ref(),
                        )?
                    } else {
                        objmgr::namespace::PrivateNamespace::open(&boundary, words[2])?
                    };
                    NAMESPACES.lock().unwrap().push(namespace);
                    "namespace".into()
                }
                "ns_close" => {
                    let namespace = NAMESPACES.lock().unwrap().pop().unwrap();
                    if words[1] == "destroy" {
                        namespace.destroy()?;
                    } else {
                        namespace.close()?;
                    }
                    "closed".into()
                }
                "sleep" => {
                    std::thread::sleep(Duration::from_millis(words[1].parse().unwrap()));
                    "slept".into()
                }
                "whoami" => format!(
                    "uid {} gid {}",
                    rustix::process::getuid().as_raw(),
                    rustix::process::getgid().as_raw()
                ),
                "get_sd" => {
                    let sd = objmgr::handle::object_security(
                        words[1].parse().unwrap(),
                        words[2].parse().unwrap(),
                    )?;
                    format!("sd {}", sd.to_sddl())
                }
                "set_sd" => {
                    let given = objmgr::security::SecurityDescriptor::from_sddl(words[3]).unwrap();
                    let sd = objmgr::handle::set_object_security(
                        words[1].parse().unwrap(),
                        words[2].parse().unwrap(),
                        &given,
                    )?;
                    format!("sd {}", sd.to_sddl())
                }
                "create_sd" | "event_sd" | "mutex_sd" | "semaphore_sd" | "timer_sd" => {
                    // The descriptor is the rest of the line (SDDL has no spaces).
                    let sd = objmgr_proto::security::SecurityDescriptor::from_sddl(
                        &words[2..].join(" "),
                    )
                    .map_err(|e| Error::new(objmgr::Win32Error(1338), e.to_string()))?;
                    if words[0] == "create_sd" {
                        let section = Section::builder()
                            .name(&name(words[1]).unwrap_or_default())
                            .size(65536)
                            .security(sd)
                            .create()?;
                        let existed = section.existed();
                        sections.push(section);
                        format!("create existed={}", existed as u8)
                    } else {
                        let options = CreateOptions {
                            security: Some(sd),
                            ..CreateOptions::default()
                        };
                        let n = name(words[1]);
                        let n = n.as_deref();
                        objs.push(match words[0] {
                            "event_sd" => {
                                Obj::Event(Event::create_with(n, Reset::Manual, false, &options)?)
                            }
                            "mutex_sd" => Obj::Mutex(Mutex::create_with(n, false, &options)?),
                            "timer_sd" => {
                                Obj::Timer(WaitableTimer::create_with(n, Reset::Auto, &options)?)
                            }
                            _ => Obj::Semaphore(Semaphore::create_with(n, 0, 10, &options)?),
                        });
                        format!("created existed={}", objs.last().unwrap().existed() as u8)
                    }
                }
                "event" => {
                    let o =
                        Event::create(name(words[1]).as_deref(), reset(words[2]), words[3] == "1")?;
                    objs.push(Obj::Event(o));
                    format!("event existed={}", objs.last().unwrap().existed() as u8)
                }
                "mutex" => {
                    let o = Mutex::create(name(words[1]).as_deref(), words[2] == "1")?;
                    objs.push(Obj::Mutex(o));
                    format!("mutex existed={}", objs.last().unwrap().existed() as u8)
                }
                "semaphore" => {
                    let o = Semaphore::create(
                        name(words[1]).as_deref(),
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                    )?;
                    objs.push(Obj::Semaphore(o));
                    format!("semaphore existed={}", objs.last().unwrap().existed() as u8)
                }
                "timer" => {
                    let o = WaitableTimer::create(name(words[1]).as_deref(), reset(words[2]))?;
                    objs.push(Obj::Timer(o));
                    format!("timer existed={}", objs.last().unwrap().existed() as u8)
                }
                "open_event" | "open_mutex" | "open_semaphore" | "open_timer" => {
                    let n = name(words[1]).unwrap_or_default();
                    let access = words.get(2).map(|a| u32::from_str_radix(a, 16).unwrap());
                    objs.push(match (words[0], access) {
                        ("open_event", None) => Obj::Event(Event::open(&n)?),
                        ("open_event", Some(a)) => Obj::Event(Event::open_with(&n, a, false)?),
                        ("open_mutex", None) => Obj::Mutex(Mutex::open(&n)?),
                        ("open_mutex", Some(a)) => Obj::Mutex(Mutex::open_with(&n, a, false)?),
                        ("open_semaphore", None) => Obj::Semaphore(Semaphore::open(&n)?),
                        ("open_semaphore", Some(a)) => {
                            Obj::Semaphore(Semaphore::open_with(&n, a, false)?)
                        }
                        (_, None) => Obj::Timer(WaitableTimer::open(&n)?),
                        (_, Some(a)) => Obj::Timer(WaitableTimer::open_with(&n, a, false)?),
                    });
                    "opened".into()
                }
                "set" | "reset" | "pulse" => {
                    let Obj::Event(e) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not an event")
                    };
                    match words[0] {
                        "set" => e.set()?,
                        "reset" => e.reset()?,
                        _ => e.pulse()?,
                    }
                    words[0].into()
                }
                "release" => release(
                    &objs[words[1].parse::<usize>().unwrap()],
                    words.get(2).map_or(1, |n| n.parse().unwrap()),
                )?,
                "wait" => outcome(objmgr::wait_any(
                    &[objs[words[1].parse::<usize>().unwrap()].waitable()],
                    timeout(words[2]),
                )?),
                "wait_any" | "wait_all" => {
                    let list: Vec<&dyn Waitable> = indices(words[1])
                        .iter()
                        .map(|&i| objs[i].waitable())
                        .collect();
                    let f = if words[0] == "wait_any" {
                        objmgr::wait_any
                    } else {
                        objmgr::wait_all
                    };
                    outcome(f(&list, timeout(words[2]))?)
                }
                "signal_wait" => outcome(objmgr::signal_and_wait(
                    objs[words[1].parse::<usize>().unwrap()].waitable(),
                    objs[words[2].parse::<usize>().unwrap()].waitable(),
                    timeout(words[3]),
                )?),
                "settimer" | "cancel" => {
                    let Obj::Timer(t) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a timer")
                    };
                    if words[0] == "cancel" {
                        t.cancel()?;
                    } else {
                        t.set(words[2].parse().unwrap(), words[3].parse().unwrap())?;
                    }
                    words[0].into()
                }
                "closeobj" => {
                    match objs.remove(words[1].parse::<usize>().unwrap()) {
                        Obj::Event(o) => o.close()?,
                        Obj::Mutex(o) => o.close()?,
                        Obj::Semaphore(o) => o.close()?,
                        Obj::Timer(o) => o.close()?,
                        Obj::Process(o) => o.close()?,
                        Obj::Thread(o) => o.close()?,
                    }
                    "closed".into()
                }
                "thread_lock" | "thread_lock_hold" => {
                    let Obj::Mutex(m) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a mutex")
                    };
                    let hold = words[0] == "thread_lock_hold";
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            std::mem::forget(m.lock().unwrap());
                            if hold {
                                println!("@@thread holding");
                                let mut line = String::new();
                                let _ = std::io::stdin().lock().read_line(&mut line);
                            }
                        })
                        .join()
                        .unwrap();
                    });
                    "thread exited".into()
                }
                "requests" => {
                    let status = objmgr::admin::broker_status()?;
                    let total: u64 = status
                        .requests
                        .iter()
                        .filter(|(name, _)| name != "status")
                        .map(|(_, n)| n)
                        .sum();
                    format!("requests {total}")
                }
                "exclusive" => {
                    let (violations, abandoned) = exclusive(
                        &objs,
                        &indices(words[1]),
                        views.last().unwrap(),
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                        words[4].parse().unwrap(),
                    );
                    format!("exclusive violations={violations} abandoned={abandoned}")
                }
                "twait" | "twait_any" | "twait_all" => {
                    // A wait that also says how long it took.
                    let list: Vec<&dyn Waitable> = indices(words[1])
                        .iter()
                        .map(|&i| objs[i].waitable())
                        .collect();
                    let start = std::time::Instant::now();
                    let result = if words[0] == "twait_all" {
                        objmgr::wait_all(&list, timeout(words[2]))?
                    } else {
                        objmgr::wait_any(&list, timeout(words[2]))?
                    };
                    format!("{} after={}", outcome(result), start.elapsed().as_millis())
                }
                "settimer_abs" => {
                    let Obj::Timer(t) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a timer")
                    };
                    let unix = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap();
                    let filetime = (unix.as_nanos() / 100) as i64 + 116_444_736_000_000_000;
                    let ms: i64 = words[2].parse().unwrap();
                    t.set(filetime + ms * 10_000, 0)?;
                    "settimer".into()
                }
                "churn" => {
                    let at = |i: usize| &objs[words[i].parse::<usize>().unwrap()];
                    let (Obj::Event(e), Obj::Semaphore(s), Obj::Mutex(m)) = (at(1), at(2), at(3))
                    else {
                        panic!("churn EVENT SEMAPHORE MUTEX N")
                    };
                    for _ in 0..words[4].parse::<u32>().unwrap() {
                        e.set()?;
                        e.wait(None)?;
                        s.release(1)?;
                        s.wait(None)?;
                        drop(m.lock()?);
                    }
                    "churned".into()
                }
                "many_events" => {
                    let count = |path: &str| std::fs::read_dir(path).map_or(0, |d| d.count());
                    let maps = || {
                        std::fs::read_to_string("/proc/self/maps")
                            .unwrap()
                            .lines()
                            .count()
                    };
                    // Counted from the eighth event on: the connection, its
                    // watcher thread, the first arena and the connection's
                    // page and doorbell (asked for after a few requests) are
                    // there by then.
                    let n: usize = words[1].parse().unwrap();
                    let mut events = Vec::with_capacity(n);
                    for _ in 0..8 {
                        events.push(Event::create(None, Reset::Auto, false)?);
                    }
                    let (fds0, maps0) = (count("/proc/self/fd"), maps());
                    for _ in 8..n {
                        events.push(Event::create(None, Reset::Auto, false)?);
                    }
                    // They all work: signal the last, wait on it.
                    events.last().unwrap().set()?;
                    let last = outcome(events.last().unwrap().wait(Some(Duration::ZERO))?);
                    format!(
                        "many_events fds+={} maps+={} {last}",
                        count("/proc/self/fd") - fds0,
                        maps() - maps0
                    )
                }
                "fork_sleep" => {
                    // SAFETY: the child only calls async-signal-safe functions
                    // (sleep, _exit) before exiting.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        // SAFETY: as above.
                        unsafe {
                            libc::sleep(60);
                            libc::_exit(0);
                        }
                    }
                    format!("forked {pid}")
                }
                "waitv" => format!("waitv {}", objmgr_sync::wait::has_waitv()),
                "nofile_limit" => {
                    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
                    limit.current = Some(words[1].parse().unwrap());
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
                    "nofile_limit".into()
                }
                "nofile" => format!(
                    "nofile {}",
                    rustix::process::getrlimit(rustix::process::Resource::Nofile)
                        .current
                        .map_or("unlimited".to_owned(), |n| n.to_string())
                ),
                "fork_busy" => {
                    // Forks while another thread keeps talking to the broker;
                    // each child must be able to talk to it too.
                    let forks: usize = words[1].parse().unwrap();
                    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let busy = {
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                                let _ = Event::create(None, Reset::Auto, false);
                            }
                        })
                    };
                    let (mut hung, mut failed) = (0, 0);
                    for _ in 0..forks {
                        // SAFETY: fork; the child makes one objmgr call and
                        // leaves with _exit, running no destructor twice.
                        let pid = unsafe { libc::fork() };
                        if pid == 0 {
                            let ok = Event::create(None, Reset::Auto, false).is_ok();
                            // SAFETY: as above.
                            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
                        }
                        let deadline = std::time::Instant::now() + Duration::from_secs(10);
                        let mut status = 0;
                        loop {
                            // SAFETY: polls the child forked above.
                            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                            if done == pid {
                                if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                                    failed += 1;
                                }
                                break;
                            }
                            if std::time::Instant::now() > deadline {
                                // SAFETY: kills and reaps our own hung child.
                                unsafe {
                                    libc::kill(pid, libc::SIGKILL);
                                    libc::waitpid(pid, &mut status, 0);
                                }
                                hung += 1;
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    busy.join().unwrap();
                    format!("fork_busy hung={hung} failed={failed}")
                }
                "create_inh" => {
                    let mut builder = Section::builder()
                        .size(words[2].parse().unwrap())
                        .inheritable(true);
                    if let Some(n) = name(words[1]) {
                        builder = builder.name(&n);
                    }
                    sections.push(builder.create()?);
                    format!("create handle={}", sections.last().unwrap().handle_value())
                }
                "event_inh" => {
                    let options = CreateOptions {
                        inheritable: true,
                        ..CreateOptions::default()
                    };
                    let event = Event::create_with(
                        name(words[1]).as_deref(),
                        reset(words[2]),
                        words[3] == "1",
                        &options,
                    )?;
                    objs.push(Obj::Event(event));
                    format!("event handle={}", objs.last().unwrap().handle_value())
                }
                "adopt_section" => {
                    sections.push(Section::from_handle(value(words[1]))?);
                    "adopted".into()
                }
                "adopt_event" => {
                    objs.push(Obj::Event(Event::from_handle(value(words[1]))?));
                    "adopted".into()
                }
                "spawn" => {
                    let (inherit, breakaway) = (words[1] == "inherit", words[1] == "breakaway");
                    let child = spawn_script(inherit, breakaway, &words[2..].join(" "))?;
                    let line = format!("spawned pid={}", child.process.pid());
                    children.push(child);
                    line
                }
                "job" => {
                    let job = Job::create(name(words[1]).as_deref())?;
                    let line = format!("job existed={}", job.existed() as u8);
                    jobs.push(job);
                    line
                }
                "open_job" => {
                    let access = words.get(2).map_or(0x1F_003F, |a| value(&format!("0x{a}")));
                    jobs.push(Job::open_with(&name(words[1]).unwrap(), access, false)?);
                    "opened job".into()
                }
                "job_limits" => {
                    // FLAGS (hex) ACTIVE MEM_MB PROCESS_MS JOB_MS
                    let num = |i: usize| words[i].parse::<u64>().unwrap();
                    let limits = JobLimits {
                        flags: value(&format!("0x{}", words[2])),
                        active_process_limit: num(3) as u32,
                        process_memory: num(4) << 20,
                        per_process_user_time: num(5) * 10_000,
                        per_job_user_time: num(6) * 10_000,
                        job_memory: 0,
                    };
                    jobs[words[1].parse::<usize>().unwrap()].set_limits(&limits)?;
                    "limits set".into()
                }
                "job_assign" => {
                    let job = &jobs[words[1].parse::<usize>().unwrap()];
                    if words[2] == "self" {
                        job.assign_current()?;
                    } else {
                        let Obj::Process(p) = &objs[words[2].parse::<usize>().unwrap()] else {
                            panic!("not a process")
                        };
                        job.assign(p)?;
                    }
                    "assigned".into()
                }
                "job_terminate" => {
                    jobs[words[1].parse::<usize>().unwrap()]
                        .terminate(words[2].parse().unwrap())?;
                    "job terminated".into()
                }
                "job_wait" => outcome(objmgr::wait_any(
                    &[&jobs[words[1].parse::<usize>().unwrap()]],
                    timeout(words[2]),
                )?),
                "job_pids" => {
                    let (count, pids) = jobs[words[1].parse::<usize>().unwrap()].process_ids()?;
                    let mut pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                    pids.sort();
                    format!("job_pids count={count} pids={}", pids.join(","))
                }
                "job_acct" => {
                    let a = jobs[words[1].parse::<usize>().unwrap()].accounting()?;
                    format!(
                        "job_acct total={} active={} terminated={} user_ms={}",
                        a.total_processes,
                        a.active_processes,
                        a.terminated_processes,
                        a.total_user_time / 10_000
                    )
                }
                "in_job" => {
                    let process = match words[1] {
                        "self" => None,
                        i => match &objs[i.parse::<usize>().unwrap()] {
                            Obj::Process(p) => Some(p),
                            _ => panic!("not a process"),
                        },
                    };
                    let job = match words[2] {
                        "any" => None,
                        j => Some(&jobs[j.parse::<usize>().unwrap()]),
                    };
                    let inside = objmgr::job::is_in_job(process, job)?;
                    format!("in_job {}", if inside { "yes" } else { "no" })
                }
                "burn" => {
                    // Spend MS ms of CPU time (user mode).
                    let start = std::time::Instant::now();
                    let mut x = 0u64;
                    while start.elapsed() < Duration::from_millis(words[1].parse().unwrap()) {
                        for i in 0..10_000u64 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                        }
                        std::hint::black_box(x);
                    }
                    "burned".into()
                }
                "alloc" => {
                    // Commit MB MiB of private memory (and touch it).
                    let mut v: Vec<u8> = Vec::new();
                    match v.try_reserve_exact(words[1].parse::<usize>().unwrap() << 20) {
                        Ok(()) => {
                            v.resize(v.capacity(), 1);
                            "alloc ok".into()
                        }
                        Err(_) => "alloc failed".into(),
                    }
                }
                "mypid" => format!("pid {}", std::process::id()),
                "fopen" => {
                    // PATH r|w|rw SHARE(hex) [inherit]
                    use objmgr_proto::access::{FILE_READ_DATA, FILE_WRITE_DATA};
                    let (read, write) = (words[2].contains('r'), words[2].contains('w'));
                    let raw = std::fs::OpenOptions::new()
                        .read(read)
                        .write(write)
                        .create(write)
                        .truncate(false)
                        .open(words[1])
                        .map_err(|e| {
                            Error::new(
                                objmgr::Win32Error(e.raw_os_error().unwrap_or(0) as u32),
                                "open",
                            )
                        })?;
                    let access = if read { FILE_READ_DATA } else { 0 }
                        | if write { FILE_WRITE_DATA } else { 0 };
                    let share = value(&format!("0x{}", words[3]));
                    let file = objmgr::file::File::register(
                        raw,
                        access,
                        share,
                        words.get(4) == Some(&"inherit"),
                    )?;
                    let line = format!("fopen value={}", file.handle_value());
                    files.push(file);
                    line
                }
                "fopen_path" => {
                    // An O_PATH fd (opens nothing) offered as a readable file.
                    use std::os::unix::fs::OpenOptionsExt;
                    let raw = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_PATH)
                        .open(words[1])
                        .unwrap();
                    let file = objmgr::file::File::register(
                        raw,
                        objmgr_proto::access::FILE_READ_DATA,
                        0,
                        false,
                    )?;
                    files.push(file);
                    "fopen_path registered".into()
                }
                "ffdmode" => {
                    let f = &files[words[1].parse::<usize>().unwrap()];
                    let flags = rustix::fs::fcntl_getfl(f.as_std()).unwrap();
                    let mode = flags & rustix::fs::OFlags::ACCMODE;
                    let name = if flags.contains(rustix::fs::OFlags::PATH) {
                        "path"
                    } else if mode == rustix::fs::OFlags::RDWR {
                        "rw"
                    } else if mode == rustix::fs::OFlags::WRONLY {
                        "wo"
                    } else {
                        "ro"
                    };
                    format!("ffdmode {name}")
                }
                "fdcount" => {
                    // How many of this process's descriptors are the file at PATH.
                    let want = std::fs::canonicalize(words[1]).unwrap();
                    let count = std::fs::read_dir("/proc/self/fd")
                        .unwrap()
                        .flatten()
                        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == want))
                        .count();
                    format!("fdcount {count}")
                }
                "adopt_file" => {
                    files.push(objmgr::file::File::from_handle(value(words[1]))?);
                    "adopted file".into()
                }
                "flock" => {
                    let f = &files[words[1].parse::<usize>().unwrap()];
                    f.lock(
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                        words[4] == "x",
                        words[5] == "wait",
                    )?;
                    "locked".into()
                }
                "funlock" => {
                    let f = &files[words[1].parse::<usize>().unwrap()];
                    f.unlock(words[2].parse().unwrap(), words[3].parse().unwrap())?;
                    "unlocked".into()
                }
                "fseek" => {
                    let f = &files[words[1].parse::<usize>().unwrap()];
                    f.seek(std::io::SeekFrom::Start(words[2].parse().unwrap()))?;
                    "seeked".into()
                }
                "fwrite" => {
                    let f = &files[words[1].parse::<usize>().unwrap()];
                    format!("wrote {}", f.write(words[2].as_bytes())?)
                }
                "fread" => {
                    let f = &files[words[1].parse::<usize>().unwrap()];
                    let mut buf = vec![0u8; words[2].parse().unwrap()];
                    let n = f.read(&mut buf)?;
                    format!("read {}", String::from_utf8_lossy(&buf[..n]))
                }
                "fsetlen" => {
                    files[words[1].parse::<usize>().unwrap()].set_len(words[2].parse().unwrap())?;
                    "length set".into()
                }
                "fclose" => {
                    files.remove(words[1].parse::<usize>().unwrap()).close()?;
                    "closed file".into()
                }
                "fdelete" => {
                    objmgr::file::delete(std::path::Path::new(words[1]))?;
                    "deleted".into()
                }
                "fopen_doc" => {
                    // PATH SHARE: read-write, FILE_FLAG_DELETE_ON_CLOSE.
                    use objmgr_proto::access::{FILE_READ_DATA, FILE_WRITE_DATA};
                    let raw = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(words[1])
                        .unwrap();
                    let file = objmgr::file::File::register_delete_on_close(
                        raw,
                        FILE_READ_DATA | FILE_WRITE_DATA,
                        value(&format!("0x{}", words[2])),
                        false,
                        std::path::Path::new(words[1]),
                    )?;
                    files.push(file);
                    "fopen_doc ok".into()
                }
                "exists" => format!("exists {}", std::path::Path::new(words[1]).exists() as u8),
                "close_job" => {
                    jobs.remove(words[1].parse::<usize>().unwrap()).close()?;
                    "closed job".into()
                }
                "job_count" => {
                    // Wait (10 s at most) until job J has N running members.
                    let job = &jobs[words[1].parse::<usize>().unwrap()];
                    let want: u32 = words[2].parse().unwrap();
                    let mut count = job.process_ids()?.0;
                    for _ in 0..500 {
                        if count == want {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        count = job.process_ids()?.0;
                    }
                    format!("job_count {count}")
                }
                "child_finish" => {
                    let child = children.pop().unwrap();
                    // Bounded, so that a child that never ends fails the test.
                    if child.process.wait(Some(Duration::from_secs(120)))? == WaitOutcome::Timeout {
                        child.process.terminate(1)?;
                        panic!("a spawned child did not end within 120 s");
                    }
                    let mut text = String::new();
                    std::io::Read::read_to_string(
                        &mut std::fs::File::from(child.output),
                        &mut text,
                    )
                    .unwrap();
                    for l in text.lines().filter_map(|l| l.strip_prefix("@@")) {
                        println!("@@child {l}");
                    }
                    format!("child exit={}", child.process.exit_code()?)
                }
                "child_kill9" => {
                    let pid = children.last().unwrap().process.pid();
                    // SAFETY: kill(2) of our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    "killed".into()
                }
                "terminate" => {
                    children
                        .last()
                        .unwrap()
                        .process
                        .terminate(words[1].parse().unwrap())?;
                    "terminated".into()
                }
                "exit_code" => format!(
                    "exit_code {}",
                    children.last().unwrap().process.exit_code()?
                ),
                "child_process" => {
                    let pid = children.last().unwrap().process.pid();
                    objs.push(Obj::Process(Process::open(pid, 0x1F_FFFF)?));
                    "child process".into()
                }
                "open_process" => {
                    let access = words.get(2).map_or(0x1F_FFFF, |a| value(&format!("0x{a}")));
                    objs.push(Obj::Process(Process::open(value(words[1]), access)?));
                    "opened process".into()
                }
                "dup_self" => {
                    duplicated = dup(
                        None,
                        value(words[1]),
                        None,
                        Some(value(&format!("0x{}", words[2]))),
                        false,
                        false,
                    )?;
                    format!("dup value={duplicated}")
                }
                "dup_into" | "dup_from" => {
                    let Obj::Process(other) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a process")
                    };
                    let access = (words[3] != "same").then(|| value(&format!("0x{}", words[3])));
                    let close = words[4..].contains(&"close");
                    let inherit = words[4..].contains(&"inherit");
                    let (from, to) = if words[0] == "dup_into" {
                        (None, Some(other))
                    } else {
                        (Some(other), None)
                    };
                    duplicated = dup(from, value(words[2]), to, access, inherit, close)?;
                    format!("dup value={duplicated}")
                }
                "handle_info" => format!(
                    "flags {}",
                    objmgr::handle::handle_information(value(words[1]))?
                ),
                "set_handle_info" => {
                    objmgr::handle::set_handle_information(
                        value(words[1]),
                        value(words[2]),
                        value(words[3]),
                    )?;
                    "set".into()
                }
                "thread_spawn" => {
                    let code: u32 = words[1].parse().unwrap();
                    let ms: u64 = words[2].parse().unwrap();
                    objs.push(Obj::Thread(objmgr::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(ms));
                        code
                    })?));
                    "thread started".into()
                }
                "exitcode" => match &objs[words[1].parse::<usize>().unwrap()] {
                    Obj::Process(p) => format!("exitcode {}", p.exit_code()?),
                    Obj::Thread(t) => format!("exitcode {}", t.exit_code()?),
                    _ => panic!("not a process or thread"),
                },
                "events_at_fd_limit" => {
                    // The page is asked for now (before a DuplicateHandle),
                    // while descriptors are free; the doorbell at a later
                    // request, when none is.
                    let first = Event::create(None, Reset::Auto, false)?;
                    let copy = dup(None, first.handle_value(), None, None, false, false)?;
                    let mut fillers = Vec::new();
                    while let Ok(fd) = rustix::fs::open(
                        "/dev/null",
                        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    ) {
                        fillers.push(fd);
                    }
                    let n: usize = words[1].parse().unwrap();
                    let mut events = Vec::new();
                    for _ in 0..n {
                        let event = Event::create(None, Reset::Auto, false)?;
                        event.set()?;
                        event.wait(Some(Duration::ZERO))?;
                        events.push(event);
                    }
                    drop(fillers);
                    let copy = Event::from_handle(copy)?;
                    first.set()?;
                    let last = outcome(copy.wait(Some(Duration::ZERO))?);
                    format!("events_at_fd_limit {} {last}", events.len())
                }
                "fork_check" => {
                    // Whether this process maps its connection's page.
                    let page = || {
                        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                        if maps.contains("objmgr-close-ring") {
                            "yes"
                        } else {
                            "no"
                        }
                    };
                    let old = objs.last().unwrap().handle_value();
                    std::io::Write::flush(&mut std::io::stdout()).unwrap();
                    // SAFETY: fork (`raw`: a bare clone system call, which
                    // runs no `pthread_atfork` handler); the child runs
                    // objmgr calls (which take locks no other thread of this
                    // script process holds) and leaves with _exit.
                    let pid = unsafe {
                        if words.get(1) == Some(&"raw") {
                            libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) as libc::pid_t
                        } else {
                            libc::fork()
                        }
                    };
                    if pid == 0 {
                        let child_page = page();
                        // As a daemon does: closes everything it inherited,
                        // then opens files of its own, which take the lowest
                        // numbers (the library's copies' among them).
                        let mine: Vec<_> = if words.contains(&"closefrom") {
                            // SAFETY: closes descriptors 3 and up; nothing in
                            // this child uses them before the library's
                            // next call, which must notice.
                            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
                            (0..16)
                                .map(|_| {
                                    let fd = rustix::fs::memfd_create(
                                        "mine",
                                        rustix::fs::MemfdFlags::CLOEXEC,
                                    )
                                    .unwrap();
                                    let st = rustix::fs::fstat(&fd).unwrap();
                                    (fd, st.st_ino)
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let old_object = match objmgr::wait_any(
                            &[objs.last().unwrap().waitable()],
                            Some(Duration::ZERO),
                        ) {
                            Ok(_) => "usable".to_owned(),
                            Err(e) => format!("err{}", e.code().code()),
                        };
                        let old_value = match Event::from_handle(old) {
                            Ok(_) => "open".to_owned(),
                            Err(e) => format!("err{}", e.code().code()),
                        };
                        let fresh = Event::create(None, Reset::Auto, true)
                            .and_then(|e| e.wait(Some(Duration::ZERO)).map(outcome))
                            .unwrap_or_else(|e| format!("err{}", e.code().code()));
                        // Still open, and still the files it opened.
                        let kept = mine.iter().all(|(fd, ino)| {
                            rustix::fs::fstat(fd).is_ok_and(|st| st.st_ino == *ino)
                        });
                        // The parent connection's copies are closed (the
                        // placeholders the fork handler put in them).
                        let placeholders = std::fs::read_dir("/proc/self/fd")
                            .unwrap()
                            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                            .filter(|l| l.to_string_lossy().contains("objmgr-forked"))
                            .count();
                        let verdict = match (mine.is_empty(), kept) {
                            (true, _) => "-",
                            (false, true) => "kept",
                            (false, false) => "lost",
                        };
                        println!(
                            "@@forkchild page={child_page} object={old_object} value={old_value} new={fresh} mine={verdict} placeholders={placeholders}"
                        );
                        std::io::Write::flush(&mut std::io::stdout()).unwrap();
                        // SAFETY: leaves the forked child without running the
                        // parent's destructors twice.
                        unsafe { libc::_exit(0) };
                    }
                    let mut status = 0;
                    // SAFETY: waits for the child forked above.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    format!("forked status={status} page={}", page())
                }
                "dup_pseudo" => {
                    let v = dup(None, u32::MAX, None, None, false, false)?;
                    let me = Process::from_handle(v)?;
                    format!(
                        "pseudo is_me={}",
                        me.pid() == std::process::id() && v != u32::MAX
                    )
                }
                "thread_exit_order" => {
                    // A thread takes a mutex, and a thread-local destructor of
                    // its releases it; the thread ends while this thread
                    // waits on its object. Once that wait returns, the
                    // destructor has run (Windows runs a thread's
                    // destructors before it signals the thread): the mutex
                    // is free, not abandoned.
                    struct ReleaseAtExit(Option<Mutex>);
                    impl Drop for ReleaseAtExit {
                        fn drop(&mut self) {
                            if let Some(mutex) = self.0.take() {
                                let _ = mutex.release();
                            }
                        }
                    }
                    thread_local! {
                        static AT_EXIT: std::cell::RefCell<ReleaseAtExit> =
                            const { std::cell::RefCell::new(ReleaseAtExit(None)) };
                    }
                    // `keep`: no destructor releases it, so it must be
                    // abandoned by the time the thread's object is signaled.
                    let rounds: usize = words[1].parse().unwrap();
                    let release_at_exit = words[2] == "release";
                    let expected = if release_at_exit {
                        WaitOutcome::Object(0)
                    } else {
                        WaitOutcome::Abandoned(0)
                    };
                    let mut wrong = 0;
                    for round in 0..rounds {
                        let name = format!("Local\\exit-order-{round}");
                        let mutex = Mutex::create(Some(&name), false)?;
                        let (ready_tx, ready) = std::sync::mpsc::channel();
                        let (go, go_rx) = std::sync::mpsc::channel::<()>();
                        let thread = objmgr::thread::spawn(move || {
                            // Touched before the thread's first sync call, so
                            // destroyed after anything that call sets up.
                            AT_EXIT.with(|_| ());
                            let mine = Mutex::open(&name).unwrap();
                            std::mem::forget(mine.lock().unwrap());
                            if release_at_exit {
                                AT_EXIT.with(|at_exit| at_exit.borrow_mut().0 = Some(mine));
                            }
                            ready_tx.send(()).unwrap();
                            go_rx.recv().unwrap();
                            0
                        })?;
                        ready.recv().unwrap();
                        go.send(()).unwrap();
                        thread.wait(Some(Duration::from_secs(10)))?;
                        if mutex.wait(Some(Duration::ZERO))? != expected {
                            wrong += 1;
                        } else {
                            mutex.release()?;
                        }
                    }
                    format!("thread_exit_order wrong={wrong}")
                }
                "foreign_thread_owning" => {
                    // A plain std thread takes mutex `words[1]`, keeps it,
                    // hands out its own thread handle, and ends.
                    let name = name(words[1]).unwrap();
                    let value = std::thread::spawn(move || -> Result<u32, Error> {
                        let mutex = Mutex::create(Some(&name), false)?;
                        std::mem::forget(mutex.lock()?);
                        let value = dup(None, u32::MAX - 1, None, None, false, false)?;
                        drop(mutex); // the handle; ownership stays with the thread
                        Ok(value)
                    })
                    .join()
                    .unwrap()?;
                    objs.push(Obj::Thread(objmgr::thread::Thread::from_handle(value)?));
                    "thread handle".into()
                }
                "dup_current_thread" | "foreign_thread" => {
                    // GetCurrentThread() duplicated: by this (main) thread,
                    // or by a plain std thread that then ends.
                    let dup = || {
                        dup(
                            None,
                            u32::MAX - 1,
                            None,
                            None,
                            false,
                            true, // DUPLICATE_CLOSE_SOURCE: a no-op on a pseudo-handle
                        )
                    };
                    let value = if words[0] == "dup_current_thread" {
                        dup()?
                    } else {
                        std::thread::spawn(dup).join().unwrap()?
                    };
                    let thread = objmgr::thread::Thread::from_handle(value)?;
                    let same_process = thread.process_id() == std::process::id();
                    objs.push(Obj::Thread(thread));
                    format!("thread handle same_process={same_process}")
                }
                "terminate_obj" => {
                    let Obj::Process(p) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a process")
                    };
                    p.terminate(words[2].parse().unwrap())?;
                    "terminated".into()
                }
                "exit" => {
                    std::io::Write::flush(&mut std::io::stdout()).unwrap();
                    std::process::exit(words[1].parse().unwrap())
                }
                other => panic!("unknown script command {other}"),
            })
        })();
        match result {
            Ok(line) => println!("@@{line}"),
            Err(e) => println!(
                "@@err {} {}",
                e.code().code(),
                e.context().replace('\n', " ")
            ),
        }
    }
}

/// `DuplicateHandle` as the scripts ask for it: the argument list the
/// deprecated form keeps (it forwards to the typed `duplicate`).
#[allow(deprecated)]
fn dup(
    source_process: Option<&Process>,
    source: u32,
    target_process: Option<&Process>,
    access: Option<u32>,
    inheritable: bool,
    close_source: bool,
) -> objmgr::Result<u32> {
    objmgr::handle::duplicate_handle(
        source_process,
        source,
        target_process,
        access,
        inheritable,
        close_source,
    )
}
