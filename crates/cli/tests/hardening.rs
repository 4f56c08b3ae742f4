//! Safe on a shared machine: other local users (real other uids, which the
//! tests switch to as root) try to impersonate, plant, squat, hold locks
//! and write through read-only handles, and get nowhere.
//!
//! Tests that need another uid skip (with a note) when not run as root.

mod common;
#[path = "common/script.rs"]
mod script;

use common::{
    TestBroker, as_user, exists, is_root, output_or_hang, result_lines, start_until, unused_id,
};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The environment variable that makes a child play the attacker.
const ATTACK_ENV: &str = "OBJMGR_TEST_ATTACK";

/// Entry point for child processes: a script of objmgr operations, or an
/// attacker's role.
#[test]
fn child_process_entry() {
    if let Ok(role) = std::env::var(ATTACK_ENV) {
        attack(&role);
    } else if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

/// The attacker's roles:
/// - `listen PATH`: make PATH's directory (mode 0777) if missing, listen on
///   PATH as a fake broker, print `@@listening`, and after a line on stdin
///   print `@@connections=N bytes=M`: what victims sent it.
/// - `flock DIR`: hold an exclusive `flock` on DIR, print `@@locked`, and
///   keep it until stdin closes.
fn attack(role: &str) {
    let (verb, path) = role.split_once(' ').expect("role and path");
    let path = Path::new(path);
    match verb {
        "listen" => {
            let dir = path.parent().unwrap();
            if !dir.exists() {
                std::fs::create_dir(dir).unwrap();
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            }
            let listener = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::SEQPACKET,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .unwrap();
            rustix::net::bind(&listener, &SocketAddrUnix::new(path).unwrap()).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
            rustix::net::listen(&listener, 16).unwrap();
            println!("@@listening");
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let (mut connections, mut bytes) = (0, 0);
            while let Ok(conn) =
                rustix::net::accept_with(&listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)
            {
                connections += 1;
                let mut buf = [0u8; 4096];
                while let Ok(n) = rustix::io::read(&conn, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    bytes += n;
                }
            }
            println!("@@connections={connections} bytes={bytes}");
        }
        "flock" => {
            let dir = rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive).unwrap();
            println!("@@locked");
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
        }
        other => panic!("unknown attack {other}"),
    }
}

