//! Chaos: a mixed multi-process workload while the broker is killed
//! (`SIGKILL`) every few seconds, on a private broker of its own.
//!
//! ```sh
//! cargo build --release -p objmgr-cli --bins --examples
//! target/release/examples/broker_chaos 600 4    # seconds, worker processes
//! ```
//!
//! Each worker opens (or creates) one named section, one named semaphore of
//! two permits, one named mutex and a ring of named auto-reset events, then
//! loops: take a permit and count the holders in the section (never more
//! than two), take the mutex and count its holders (never more than one),
//! then set the next worker's event and wait for its own without a timeout.
//! Every 64 rounds it opens the section again by name and checks that the
//! name still means its object. Each also holds a file of its own, open for
//! reading and writing and sharing only reading: every round writes the
//! round's number into it and reads it back, and every 64 rounds another
//! open for writing must be refused by that share mode, whichever broker
//! serves it; an unnamed section over that file gets the same number through
//! its view (which the file must read back), and every 64 rounds a new view.
//! Worker 0 also holds a job, which no broker
//! takes back, so its session ends with every kill (fail-stop, and it takes
//! no semaphore permit, which a dying session would lose): it opens
//! everything again from the new broker, which the others' handles keep.
//!
//! It reports, and exits non-zero unless all are zero:
//! - **lost sessions**: a worker but 0 whose objects died with a broker
//!   (each new broker must take their handles back);
//! - **lost names**: an open by name that found nothing;
//! - **split objects**: an open by name that found another object than the
//!   worker's own (a token the creator writes in the section);
//! - **hung waits**: a wait that took more than 10 s (a broker's recovery
//!   takes 3 s at most);
//! - **permit violations**: more than two holders of the semaphore, or more
//!   than one of the mutex, at once; a file that lost what was written, or
//!   an open its share mode should have refused; a section over the file
//!   whose views are not the file;
//! - **silent workers**: a worker that printed nothing for 10 s.
//!
//! It also counts, without failing, the calls cut by a kill: a call that
//! acts outside the broker (on the system broker, another user's wait or
//! signal) that the broker was in the very middle of when it was killed
//! fails with `ERROR_BROKEN_PIPE`, since it may have been done (one it had
//! not begun is sent to the next broker, one it had finished gives its
//! outcome); the session goes on, and the worker opens its objects again.
//! More cuts than kills fail the run.
//!
//! With `--system` (as root) it runs the system-wide broker instead, and
//! plays its service manager: each killed broker is started again 100 ms
//! later on the same socket. The objects are named in `Global\` (every
//! user may do anything with them), and every other worker runs as another
//! user (in the broker's administrators group, so that it may create
//! them): its handles to the first worker's objects are another user's,
//! whose waits and signals go through the broker, and which the broker that
//! takes over checks against its ledger (files too: each worker's open of
//! its own). Sections over files do not come back to the system broker, so
//! there the workers do not map their files.
//!
//! ```sh
//! target/release/examples/broker_chaos 600 4 --system
//! ```

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use objmgr::{Event, MapAccess, Reset, Section, Semaphore, View};

const PERMITS: u32 = 2;
const HUNG: Duration = Duration::from_secs(10);
/// Where in the section: the creator's token, and the holders' count.
const TOKEN: usize = 0;
const HOLDERS: usize = 64;
const MUTEX_HOLDERS: usize = 128;
/// The worker whose session cannot be taken back (see [`Session::job`]).
const FAIL_STOP_WORKER: usize = 0;

/// One broker session's objects, as a worker holds them.
struct Session {
    /// Worker 0 holds a job, which no broker takes back: its session is
    /// fail-stop, and it opens everything again after each kill.
    job: Option<objmgr::job::Job>,
    _section: Section,
    view: View,
    token: u64,
    permits: Semaphore,
    lock: objmgr::Mutex,
    mine: Event,
    next: Event,
    /// A file of the worker's own.
    file: MappedFile,
}

/// A file of the worker's own, open for reading and writing, which others
/// may only read, with an unnamed section over it and a view of that (not
/// on the system broker, to which sections over files do not come back).
struct MappedFile {
    file: objmgr::file::File,
    mapped: Option<(Section, View)>,
}

/// The run's directory (the broker's socket and the workers' files).
const DIR_ENV: &str = "CHAOS_DIR";
/// Set for a run against the system broker.
const SYSTEM_ENV: &str = "CHAOS_SYSTEM";

fn on_system_broker() -> bool {
    std::env::var_os(SYSTEM_ENV).is_some()
}

