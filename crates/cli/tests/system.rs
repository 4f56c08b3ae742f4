//! The system-wide broker (`objmgrd --system`): one namespace for the
//! machine, with real other users (the tests run as root and switch uids).
//! `Global\` is shared by every user and governed by descriptors, creating
//! there needs the privilege, `Local\` is per user, and processes it spawns
//! run as the user who asked.

mod common;
#[path = "common/script.rs"]
mod script;

use common::{
    ScriptChild, TestBroker, as_user, is_root, output_or_hang, result_lines, start_until, unused_id,
};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Entry point for child processes (see `sections.rs`).
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

/// A system broker for one test, on a socket in the test's directory.
struct SystemBroker {
    test: TestBroker,
    socket: PathBuf,
    daemon: Child,
}

impl SystemBroker {
    fn start() -> SystemBroker {
        Self::start_with_quota("")
    }

    fn start_with_quota(quota: &str) -> SystemBroker {
        let test = TestBroker::new();
        let socket = test.dir.join("system.sock");
        let daemon = Self::launch(&socket, quota);
        SystemBroker {
            test,
            socket,
            daemon,
        }
    }

    fn launch(socket: &std::path::Path, quota: &str) -> Child {
        start_until(
            Command::new(env!("CARGO_BIN_EXE_objmgrd"))
                .arg("--system")
                .arg("--socket")
                .arg(socket)
                .env("OBJMGR_LOG", "off")
                .env("OBJMGR_QUOTA", quota),
            "objmgrd ready",
        )
        .0
    }

    /// Kills the broker (`SIGKILL`) and starts another on its socket, as
    /// its service manager would.
    fn crash_and_restart(&mut self) {
        self.crash();
        // Its clients notice, and wait for the new one.
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.restart();
    }

    /// Kills the broker (`SIGKILL`).
    fn crash(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }

    /// Starts a broker on the socket of one that died.
    fn restart(&mut self) {
        self.daemon = Self::launch(&self.socket, "");
    }

    /// A script run by `uid` (root when `None`) against the system broker,
    /// found as every process finds it (no `OBJMGR_SOCKET`).
    fn script(&self, uid: Option<u32>, script: &[&str]) -> Command {
        let mut cmd = self.test.script(script);
        cmd.env_remove("OBJMGR_SOCKET")
            .env("OBJMGR_SYSTEM_SOCKET", &self.socket);
        if let Some(uid) = uid {
            as_user(&mut cmd, uid);
        }
        cmd
    }

    fn run(&self, uid: Option<u32>, script: &[&str]) -> Vec<String> {
        result_lines(&output_or_hang(&mut self.script(uid, script), "a client"))
    }