/// A running attacker.
struct Attacker {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl Attacker {
    fn start(id: u32, role: &str) -> Attacker {
        let mut cmd = common::child_entry();
        cmd.env(ATTACK_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = as_user(&mut cmd, id).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        let mut attacker = Attacker { child, lines };
        attacker.next_result();
        attacker
    }

    /// The next `@@` line.
    fn next_result(&mut self) -> String {
        loop {
            let mut line = String::new();
            assert!(
                self.lines.read_line(&mut line).unwrap() > 0,
                "the attacker exited"
            );
            if let Some(result) = line.trim_end().strip_prefix("@@") {
                return result.to_owned();
            }
        }
    }

    /// Lets the attacker report, and returns its report.
    fn report(mut self) -> String {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
        let result = self.next_result();
        let _ = self.child.wait();
        result
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A victim's client running `script` with no `OBJMGR_SOCKET` and no
/// `XDG_RUNTIME_DIR`: it uses `/tmp/objmgr-<uid>`.
fn default_dir_client(broker: &TestBroker, victim: u32, script: &[&str]) -> Vec<String> {
    let mut cmd = broker.script(script);
    cmd.env_remove("OBJMGR_SOCKET")
        .env_remove("XDG_RUNTIME_DIR");
    result_lines(&output_or_hang(
        as_user(&mut cmd, victim),
        "the victim's client",
    ))
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// Removes a path when dropped (also when the test fails).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        remove_any(&self.0);
    }
}

#[test]
fn a_squatted_default_directory_is_refused_and_named() {
    if !is_root() {
        return;
    }
    let broker = TestBroker::new();
    let (victim, attacker) = (unused_id(0), unused_id(1));
    let dir = PathBuf::from(format!("/tmp/objmgr-{victim}"));
    let _cleanup = RemoveOnDrop(dir.clone());
    for squat in ["open directory", "private directory", "symlink", "file"] {
        remove_any(&dir);
        match squat {
            "open directory" | "private directory" => {
                std::fs::create_dir(&dir).unwrap();
                let mode = if squat == "open directory" {
                    0o777
                } else {
                    0o700
                };
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            "symlink" => std::os::unix::fs::symlink(&broker.dir, &dir).unwrap(),
            _ => std::fs::write(&dir, "squatted").unwrap(),
        }
        std::os::unix::fs::lchown(&dir, Some(attacker), Some(attacker)).unwrap();
        let lines = default_dir_client(&broker, victim, &["create - 4096"]);
        let first = lines.first().map(String::as_str).unwrap_or("");
        assert!(first.starts_with("err 5 "), "{squat}: {lines:?}");
        assert!(
            first.contains(&dir.display().to_string())
                && first.contains("XDG_RUNTIME_DIR")
                && first.contains("OBJMGR_SOCKET"),
            "{squat}: the error names the path and the way out: {first}"
        );
    }
}

#[test]
fn a_fake_broker_in_a_squatted_directory_hears_nothing() {
    if !is_root() {
        return;
    }
    let broker = TestBroker::new();
    let (victim, attacker_id) = (unused_id(2), unused_id(3));
    let dir = PathBuf::from(format!("/tmp/objmgr-{victim}"));
    remove_any(&dir);
    let _cleanup = RemoveOnDrop(dir.clone());
    let attacker = Attacker::start(
        attacker_id,
        &format!("listen {}", dir.join("broker.sock").display()),
    );
    let lines = default_dir_client(
        &broker,
        victim,
        &["create Local\\secret 4096", "map all", "write 0 secret"],
    );
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    assert_eq!(attacker.report(), "connections=0 bytes=0");
}

#[test]
fn a_socket_of_another_user_in_a_private_directory_is_never_greeted() {
    if !is_root() {
        return;
    }
    // The directory passes every check, but the socket in it was made by
    // another user (before the directory was locked down): only the
    // broker's credentials give it away.
    let broker = TestBroker::new();
    let (victim, attacker_id) = (unused_id(4), unused_id(5));
    let dir = broker.dir.join("private");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("broker.sock");
    let attacker = Attacker::start(attacker_id, &format!("listen {}", socket.display()));
    std::os::unix::fs::chown(&dir, Some(victim), Some(victim)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = broker.script(&["create Local\\secret 4096"]);
    cmd.env("OBJMGR_SOCKET", &socket);
    let lines = result_lines(&output_or_hang(as_user(&mut cmd, victim), "the victim"));
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    assert!(
        lines[0].contains(&format!("runs as uid {attacker_id}")),
        "{lines:?}"
    );
    // It connected (that is how it learned who listens), but said nothing.
    assert_eq!(attacker.report(), "connections=1 bytes=0");
}

#[test]
fn a_broker_program_planted_beside_the_program_is_never_run() {
    let broker = TestBroker::new();
    let bin = broker.dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let program = bin.join("client");
    std::fs::copy(std::env::current_exe().unwrap(), &program).unwrap();
    let marker = broker.dir.join("planted-ran");
    let plant = format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display());
    for place in [bin.join("objmgrd"), broker.dir.join("objmgrd")] {
        std::fs::write(&place, &plant).unwrap();
        std::fs::set_permissions(&place, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cmd = broker.script(&["create - 4096"]);
    let out = output_or_hang(
        Command::new(&program)
            .args(cmd.get_args())
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env_remove("OBJMGR_BROKER"),
        "the copied program",
    );
    let lines = result_lines(&out);
    assert!(!exists(&marker), "a planted broker ran");
    // The broker built with the library started instead.
    assert_eq!(lines, ["create existed=0"], "{lines:?}");
}

#[test]
fn a_broker_program_others_can_write_is_refused() {
    let broker = TestBroker::new();
    let shared = broker.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let marker = broker.dir.join("planted-ran");
    let planted = shared.join("objmgrd");
    std::fs::write(
        &planted,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = broker.script(&["create - 4096"]);
    cmd.env("OBJMGR_BROKER", &planted);
    let out = cmd.output().unwrap();
    let lines = result_lines(&out);
    assert!(!exists(&marker), "an untrusted broker ran");
    assert!(
        lines[0].starts_with("err 5 ") && lines[0].contains("is not safe"),
        "{lines:?}"
    );
    // Only on request does the library print why the start failed.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("objmgr: cannot start"));
    cmd.env("OBJMGR_DEBUG_START", "1");
    let stderr = String::from_utf8_lossy(&cmd.output().unwrap().stderr).into_owned();
    assert!(
        stderr.contains("objmgr: cannot start the objmgr broker") && stderr.contains("is not safe"),
        "{stderr}"
    );
}

#[test]
fn a_socket_in_a_shared_directory_is_refused_by_client_and_broker() {
    let broker = TestBroker::new();
    let shared = broker.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let socket = shared.join("broker.sock");
    let mut cmd = broker.script(&["create - 4096"]);
    cmd.env("OBJMGR_SOCKET", &socket);
    let lines = result_lines(&cmd.output().unwrap());
    assert!(
        lines[0].starts_with("err 5 ") && lines[0].contains("OBJMGR_SOCKET"),
        "{lines:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_objmgrd"))
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not safe"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!exists(&socket), "nothing was made in the shared directory");
}

#[test]
fn another_user_holding_a_lock_on_the_directory_stalls_nobody() {
    if !is_root() {
        return;
    }
    let broker = TestBroker::new();
    let (victim, attacker_id) = (unused_id(6), unused_id(7));
    std::os::unix::fs::chown(&broker.dir, Some(victim), Some(victim)).unwrap();
    let attacker = Attacker::start(attacker_id, &format!("flock {}", broker.dir.display()));
    let mut cmd = broker.script(&["create Local\\x 4096", "existed"]);
    let lines = result_lines(&output_or_hang(as_user(&mut cmd, victim), "the victim"));
    assert_eq!(lines[0], "create existed=0", "{lines:?}");
    drop(attacker);
}

#[test]
fn a_regular_file_at_the_socket_path_is_never_replaced() {
    let broker = TestBroker::new();
    std::fs::write(&broker.socket, "precious").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_objmgrd"))
        .arg("--socket")
        .arg(&broker.socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&broker.socket).unwrap(), "precious");
}

#[test]
fn a_read_only_handle_cannot_be_reopened_for_writing() {
    if !is_root() {
        return;
    }
    // Everyone here is one ordinary user (root passes every mode check).
    let broker = TestBroker::new();
    let user = unused_id(8);
    std::os::unix::fs::chown(&broker.dir, Some(user), Some(user)).unwrap();
    let mut creator = broker.script(&[
        "create Local\\ro-test 65536",
        "map all",
        "write 0 AAAA",
        "hold",
        "read 0 4",
    ]);
    let (mut creator, mut out) = start_until(as_user(&mut creator, user), "@@holding");
    let mut reader = broker.script(&[
        "open Local\\ro-test read",
        "fdmode",
        "reopen_rw",
        "map read",
        "force_write",
    ]);
    let lines = result_lines(&output_or_hang(as_user(&mut reader, user), "the reader"));
    creator.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let _ = creator.wait();
    assert_eq!(
        lines[..3],
        ["open", "fdmode ro", "reopen_rw refused errno=13"]
    );
    assert_eq!(
        lines[4], "force_write mprotect=errno=13 mem=errno=5",
        "{lines:?}"
    );
    assert!(
        rest.contains("@@read AAAA"),
        "the creator's data is intact: {rest}"
    );
}

#[test]
fn a_read_only_section_cannot_be_written_even_by_root() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create Local\\sealed 65536 ro",
        "fdmode",
        "reopen_rw",
        "raw_map_write",
    ]);
    assert_eq!(
        lines,
        [
            "create existed=0",
            "fdmode ro",
            // root may open it for writing, but the seal refuses the write
            if rustix::process::getuid().is_root() {
                "reopen_rw opened write-refused errno=1"
            } else {
                "reopen_rw refused errno=13"
            },
            "raw_map_write refused errno=13",
        ]
    );
}

#[test]
fn the_foreground_broker_logs_refusals_and_stops_cleanly_on_a_signal() {
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::INT] {
        let broker = TestBroker::new();
        std::fs::set_permissions(&broker.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_objmgrd"));
        cmd.arg("--socket")
            .arg(&broker.socket)
            .args(["--idle-timeout", "never"])
            .env("OBJMGR_LOG", "debug")
            .stderr(Stdio::piped());
        let (daemon, _) = start_until(&mut cmd, "objmgrd ready");
        // A request that fails, and (as root) a caller of another uid.
        let lines = broker.run(&["open Local\\missing read"]);
        assert!(lines[0].starts_with("err 2 "), "{lines:?}");
        if rustix::process::getuid().is_root() {
            std::fs::set_permissions(&broker.socket, std::fs::Permissions::from_mode(0o777))
                .unwrap();
            let mut other = Command::new(env!("CARGO_BIN_EXE_objmgr"));
            other
                .args(["broker", "status"])
                .env("OBJMGR_SOCKET", &broker.socket);
            let out = output_or_hang(as_user(&mut other, unused_id(9)), "the other user");
            assert!(!out.status.success());
        }
        let pid = rustix::process::Pid::from_raw(daemon.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let out = daemon.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{signal:?}: {log}");
        assert!(
            !exists(&broker.socket),
            "{signal:?}: the socket file is removed"
        );
        assert!(
            log.contains("OpenSection refused") || log.contains("refused: no object"),
            "{log}"
        );
        if rustix::process::getuid().is_root() {
            assert!(
                log.contains("refused a connection")
                    && log.contains(&format!("uid {}", unused_id(9))),
                "{log}"
            );
        }
        assert!(log.contains("stopping on a signal"), "{log}");
    }
}

/// A raw connection to the broker that says nothing.
fn silent_connection(socket: &Path) -> rustix::fd::OwnedFd {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::connect(&fd, &SocketAddrUnix::new(socket).unwrap()).unwrap();
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(30)),
    )
    .unwrap();
    fd
}

/// What the broker sends on `fd` before it hangs up (waits up to 30 s).
fn read_until_hang_up(fd: &rustix::fd::OwnedFd) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::CONNRESET) => return got,
            Err(e) => panic!("no hang-up: {e}"),
        }
    }
}