/// The name of one of the shared objects: per user on a per-user broker,
/// machine-wide on the system broker.
fn shared_name(base: &str) -> String {
    match on_system_broker() {
        true => format!("Global\\chaos-{base}"),
        false => format!("Local\\chaos-{base}"),
    }
}

/// How the shared objects are made: on the system broker, with a
/// descriptor that lets every user do anything with them.
fn create_options() -> objmgr::CreateOptions {
    objmgr::CreateOptions {
        security: on_system_broker().then(everyone_may_do_anything),
        ..objmgr::CreateOptions::default()
    }
}

fn everyone_may_do_anything() -> objmgr_proto::security::SecurityDescriptor {
    objmgr_proto::security::SecurityDescriptor::from_sddl("D:(A;;GA;;;WD)").expect("valid SDDL")
}

/// The worker's file, in the run's directory.
fn file_path(id: usize) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(std::env::var_os(DIR_ENV).expect("set"));
    dir.join(format!("file-{id}"))
}

/// Opens the worker's file (read and write), sharing only reading.
fn open_file(id: usize, share: u32) -> objmgr::Result<objmgr::file::File> {
    use objmgr_proto::access::{FILE_READ_DATA, FILE_WRITE_DATA};
    let raw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(file_path(id))
        .map_err(|e| {
            let code = objmgr::Win32Error::from_errno(e.raw_os_error().unwrap_or(0));
            objmgr::Error::new(code, e.to_string())
        })?;
    objmgr::file::File::register(raw, FILE_READ_DATA | FILE_WRITE_DATA, share, false)
}

fn open_session(id: usize, workers: usize) -> objmgr::Result<Session> {
    let before = objmgr::admin::broker_status()?.pid;
    let mut section = Section::builder().name(&shared_name("mem")).size(4096);
    if on_system_broker() {
        section = section.security(everyone_may_do_anything());
    }
    let section = section.create()?;
    let view = section.map(MapAccess::WRITE)?;
    let token = view.atomic_u64(TOKEN)?;
    if !section.existed() {
        let fresh = (u64::from(std::process::id()) << 32) | u64::from(before) | 1;
        token.store(fresh, Ordering::SeqCst);
    }
    let options = create_options();
    let permits = Semaphore::create_with(Some(&shared_name("sem")), PERMITS, PERMITS, &options)?;
    let mine_name = shared_name(&format!("ev-{id}"));
    let mine = Event::create_with(Some(&mine_name), Reset::Auto, false, &options)?;
    let next_name = shared_name(&format!("ev-{}", (id + 1) % workers));
    let next = Event::create_with(Some(&next_name), Reset::Auto, false, &options)?;
    // The creator writes the token right after creating: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    while token.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let lock = objmgr::Mutex::create_with(Some(&shared_name("mutex")), false, &options)?;
    let job = if id == FAIL_STOP_WORKER {
        Some(objmgr::job::Job::create(None)?)
    } else {
        None
    };
    let file = open_file(id, objmgr_proto::file::FILE_SHARE_READ)?;
    let mapped = match on_system_broker() {
        true => None,
        false => {
            let mapped = Section::builder()
                .size(4096)
                .protection(objmgr::PageProtection::ReadWrite)
                .create_from_file(file.as_std())?;
            let view = mapped.map(MapAccess::WRITE)?;
            Some((mapped, view))
        }
    };
    let file = MappedFile { file, mapped };
    let after = objmgr::admin::broker_status()?.pid;
    let token = token.load(Ordering::SeqCst);
    if before == after {
        // Opened from one broker: the object every worker must share.
        println!("session broker={before} token={token}");
    }
    Ok(Session {
        job,
        _section: section,
        view,
        token,
        permits,
        lock,
        mine,
        next,
        file,
    })
}

/// One round of work; an error means the session is lost.
fn round(id: usize, session: &Session, rounds: u64) -> objmgr::Result<()> {
    if session.job.is_none() {
        take_a_permit(session, rounds)?;
    }
    let started = Instant::now();
    session.lock.wait(None)?;
    let owners = session.view.atomic_u32(MUTEX_HOLDERS)?;
    let now = owners.fetch_add(1, Ordering::SeqCst) + 1;
    if now > 1 {
        println!("violation mutex_holders={now}");
    }
    owners.fetch_sub(1, Ordering::SeqCst);
    let released = session.lock.release();
    report_wait(started);
    released?;
    check_file(id, session, &session.file, rounds)?;
    if rounds.is_multiple_of(64) {
        check_name(session);
    }
    let started = Instant::now();
    session.next.set()?;
    let waited = session.mine.wait(None);
    report_wait(started);
    waited?;
    Ok(())
}