    /// What `objmgr stat NAME` says (as root) on this broker.
    fn stat(&self, name: &str) -> String {
        let out = output_or_hang(
            Command::new(env!("CARGO_BIN_EXE_objmgr"))
                .args(["stat", name])
                .env_remove("OBJMGR_SOCKET")
                .env("OBJMGR_SYSTEM_SOCKET", &self.socket),
            "objmgr stat",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A script that stops at each `hold` until released.
    fn spawn(&self, uid: Option<u32>, script: &[&str]) -> ScriptChild {
        common::spawn_script(&mut self.script(uid, script))
    }

    /// A script that stops at `hold`; returns once it holds.
    fn hold(&self, uid: Option<u32>, script: &[&str]) -> Child {
        start_until(&mut self.script(uid, script), "@@holding").0
    }
}

impl Drop for SystemBroker {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_service_shares_read_only_memory_with_every_user() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let (a, b) = (unused_id(0), unused_id(1));
    // The service (root) grants everyone read access to Global\telemetry.
    let mut service = broker.hold(
        None,
        &[
            "create_sd Global\\\\telemetry D:(A;;GR;;;WD)",
            "map all",
            "write 0 reading-42",
            "hold",
        ],
    );
    for user in [a, b] {
        let lines = broker.run(
            Some(user),
            &[
                "open Global\\\\telemetry write",
                "open Global\\\\telemetry read",
                "map read",
                "read 0 10",
                "fdmode",
                "reopen_rw",
                "force_write",
            ],
        );
        assert!(lines[0].starts_with("err 5 "), "uid {user}: {lines:?}");
        assert_eq!(lines[1], "open", "uid {user}: {lines:?}");
        assert_eq!(lines[3], "read reading-42", "uid {user}: {lines:?}");
        assert_eq!(lines[4], "fdmode ro");
        assert_eq!(
            lines[5], "reopen_rw refused errno=13",
            "uid {user}: {lines:?}"
        );
        assert_eq!(lines[6], "force_write mprotect=errno=13 mem=errno=5");
    }
    let _ = service.kill();
    let _ = service.wait();
}

#[test]
fn every_users_processes_come_back_to_a_restarted_system_broker_with_what_they_had() {
    if !is_root() {
        return;
    }
    let mut broker = SystemBroker::start();
    let (a, b) = (unused_id(30), unused_id(31));
    // The service (root) shares memory everyone may read and an event
    // everyone may only wait on.
    let mut service = broker.spawn(
        None,
        &[
            "create_sd Global\\\\board D:(A;;GR;;;WD)",
            "map all",
            "write 0 before",
            "event_sd Global\\\\posted D:(A;;0x100000;;;WD)",
            "hold",
            "set_sd 8 4 D:(A;;GA;;;SY)",
            "hold",
            "write 0 after",
            "set 0",
            "hold",
        ],
    );
    service.wait_for("holding");
    // A user reads it, waits on it, and has a section of its own.
    let mut user = broker.spawn(
        Some(a),
        &[
            "open Global\\\\board read",
            "map read",
            "read 0 6",
            "open_event Global\\\\posted 100000",
            "create Local\\\\own 4096",
            "map all",
            "write 0 mine",
            "hold",
            "wait 0 20000",
            "open Global\\\\board read",
            "map read",
            "read 0 5",
            "set 0",
            "hold",
        ],
    );
    user.wait_for("holding");
    assert_eq!(user.lines[2], "read before", "{:?}", user.lines);
    // The service lets nobody else open the event any more: the handle
    // the user has keeps its access, as on Windows (also across the crash).
    service.release();
    let sd = service.wait_for("sd ");
    assert!(sd.starts_with("sd D:"), "{:?}", service.lines);
    assert!(sd.contains("(A;;GA;;;SY)"), "{sd}");
    service.wait_for("holding");
    // The user waits for the event (through the broker: it may not change
    // it itself) while the broker dies and another takes its place.
    user.release();
    std::thread::sleep(std::time::Duration::from_millis(300));
    broker.crash_and_restart();
    // Both come back: the service's signal reaches the user's wait, and
    // the name is still that memory, for it and for a user who opens it now.
    service.release();
    assert_eq!(user.wait_for("wait"), "wait object 0", "{:?}", user.lines);
    user.wait_for("holding");
    let waited = user.lines.iter().position(|line| line == "wait object 0");
    let lines = &user.lines[waited.expect("waited") + 1..];
    assert_eq!(
        (&*lines[0], &*lines[2]),
        ("open", "read after"),
        "{lines:?}"
    );
    // Its handle still may only wait.
    assert!(lines[3].starts_with("err 5 "), "{lines:?}");
    let other = broker.run(
        Some(b),
        &[
            "open Global\\\\board read",
            "map read",
            "read 0 5",
            "open_event Global\\\\posted 100000",
        ],
    );
    assert_eq!(other[2], "read after", "{other:?}");
    // The event's new descriptor came back with it.
    assert!(other[3].starts_with("err 5 "), "{other:?}");
    // A user's own section came back in its own session only.
    let own = broker.run(Some(a), &["open Local\\\\own read", "map read", "read 0 4"]);
    assert_eq!(own[2], "read mine", "{own:?}");
    let theirs = broker.run(Some(b), &["open Local\\\\own read"]);
    assert!(theirs[0].starts_with("err 2 "), "{theirs:?}");
    // When every holder is gone, so are the objects.
    user.release();
    let _ = user.finish();
    service.release();
    let _ = service.finish();
    let gone = broker.run(None, &["open Global\\\\board read"]);
    assert!(gone[0].starts_with("err 2 "), "{gone:?}");
}

#[test]
fn a_shared_mutex_a_thread_held_through_a_restart_is_abandoned_when_the_thread_exits() {
    if !is_root() {
        return;
    }
    let mut broker = SystemBroker::start();
    let a = unused_id(32);
    let mut service = broker.spawn(
        None,
        &[
            "mutex_sd Global\\\\lock D:(A;;GA;;;WD)",
            "hold",
            "wait 0 20000",
        ],
    );
    service.wait_for("holding");
    // Another user's thread takes the mutex (the broker takes it for it)
    // and holds it while the broker dies and another takes its place.
    let mut user = broker.spawn(
        Some(a),
        &[
            "open_mutex Global\\\\lock",
            "thread_lock_hold 0",
            "wait 0 0",
            "release 0",
            "hold",
        ],
    );
    user.wait_for("thread holding");
    broker.crash_and_restart();
    // Both processes are back when the mutex has their two handles again.
    let back = || {
        broker
            .stat("Global\\lock")
            .lines()
            .any(|l| l.split_whitespace().eq(["handles:", "2"]))
    };
    for _ in 0..250 {
        if back() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(back(), "{}", broker.stat("Global\\lock"));
    // The thread exits owning it: abandoned, for its own process and for
    // the service alike.
    user.release();
    assert_eq!(user.wait_for("thread exited"), "thread exited");
    assert_eq!(user.wait_for("wait"), "wait abandoned 0");
    assert_eq!(user.wait_for("release"), "released");
    user.wait_for("holding");
    service.release();
    assert_eq!(service.wait_for("wait"), "wait object 0");
    user.release();
    let _ = user.finish();
    let _ = service.finish();
}

#[test]
fn a_shared_mutex_whose_owner_dies_while_no_broker_runs_is_abandoned() {
    if !is_root() {
        return;
    }
    let mut broker = SystemBroker::start();
    let a = unused_id(33);
    let mut service = broker.spawn(
        None,
        &[
            "mutex_sd Global\\\\held D:(A;;GA;;;WD)",
            "hold",
            "wait 0 20000",
        ],
    );
    service.wait_for("holding");
    // Another user's process takes the mutex (through the broker) ...
    let mut owner = broker.spawn(Some(a), &["open_mutex Global\\\\held", "wait 0 0", "hold"]);
    owner.wait_for("holding");
    assert_eq!(owner.lines[1], "wait object 0", "{:?}", owner.lines);
    // ... and dies while no broker runs.
    broker.crash();
    owner.kill9();
    broker.restart();
    // The new broker reaps what it owned: the service gets the mutex,
    // abandoned, without a timeout.
    service.release();
    assert_eq!(service.wait_for("wait"), "wait abandoned 0");
    let _ = service.finish();
}

#[test]
fn a_users_open_file_comes_back_to_a_restarted_system_broker_and_still_keeps_others_out() {
    if !is_root() {
        return;
    }
    let mut broker = SystemBroker::start();
    let a = unused_id(34);
    let path = broker.test.dir.join("shared-file");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let path = path.display().to_string();
    // A user opens the file sharing nothing, and writes through it.
    let mut user = broker.spawn(
        Some(a),
        &[
            &format!("fopen {path} rw 0"),
            "fwrite 0 before",
            "hold",
            "fwrite 0 -after",
            "hold",
        ],
    );
    user.wait_for("holding");
    broker.crash_and_restart();
    // Its open came back: another process (of the same user) is still kept
    // out, and the handle goes on writing where it was.
    let other = format!("fopen {path} rw 7");
    let mut shut_out = None;
    for _ in 0..100 {
        let lines = broker.run(Some(a), &[&other]);
        if !lines[0].starts_with("err 1237 ") {
            shut_out = Some(lines);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let shut_out = shut_out.expect("the recovery ends");
    assert!(shut_out[0].starts_with("err 32 "), "{shut_out:?}");
    user.release();
    assert_eq!(user.wait_for("wrote"), "wrote 6");
    user.release();
    let _ = user.finish();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "before-after");
}

#[test]
fn global_needs_the_privilege_and_local_is_per_user() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let (a, b) = (unused_id(2), unused_id(3));
    let lines = broker.run(Some(a), &["create Global\\\\squat 4096"]);
    assert!(
        lines[0].starts_with("err 5 ") && lines[0].contains("SeCreateGlobalPrivilege"),
        "{lines:?}"
    );
    let mut holder = broker.hold(Some(a), &["create_sd Local\\\\mine D:(A;;GA;;;WD)", "hold"]);
    // A's other processes see it; B has a Local\ of its own.
    assert_eq!(broker.run(Some(a), &["open Local\\\\mine read"]), ["open"]);
    let lines = broker.run(
        Some(b),
        &["open Local\\\\mine read", "create Local\\\\mine 4096"],
    );
    assert!(lines[0].starts_with("err 2 "), "{lines:?}");
    assert_eq!(lines[1], "create existed=0");
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn other_users_wait_on_shared_sync_objects_but_change_them_only_as_their_handles_allow() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let a = unused_id(4);
    // The service (root) shares an event everyone may only wait on, and a
    // mutex and a semaphore everyone may use fully.
    let mut service = broker.spawn(
        None,
        &[
            "event_sd Global\\\\ready D:(A;;0x100000;;;WD)",
            "mutex_sd Global\\\\lock D:(A;;GA;;;WD)",
            "semaphore_sd Global\\\\slots D:(A;;GA;;;WD)",
            "event - manual 1",
            "hold",
            "set 0",
            "hold",
            "wait 1 10000",
            "release 2 1",
        ],
    );
    service.wait_for("holding");
    let mut user = broker.spawn(
        Some(a),
        &[
            "open_event Global\\\\ready",
            "open_event Global\\\\ready 100000",
            "set 0",
            "reset 0",
            "pulse 0",
            "scribble",
            "wait 0 0",
            "hold",
            "wait 0 20000",
            "open_mutex Global\\\\lock",
            "wait 1 1000",
            "wait 1 0",
            "release 1",
            "release 1",
            "release 1",
            "open_semaphore Global\\\\slots",
            "release 2 3",
            "wait 2 0",
            "wait_all 1,2 0",
            "release 1",
            "scribble",
            "thread_lock 1",
            "wait 1 0",
            "open_semaphore Global\\\\slots 100000",
            "release 3 1",
            "hold",
        ],
    );
    user.wait_for("holding");
    // Every write is refused, by the library and by the broker alike: with
    // SYNCHRONIZE alone, only waiting is allowed.
    assert!(user.lines[0].starts_with("err 5 "), "{:?}", user.lines);
    assert_eq!(user.lines[1], "opened");
    for (line, what) in user.lines[2..5].iter().zip(["set", "reset", "pulse"]) {
        assert!(line.starts_with("err 5 "), "{what}: {:?}", user.lines);
    }
    // It maps one page, read-only: the event, nothing of root's domain;
    // no write reaches it by any route.
    assert_eq!(
        user.lines[5],
        "scribble arenas=1 bytes=4096 writes=0 mprotects=0"
    );
    assert_eq!(user.lines[6], "wait timeout");
    // A waiter that sleeps is woken by the service's signal.
    user.release();
    std::thread::sleep(std::time::Duration::from_millis(300));
    service.release();
    assert_eq!(user.wait_for("wait"), "wait object 0");
    // Mutexes and semaphores: taken by waiting, released, counted, in
    // wait-all too, all through the broker.
    user.wait_for("holding");
    let lines = &user.lines[9..];
    assert_eq!(
        lines[..15],
        [
            "wait object 0",
            "opened",
            "wait object 0",
            "wait object 0",
            "released",
            "released",
            "err 288 releasing mutex handle 0x8: not the owner",
            "opened",
            "released previous=0",
            "wait object 0",
            "wait object 0",
            "released",
            "scribble arenas=3 bytes=12288 writes=0 mprotects=0",
            "thread exited",
            "wait abandoned 0",
        ]
        .map(str::to_owned),
        "{lines:?}"
    );
    // A handle that may only wait cannot release a semaphore either.
    assert_eq!(lines[15], "opened");
    assert!(lines[16].starts_with("err 5 "), "{lines:?}");
    // The user's process dies owning the mutex: the service gets it,
    // abandoned; the semaphore kept the count the user left (3 - 2).
    user.kill9();
    service.release();
    let lines = service.finish();
    assert_eq!(
        lines[lines.len() - 2..],
        ["wait abandoned 0", "released previous=1"]
    );
}

#[test]
fn timers_across_users_and_waiters_that_die_or_are_moved_away() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let a = unused_id(16);
    let mut service = broker.spawn(
        None,
        &[
            "timer_sd Global\\\\tick D:(A;;GA;;;WD)",
            "event_sd Global\\\\bell D:(A;;0x100000;;;WD)(A;;GA;;;SY)",
            "hold",
            "twait 1 30000",
        ],
    );
    service.wait_for("holding");
    // Another user arms the timer (through the broker) and waits for it.
    let lines = broker.run(
        Some(a),
        &[
            "open_timer Global\\\\tick",
            "settimer 0 -500000 0",
            "wait 0 5000",
            "wait 0 0",
            "settimer 0 -100000000 0",
            "cancel 0",
            "wait 0 300",
        ],
    );
    assert_eq!(
        lines,
        [
            "opened",
            "settimer",
            "wait object 0",
            "wait timeout",
            "settimer",
            "cancel",
            "wait timeout"
        ]
    );
    // A waiter of another user is counted while it waits, and no longer
    // once it is killed.
    let mut waiter = broker.spawn(
        Some(a),
        &["open_event Global\\\\bell 100000", "hold", "wait 0 inf"],
    );
    waiter.wait_for("holding");
    waiter.release();
    let waiters = |expected: &str| {
        let shows = || {
            broker
                .stat("Global\\bell")
                .lines()
                .any(|l| l.split_whitespace().eq(["waiters:", expected]))
        };
        for _ in 0..100 {
            if shows() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("waiters {expected}: {}", broker.stat("Global\\bell"));
    };
    waiters("1");
    waiter.kill9();
    waiters("0");
    // A user who may only wait moves the service's sleeping thread off the
    // event's futex word (FUTEX_CMP_REQUEUE needs only read access); the
    // service still sees the signal, not its 30 s timeout.
    service.release();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let attack = broker.run(
        Some(a),
        &["open_event Global\\\\bell 100000", "requeue 1000"],
    );
    assert_eq!(attack, ["opened", "requeue moved=1"]);
    assert_eq!(
        broker.run(None, &["open_event Global\\\\bell", "set 0"]),
        ["opened", "set"]
    );
    let woke = service.wait_for("wait");
    assert!(woke.starts_with("wait object 0 after="), "{woke}");
    let after: u64 = woke.rsplit('=').next().unwrap().parse().unwrap();
    assert!(after < 20_000, "{woke}");
}

#[test]
fn shared_state_a_service_corrupts_or_overuses_harms_only_its_own_objects() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let a = unused_id(17);
    // The service writes nonsense into its own timer's page; another user
    // waits on it through the broker, which must neither hang nor fail.
    let mut service = broker.spawn(
        None,
        &[
            "timer_sd Global\\\\odd D:(A;;GA;;;WD)",
            "corrupt_timer",
            "hold",
        ],
    );
    service.wait_for("holding");
    let lines = broker.run(
        Some(a),
        &["open_timer Global\\\\odd", "wait 0 2000", "wait 0 0"],
    );
    assert_eq!(lines, ["opened", "wait object 0", "wait timeout"]);
    assert!(broker.stat("Global\\odd").contains("not armed"));
    // Each shared object costs the broker a page, a mapping and a
    // descriptor: a user gets only so many.
    let lines = broker.run(
        Some(a),
        &[
            &format!("ns_create many priv S-1-22-1-{a}"),
            "shared_events priv 5000",
        ],
    );
    assert_eq!(
        lines[1], "shared_events made=4096 refused=1450",
        "{lines:?}"
    );
    drop(service);
}

#[test]
fn a_pending_delete_is_done_with_the_deleting_users_rights() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let (a, b) = (unused_id(18), unused_id(19));
    // A directory everyone may write: user a's file there.
    let open_dir = broker.test.dir.join("shared-dir");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&broker.test.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = open_dir.join("mine.dat").to_string_lossy().into_owned();
    let mut holder = broker.spawn(
        Some(a),
        &[&format!("fopen {file} rw 7"), "hold", "fclose 0", "hold"],
    );
    holder.wait_for("holding");
    let lines = broker.run(
        Some(a),
        &[&format!("fdelete {file}"), &format!("exists {file}")],
    );
    assert_eq!(lines, ["deleted", "exists 1"]);
    holder.release();
    holder.wait_for("holding");
    let mut gone = false;
    for _ in 0..250 {
        if !std::path::Path::new(&file).exists() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone, "the broker did not remove the pending name");
    holder.release();
    holder.finish();
    // Root's file in root's directory: another user may not delete it,
    // pending or not.
    let root_file = broker
        .test
        .dir
        .join("roots.dat")
        .to_string_lossy()
        .into_owned();
    std::fs::write(&root_file, b"x").unwrap();
    std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut root_holder = broker.spawn(None, &[&format!("fopen {root_file} r 7"), "hold"]);
    root_holder.wait_for("holding");
    let lines = broker.run(Some(b), &[&format!("fdelete {root_file}")]);
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    root_holder.release();
    root_holder.finish();
    assert!(std::path::Path::new(&root_file).exists());
}

#[test]
fn a_process_never_gets_another_users_own_sync_objects() {
    if !is_root() {
        return;
    }
    // Objects a user did not name in a shared namespace live in that
    // user's own domain, whose state is mapped writable: root may hand a
    // handle to one to another user's process, which cannot take it.
    let broker = SystemBroker::start();
    let (a, b) = (unused_id(14), unused_id(15));
    let mut owner = broker.spawn(Some(a), &["event - manual 0", "hold"]);
    owner.wait_for("holding");
    let mut other = broker.spawn(Some(b), &["event - manual 0", "hold", "adopt_event $IN"]);
    other.wait_for("holding");
    let lines = broker.run(
        None,
        &[
            &format!("open_process {}", owner.child.id()),
            &format!("open_process {}", other.child.id()),
            "dup_from 0 4 same",
            "dup_into 1 $D same",
        ],
    );
    let value = lines[3]
        .strip_prefix("dup value=")
        .unwrap_or_else(|| panic!("{lines:?}"));
    other.release_with(value);
    other.wait_for("released");
    let line = other.wait_for("");
    assert!(
        line.starts_with("err 5 ") && line.contains("own domain"),
        "{line}"
    );
}

#[test]
fn processes_it_spawns_run_as_the_user_who_asked_and_users_cannot_stop_it() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let a = unused_id(5);
    let lines = broker.run(Some(a), &["spawn noinherit whoami", "child_finish"]);
    assert_eq!(lines[1], format!("child uid {a} gid {a}"), "{lines:?}");
    let stop = output_or_hang(
        as_user(
            Command::new(env!("CARGO_BIN_EXE_objmgr"))
                .args(["broker", "stop"])
                .env("OBJMGR_SYSTEM_SOCKET", &broker.socket)
                .env_remove("OBJMGR_SOCKET"),
            a,
        ),
        "objmgr broker stop",
    );
    assert!(!stop.status.success());
    assert!(
        String::from_utf8_lossy(&stop.stderr).contains("only root"),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    // Root may.
    let out = Command::new(env!("CARGO_BIN_EXE_objmgr"))
        .args(["broker", "stop"])
        .env("OBJMGR_SYSTEM_SOCKET", &broker.socket)
        .env_remove("OBJMGR_SOCKET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_socket_activated_broker_serves_on_the_socket_it_was_given() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // What systemd does: make and listen on the socket, start the broker with
    // it as fd 3 and LISTEN_PID/LISTEN_FDS saying so.
    let test = TestBroker::new();
    let listener = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::empty(),
        None,
    )
    .unwrap();
    rustix::net::bind(
        &listener,
        &rustix::net::SocketAddrUnix::new(&test.socket).unwrap(),
    )
    .unwrap();
    rustix::net::listen(&listener, 16).unwrap();
    let raw = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --socket \"$1\" --idle-timeout never",
        env!("CARGO_BIN_EXE_objmgrd"),
    ])
    .arg(&test.socket)
    .env("OBJMGR_LOG", "off")
    .stdout(Stdio::piped());
    // SAFETY: dup2 in the forked child before exec, async-signal-safe, on
    // a descriptor the parent keeps open until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut daemon, _) = start_until(&mut cmd, "objmgrd ready");
    drop(listener);
    assert_eq!(
        test.run(&["create Local\\\\activated 4096"]),
        ["create existed=0"]
    );
    assert!(test.objmgr(&["broker", "stop"]).status.success());
    let status = daemon.wait().unwrap();
    assert!(status.success());
    // The socket is systemd's: left where it was.
    assert!(common::exists(&test.socket));
}