#[test]
fn a_connection_that_never_says_hello_is_closed() {
    let broker = TestBroker::new();
    broker.run(&["create Local\\keep 4096"]); // starts the broker
    let silent = silent_connection(&broker.socket);
    assert!(read_until_hang_up(&silent).is_empty());
    let lines = broker.run(&["create Local\\after 4096"]);
    assert_eq!(lines, ["create existed=0"]);
}

#[test]
fn one_process_cannot_take_more_than_its_connections() {
    let broker = TestBroker::new();
    broker.run(&["create Local\\keep 4096"]);
    let held: Vec<_> = (0..8).map(|_| silent_connection(&broker.socket)).collect();
    let ninth = silent_connection(&broker.socket);
    let refusal = read_until_hang_up(&ninth);
    let (_, result) =
        objmgr_proto::wire::decode_reply(objmgr_proto::wire::Opcode::Hello, &refusal).unwrap();
    let (code, why) = result.unwrap_err();
    assert_eq!(code, 1816, "ERROR_NOT_ENOUGH_QUOTA: {why}");
    assert!(why.contains("quota of 8 connections"), "{why}");
    // Everyone else is served meanwhile.
    assert_eq!(
        broker.run(&["create Local\\other 4096"]),
        ["create existed=0"]
    );
    drop(held);
}