/// The file goes on: what was written is there, also through the mapping;
/// every 64 rounds a new view of the section is the file's, and the share
/// mode still refuses a second writer.
fn check_file(id: usize, session: &Session, file: &MappedFile, rounds: u64) -> objmgr::Result<()> {
    file.file.write_at(0, &rounds.to_le_bytes())?;
    let mut back = [0u8; 8];
    file.file.read_at(0, &mut back)?;
    if back != rounds.to_le_bytes() {
        println!("violation file");
    }
    if let Some((mapped, view)) = &file.mapped {
        view.write_at(8, &rounds.to_le_bytes())?;
        file.file.read_at(8, &mut back)?;
        if back != rounds.to_le_bytes() {
            println!("violation mapping");
        }
        if rounds.is_multiple_of(64) {
            let view = mapped.map(MapAccess::READ)?;
            view.read_at(8, &mut back)?;
            if back != rounds.to_le_bytes() {
                println!("violation mapping");
            }
        }
    }
    if rounds.is_multiple_of(64) {
        check_share(id, session);
    }
    Ok(())
}

/// Takes a permit of the semaphore, counts its holders, gives it back. (A
/// permit taken by a session that dies is lost, as on Windows: the
/// fail-stop worker takes none.)
fn take_a_permit(session: &Session, rounds: u64) -> objmgr::Result<()> {
    let started = Instant::now();
    session.permits.wait(None)?;
    let holders = session.view.atomic_u32(HOLDERS)?;
    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
    if now > PERMITS {
        println!("violation holders={now}");
    }
    if rounds.is_multiple_of(7) {
        std::thread::sleep(Duration::from_micros(200));
    }
    holders.fetch_sub(1, Ordering::SeqCst);
    let released = session.permits.release(1);
    report_wait(started);
    released?;
    Ok(())
}

/// Opens the worker's file again for writing: its open's share mode must
/// refuse it, whichever broker asks.
fn check_share(id: usize, session: &Session) {
    use objmgr_proto::file::{FILE_SHARE_READ, FILE_SHARE_WRITE};
    match open_file(id, FILE_SHARE_READ | FILE_SHARE_WRITE) {
        // Unless the session had ended meanwhile (then its open is gone
        // with it, and this one was the first of a new session).
        Ok(_) if session_lives(session) => println!("violation share"),
        Ok(_) => {}
        Err(e) if e.code() == objmgr::error::ERROR_SHARING_VIOLATION => {}
        Err(_) => {} // the broker died under the open: the next round tells
    }
}

/// Whether `session` is still the process's: a poll of its mutex checks
/// the handle's session before anything else (a file's read would not: it
/// never asks the broker).
fn session_lives(session: &Session) -> bool {
    match session.lock.wait(Some(Duration::ZERO)) {
        Ok(objmgr::WaitOutcome::Timeout) => true,
        Ok(_) => session.lock.release().is_ok(),
        Err(_) => false,
    }
}

/// Opens the section by name: it must be the worker's own object.
fn check_name(session: &Session) {
    match Section::open(&shared_name("mem"), MapAccess::READ)
        .and_then(|s| s.map(MapAccess::READ))
        .and_then(|v| Ok(v.atomic_u64(TOKEN)?.load(Ordering::SeqCst)))
    {
        Ok(token) if token == session.token => {}
        Ok(token) => println!("split mine={} found={token}", session.token),
        Err(e) if e.code() == objmgr::error::ERROR_FILE_NOT_FOUND => println!("lostname"),
        Err(_) => {} // the broker died under the open: the next round tells
    }
}

fn report_wait(started: Instant) {
    let took = started.elapsed();
    if took > HUNG {
        println!("hung ms={}", took.as_millis());
    }
}