#[test]
fn a_handle_duplicated_into_a_waiting_child_gets_only_what_the_child_may_have() {
    if !is_root() {
        return;
    }
    // The child has not connected yet: the wider access is checked against
    // what the child runs as (the user), never against the broker (root).
    let broker = SystemBroker::start();
    let a = unused_id(6);
    let mut service = broker.hold(
        None,
        &["create_sd Global\\\\readable D:(A;;GR;;;WD)", "hold"],
    );
    let lines = broker.run(
        Some(a),
        &[
            "open Global\\\\readable read",
            "spawn noinherit sleep 2000",
            "child_process",
            "dup_into 0 $H 6",
            "dup_into 0 $H 4",
            "terminate 1",
        ],
    );
    assert!(lines[3].starts_with("err 5 "), "{lines:?}");
    assert!(lines[4].starts_with("dup value="), "{lines:?}");
    let _ = service.kill();
    let _ = service.wait();
}

#[test]
fn other_users_local_names_are_not_listed() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start();
    let (a, b) = (unused_id(7), unused_id(8));
    let mut holder = broker.hold(Some(a), &["create Local\\\\private-name 4096", "hold"]);
    let objmgr_as = |uid: u32, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_objmgr"));
        cmd.args(args)
            .env("OBJMGR_SYSTEM_SOCKET", &broker.socket)
            .env_remove("OBJMGR_SOCKET");
        let out = output_or_hang(as_user(&mut cmd, uid), "objmgr");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let path = format!("\\Sessions\\{}\\BaseNamedObjects\\private-name", a + 1);
    assert!(objmgr_as(a, &["ls"]).contains("private-name"));
    assert!(!objmgr_as(b, &["ls"]).contains("private-name"));
    assert!(objmgr_as(b, &["stat", &path]).contains("ERROR_FILE_NOT_FOUND"));
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_squatter_cannot_take_a_services_private_namespace() {
    if !is_root() {
        return;
    }
    // The service's boundary holds its own user's SID: another user can
    // neither create that namespace first nor open it.
    let broker = SystemBroker::start();
    let (service_uid, squatter) = (unused_id(9), unused_id(10));
    let squat = broker.run(
        Some(squatter),
        &[&format!("ns_create svc x S-1-22-1-{service_uid}")],
    );
    assert!(squat[0].starts_with("err 5 "), "{squat:?}");
    let mut service = broker.hold(
        Some(service_uid),
        &[
            &format!("ns_create svc priv S-1-22-1-{service_uid}"),
            "create priv\\\\data 4096",
            "hold",
        ],
    );
    let lines = broker.run(
        Some(squatter),
        &[&format!("ns_open svc priv S-1-22-1-{service_uid}")],
    );
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    let lines = broker.run(
        Some(service_uid),
        &[
            &format!("ns_open svc mine S-1-22-1-{service_uid}"),
            "open mine\\\\data read",
        ],
    );
    assert_eq!(lines, ["namespace", "open"]);
    let _ = service.kill();
    let _ = service.wait();
}