#[test]
fn quotas_stop_one_process_and_nobody_else() {
    let broker = TestBroker::new().with_env(
        "OBJMGR_QUOTA",
        "handles=12,sections=3,section-bytes=1048576,sync-objects=4",
    );
    let mut greedy = broker.spawn(&[
        "create - 4096",
        "create - 4096",
        "create - 4096",
        "create - 4096",
        "close",
        "create - 4096",
        "create - 2097152",
        "event - auto 0",
        "event - auto 0",
        "event - auto 0",
        "event - auto 0",
        "event - auto 0",
        "closeobj 0",
        "event - auto 0",
        "open_event Local\\none",
        "hold",
    ]);
    greedy.wait_for("holding");
    let lines = greedy.lines.clone();
    let quota_err = |line: &str| line.starts_with("err 1816 ");
    assert_eq!(&lines[..3], ["create existed=0"; 3]);
    assert!(quota_err(&lines[3]), "the fourth section: {lines:?}");
    assert_eq!(
        lines[5], "create existed=0",
        "a closed section gives its share back"
    );
    assert!(quota_err(&lines[6]), "two MiB of sections: {lines:?}");
    assert!(
        lines[7..11].iter().all(|l| l.starts_with("event ")),
        "{lines:?}"
    );
    assert!(quota_err(&lines[11]), "the fifth event: {lines:?}");
    assert!(lines[13].starts_with("event "), "{lines:?}");
    // Another process is not held back by the first one's use, and the
    // broker still answers status.
    assert_eq!(
        broker.run(&["create - 4096", "event - auto 0"]),
        ["create existed=0", "event existed=0"]
    );
    assert!(broker.objmgr(&["broker", "status"]).status.success());
    greedy.release();
    greedy.finish();
    // Handles: 12 per process (one named section opened again and again).
    let mut script = vec!["create Local\\h 4096"];
    script.extend(std::iter::repeat_n("open Local\\h read", 12));
    let lines = broker.run(&script);
    assert!(
        lines[..12].iter().all(|l| !l.starts_with("err")),
        "{lines:?}"
    );
    assert!(quota_err(&lines[12]), "the thirteenth handle: {lines:?}");
}