fn worker(id: usize, workers: usize) {
    let mut rounds = 0u64;
    let mut last_beat = Instant::now();
    loop {
        let session = match open_session(id, workers) {
            Ok(session) => session,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let failed = loop {
            if let Err(e) = round(id, &session, rounds) {
                break e;
            }
            rounds += 1;
            if last_beat.elapsed() > Duration::from_secs(1) {
                println!("beat rounds={rounds}");
                last_beat = Instant::now();
            }
        };
        if id == FAIL_STOP_WORKER {
            println!("failstop rounds={rounds}");
        } else if on_system_broker()
            && failed.code() == objmgr::error::ERROR_BROKEN_PIPE
            && session_lives(&session)
        {
            // The session came back, but a call the dead broker was in
            // the middle of failed (it may have been done): the worker
            // lets go of the mutex if that call gave it, signals the next
            // worker in case that call was its signal, and goes on with
            // its objects opened again.
            while session.lock.release().is_ok() {}
            let _ = session.next.set();
            println!("cut rounds={rounds} why={failed}");
        } else {
            println!("lost rounds={rounds} why={failed}");
        }
    }
}

/// Starts the system-wide broker on `socket` (its members of group `admins`
/// may create `Global\\` names) and returns once it serves.
fn start_system_broker(
    broker: &std::path::Path,
    socket: &std::path::Path,
    admins: u32,
) -> Result<Child, Box<dyn std::error::Error>> {
    let mut child = Command::new(broker)
        .arg("--system")
        .arg("--socket")
        .arg(socket)
        .args([
            "--idle-timeout",
            "never",
            "--admin-group",
            &admins.to_string(),
        ])
        // (Its log goes to this program's stderr when `OBJMGR_LOG` asks.)
        .env(
            "OBJMGR_LOG",
            std::env::var("OBJMGR_LOG").unwrap_or_else(|_| "off".into()),
        )
        .stdout(Stdio::piped())
        .spawn()?;
    let out = BufReader::new(child.stdout.take().expect("piped"));
    for line in out.lines() {
        if line?.contains(objmgr_server::READY_LINE) {
            return Ok(child);
        }
    }
    Err("the system broker exited before it was ready".into())
}

/// Pids of the brokers serving `socket`: processes running `broker` (the
/// program, not just a command line that names it) with `socket` in their
/// arguments.
fn broker_pids(broker: &std::path::Path, socket: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(entry.path().join("exe")).ok().as_deref() != Some(broker) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(socket) {
            pids.push(pid);
        }
    }
    pids
}