#[test]
fn one_users_processes_share_a_quota_of_connections() {
    if !is_root() {
        return;
    }
    let broker = SystemBroker::start_with_quota("user-connections=2");
    let (a, b) = (unused_id(11), unused_id(12));
    let mut first = broker.hold(Some(a), &["create - 4096", "hold"]);
    let mut second = broker.hold(Some(a), &["create - 4096", "hold"]);
    let third = broker.run(Some(a), &["create - 4096"]);
    assert!(third[0].starts_with("err 1816 "), "{third:?}");
    // Another user, and root, are not held back.
    assert_eq!(
        broker.run(Some(b), &["create - 4096"]),
        ["create existed=0"]
    );
    assert_eq!(broker.run(None, &["create - 4096"]), ["create existed=0"]);
    for child in [&mut first, &mut second] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn the_system_broker_listens_only_in_roots_directory() {
    if !is_root() {
        return;
    }
    let test = TestBroker::new();
    let users = test.dir.join("users");
    std::fs::create_dir(&users).unwrap();
    std::os::unix::fs::chown(&users, Some(unused_id(13)), Some(unused_id(13))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_objmgrd"))
        .arg("--system")
        .arg("--socket")
        .arg(users.join("system.sock"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("directory of root's"), "{stderr}");
    assert!(!common::exists(&users.join("system.sock")));
}