#[test]
fn a_lease_on_a_mapped_file_stalls_nobody() {
    let broker = TestBroker::new();
    let file = broker.dir.join("leased.bin");
    std::fs::write(&file, [0u8; 4096]).unwrap();
    // The creator holds a write lease on its own fd: the broker's read-only
    // reopen would wait 45 s for the lease to break, with every other
    // process waiting behind it. It fails at once instead.
    let mut holder = broker.spawn(&[
        &format!("create_file {} rw-leased Local\\leased 0", file.display()),
        "hold",
    ]);
    let created = holder.wait_for("");
    assert!(created.starts_with("err 32 "), "{created}");
    holder.wait_for("holding");
    // Everyone else is answered meanwhile.
    let mut bystander = broker.script(&["create Local\\bystander 4096"]);
    let lines = result_lines(&output_or_hang(&mut bystander, "a bystander"));
    assert_eq!(lines, ["create existed=0"]);
    holder.release();
    holder.finish();
}

#[test]
fn the_broker_keeps_nothing_of_processes_and_objects_that_are_gone() {
    let broker = TestBroker::new();
    let mut script = vec!["event_inh - manual 0"];
    for _ in 0..10 {
        // A child that connects (with an inherited handle), one that never
        // does (its inherited handles wait for it), one killed (or ended, if
        // it is quicker), and objects of every type made and closed.
        script.extend([
            "spawn inherit event - auto 0",
            "child_finish",
            "spawn inherit exit 3",
            "child_finish",
            "spawn noinherit hold",
            "child_kill9",
            "child_finish",
            "create Local\\gone 65536",
            "close",
            "event Local\\gone-event manual 0",
            "mutex - 1",
            "semaphore - 1 2",
            "timer - auto",
            "closeobj 4",
            "closeobj 3",
            "closeobj 2",
            "closeobj 1",
        ]);
    }
    let lines = broker.run(&script);
    assert!(!lines.iter().any(|l| l.starts_with("err")), "{lines:?}");
    let ended = lines
        .iter()
        .filter(|l| l.starts_with("child exit="))
        .count();
    assert_eq!(ended, 30, "{lines:?}");
    let out = broker.objmgr(&["broker", "status", "--json"]).stdout;
    let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status["objects"], 0, "{status}");
    assert_eq!(status["handles"], 0, "{status}");
    assert_eq!(status["processes_tracked"], 0, "{status}");
    assert_eq!(status["pending_tables"], 0, "{status}");
}