#[derive(Default)]
struct Tally {
    tokens: HashMap<u32, HashSet<u64>>,
    hung: u64,
    violations: u64,
    lost: u64,
    /// Calls that failed with `ERROR_BROKEN_PIPE` because the broker was
    /// killed in the middle of them (their outcome is unknown), the
    /// session going on.
    cut: u64,
    fail_stops: u64,
    lost_names: u64,
    split_opens: u64,
    rounds: HashMap<usize, u64>,
    last_heard: HashMap<usize, Instant>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        worker(args[2].parse()?, args[3].parse()?);
        return Ok(());
    }
    let system = args.iter().any(|a| a == "--system");
    let numbers: Vec<&String> = args[1..].iter().filter(|a| *a != "--system").collect();
    let seconds: u64 = numbers.first().map_or(Ok(600), |s| s.parse())?;
    let workers: usize = numbers.get(1).map_or(Ok(4), |s| s.parse())?;
    if system && !rustix::process::geteuid().is_root() {
        return Err("--system runs the system-wide broker: run as root".into());
    }
    let exe = std::env::current_exe()?;
    let broker = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("objmgrd"))
        .and_then(|path| path.canonicalize().ok())
        .ok_or("objmgrd is not next to the examples directory: build the bins too")?;
    let dir = std::env::temp_dir().join(format!("objmgr-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // (The system broker's socket is for every user.)
    let mode = if system { 0o755 } else { 0o700 };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
    let socket = dir.join("broker.sock");
    let socket_text = socket.display().to_string();
    // The workers' files, made here (the directory is root's): every
    // worker, of either user, may open its own.
    for id in 0..workers {
        let path = dir.join(format!("file-{id}"));
        std::fs::write(&path, [0u8; 16])?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    }
    // Another user, in the broker's administrators group (ids nobody has).
    let other = 3_900_000 + std::process::id() % 100_000;
    let mut service = match system {
        true => Some(start_system_broker(&broker, &socket, other)?),
        false => None,
    };

    let (lines, incoming) = mpsc::channel::<(usize, String)>();
    let mut children: Vec<Child> = Vec::new();
    for id in 0..workers {
        let mut command = Command::new(&exe);
        command
            .args(["worker", &id.to_string(), &workers.to_string()])
            .env(DIR_ENV, &dir)
            .stdout(Stdio::piped());
        if system {
            command
                .env_remove("OBJMGR_SOCKET")
                .env("OBJMGR_SYSTEM_SOCKET", &socket)
                .env(SYSTEM_ENV, "1");
            if id % 2 == 1 {
                use std::os::unix::process::CommandExt;
                command.uid(other).gid(other);
            }
        } else {
            command
                .env("OBJMGR_SOCKET", &socket)
                .env("OBJMGR_BROKER", &broker)
                .env("OBJMGR_IDLE_TIMEOUT_MS", "60000");
        }
        let mut child = command.spawn()?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if lines.send((id, line)).is_err() {
                    return;
                }
            }
        });
        children.push(child);
    }

    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tally = Tally::default();
    let mut kills = 0u64;
    let mut silent = 0u64;
    let mut next_kill = Instant::now() + Duration::from_secs(2);
    let mut pause = 1u64;
    while Instant::now() < end {
        while let Ok((id, line)) = incoming.recv_timeout(Duration::from_millis(50)) {
            tally.last_heard.insert(id, Instant::now());
            let field = |key: &str| {
                line.split(' ')
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            match line.split(' ').next() {
                Some("session") => {
                    let broker = field("broker=") as u32;
                    tally
                        .tokens
                        .entry(broker)
                        .or_default()
                        .insert(field("token="));
                }
                Some("hung") => tally.hung += 1,
                Some("lostname") => tally.lost_names += 1,
                Some("failstop") => {
                    tally.fail_stops += 1;
                    tally.rounds.insert(id, field("rounds="));
                }
                Some("split") => tally.split_opens += 1,
                Some("violation") => {
                    eprintln!("worker {id}: {line}");
                    tally.violations += 1;
                }
                Some("lost") => {
                    eprintln!("worker {id}: {line}");
                    tally.lost += 1;
                    tally.rounds.insert(id, field("rounds="));
                }
                Some("cut") => {
                    eprintln!("worker {id}: {line}");
                    tally.cut += 1;
                    tally.rounds.insert(id, field("rounds="));
                }
                Some("beat") => {
                    tally.rounds.insert(id, field("rounds="));
                }
                _ => {}
            }
            if Instant::now() >= next_kill {
                break;
            }
        }
        for id in 0..workers {
            let heard = tally.last_heard.get(&id).copied().unwrap_or(started);
            if heard.elapsed() > HUNG {
                silent += 1;
                tally.last_heard.insert(id, Instant::now());
                eprintln!("broker_chaos: worker {id} silent for {HUNG:?}");
            }
        }
        if Instant::now() >= next_kill {
            for pid in broker_pids(&broker, &socket_text) {
                // SAFETY: a signal to the broker this program started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                kills += 1;
            }
            if let Some(dead) = &mut service {
                // As its service manager would: a new one 100 ms later.
                let _ = dead.wait();
                std::thread::sleep(Duration::from_millis(100));
                *dead = start_system_broker(&broker, &socket, other)?;
            }
            // Every 1 to 4 seconds.
            pause = pause % 4 + 1;
            next_kill = Instant::now() + Duration::from_secs(pause);
            print!(".");
            std::io::stdout().flush()?;
        }
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    for pid in broker_pids(&broker, &socket_text) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    if let Some(mut last) = service {
        let _ = last.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);

    let split = tally.tokens.values().filter(|t| t.len() > 1).count() + tally.split_opens as usize;
    let rounds: u64 = tally.rounds.values().sum();
    println!();
    println!(
        "broker_chaos: {seconds} s, {workers} workers, {kills} broker kills, {} sessions seen, {rounds} rounds",
        tally.tokens.len()
    );
    println!("  lost sessions:      {}", tally.lost);
    println!(
        "  calls cut by a kill: {} (the broker was in the middle of them: ERROR_BROKEN_PIPE)",
        tally.cut
    );
    println!("  lost names:         {}", tally.lost_names);
    println!("  split objects:      {split}");
    println!("  hung waits:         {}", tally.hung);
    println!("  permit violations:  {}", tally.violations);
    println!("  silent workers:     {silent}");
    println!(
        "  fail-stop sessions: {} (worker {FAIL_STOP_WORKER} holds a job, which no broker takes back)",
        tally.fail_stops
    );
    let failures = tally.lost + tally.lost_names + tally.hung + tally.violations + silent;
    if kills == 0 {
        return Err("no broker was killed: run it for longer".into());
    }
    if split + failures as usize > 0 {
        return Err("chaos found a failure".into());
    }
    // A kill cuts only what the broker was in the very middle of (a few
    // stores for a remote operation): more cuts than kills means calls are
    // lost, not cut.
    if tally.cut > kills {
        return Err("more calls cut than brokers killed: calls are being lost".into());
    }
    Ok(())
}