#[test]
fn the_broker_keeps_no_descriptor_of_the_program_that_started_it() {
    let broker = TestBroker::new();
    // An inheritable pipe, as a program that started the broker may have
    // open for a child of its own: its reader must see end-of-file once the
    // program closes its end, broker or not.
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty()).unwrap();
    let (mut daemon, _) = start_until(
        Command::new(env!("CARGO_BIN_EXE_objmgrd"))
            .arg("--socket")
            .arg(&broker.socket)
            .args(["--idle-timeout", "never"]),
        "objmgrd ready",
    );
    drop(writer);
    let mut poll = [rustix::event::PollFd::new(
        &reader,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::time::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    let ready_fds = rustix::event::poll(&mut poll, Some(&timeout)).unwrap();
    let eof = ready_fds == 1 && rustix::io::read(&reader, &mut [0u8; 1]).unwrap() == 0;
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(eof, "the broker kept the pipe's write end open");
}

#[test]
fn a_directory_above_that_others_can_write_is_refused() {
    // Whoever can write to a directory above can rename what is below it and
    // put their own in its place, after any check of the lower levels.
    let broker = TestBroker::new();
    let open = broker.dir.join("open");
    let private = open.join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let program = private.join("objmgrd");
    std::fs::copy(env!("CARGO_BIN_EXE_objmgrd"), &program).unwrap();
    let mut cmd = broker.script(&["create - 4096"]);
    cmd.env("OBJMGR_BROKER", &program);
    let lines = result_lines(&cmd.output().unwrap());
    assert!(
        lines[0].starts_with("err 5 ") && lines[0].contains("above it is writable"),
        "the program: {lines:?}"
    );
    let mut cmd = broker.script(&["create - 4096"]);
    cmd.env("OBJMGR_SOCKET", private.join("broker.sock"));
    let lines = result_lines(&cmd.output().unwrap());
    assert!(
        lines[0].starts_with("err 5 ") && lines[0].contains("above it is writable"),
        "the socket: {lines:?}"
    );
    // Sticky, as /tmp is: nobody can rename what is not theirs.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut cmd = broker.script(&["create - 4096"]);
    cmd.env("OBJMGR_BROKER", &program);
    assert_eq!(result_lines(&cmd.output().unwrap()), ["create existed=0"]);
}

#[test]
fn a_start_up_lock_of_another_user_is_refused() {
    if !is_root() {
        return;
    }
    let broker = TestBroker::new();
    let lock = broker.dir.join("broker.sock.lock");
    std::fs::write(&lock, "").unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&lock, Some(unused_id(10)), Some(unused_id(10))).unwrap();
    let lines = broker.run(&["create - 4096"]);
    assert!(
        lines[0].starts_with("err 5 ") && lines[0].contains("start-up lock"),
        "{lines:?}"
    );
}

#[test]
fn a_set_group_id_program_is_refused() {
    if !is_root() {
        return;
    }
    // A set-group-ID copy of this test binary, run by another user: its
    // environment is its caller's, so it must not pick the broker.
    let broker = TestBroker::new();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("setgid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    let program = dir.join("client");
    std::fs::copy(std::env::current_exe().unwrap(), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let template = broker.script(&["create - 4096"]);
    let mut cmd = Command::new(&program);
    cmd.args(template.get_args())
        .envs(template.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let lines = result_lines(&output_or_hang(
        as_user(&mut cmd, unused_id(11)),
        "the program",
    ));
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("err 5 ") && l.contains("set-group-ID")),
        "{lines:?}"
    );
}

#[test]
fn a_broker_started_on_demand_logs_to_syslog() {
    // A stand-in for /dev/log: the broker a client starts (detached, its
    // stderr gone) reports there, in syslog's format.
    let broker = TestBroker::new();
    let syslog_path = broker.dir.join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&syslog_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut cmd = broker.script(&["open Local\\\\nothing-here read"]);
    cmd.env("OBJMGR_SYSLOG_SOCKET", &syslog_path)
        .env("OBJMGR_LOG", "debug");
    let lines = result_lines(&cmd.output().unwrap());
    assert!(lines[0].starts_with("err 2 "), "{lines:?}");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|l: &String| l.contains("refused")) {
        let n = syslog.recv(&mut buf).expect("a syslog message within 30 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let refusal = seen.iter().find(|l| l.contains("refused")).unwrap();
    // <14> is LOG_USER | info; <15> debug.
    assert!(refusal.starts_with("<15>objmgrd["), "{refusal}");
    assert!(refusal.contains("no object named"), "{refusal}");
}
