//! Test harness: an isolated broker per test, and child processes that run
//! small scripts of objmgr operations (the test binary re-executes itself).
//!
//! Each test gets its own directory and `OBJMGR_SOCKET`, so tests run side by
//! side; dropping the [`TestBroker`] stops its broker and removes everything.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Generous: tests assert behaviour, never speed; this only stops a hang.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub const CHILD_ROLE_ENV: &str = "OBJMGR_TEST_SCRIPT";

/// An isolated broker location for one test.
pub struct TestBroker {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// Set for every process the test starts (the broker included, which
    /// the first of them starts).
    extra_env: Vec<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestBroker {
    pub fn new() -> TestBroker {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("omtest-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Whatever the umask: a client trusts only a directory nobody else
        // can write to.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let socket = dir.join("broker.sock");
        TestBroker {
            dir,
            socket,
            extra_env: Vec::new(),
        }
    }

    /// The same, with `key=value` in the environment of every process.
    pub fn with_env(mut self, key: &str, value: &str) -> TestBroker {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("OBJMGR_SOCKET", &self.socket)
            .env("OBJMGR_BROKER", env!("CARGO_BIN_EXE_objmgrd"))
            .env("OBJMGR_IDLE_TIMEOUT_MS", "60000")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
    }

    /// A child process that runs `script` (see `run_script`) against this broker.
    pub fn script(&self, script: &[&str]) -> Command {
        let mut cmd = child_entry();
        cmd.env(CHILD_ROLE_ENV, script.join("\n"));
        self.env(&mut cmd);
        cmd
    }

    /// Runs a script to completion and returns its `@@` result lines.
    pub fn run(&self, script: &[&str]) -> Vec<String> {
        let out = self.script(script).stdin(Stdio::null()).output().unwrap();
        let lines = result_lines(&out);
        assert!(
            out.status.success(),
            "script {script:?} failed: {lines:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines
    }

    /// Starts a script that will stop at `hold` until released.
    pub fn spawn(&self, script: &[&str]) -> ScriptChild {
        spawn_script(&mut self.script(script))
    }

    /// Runs the `objmgr` command against this broker.
    pub fn objmgr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_objmgr"));
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    /// Polls until `f` is true; fails the test after `PATIENCE`.
    pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills (SIGKILL) the test's one running broker and waits until it is
    /// gone; returns its pid.
    pub fn kill_broker(&self) -> u32 {
        let pids = self.broker_pids();
        assert_eq!(pids.len(), 1, "one broker runs: {pids:?}");
        signal(pids[0], libc::SIGKILL);
        TestBroker::eventually("the broker to die", || {
            !self.broker_pids().contains(&pids[0])
        });
        pids[0]
    }

    /// Waits until one broker runs, not `old`; returns its pid.
    pub fn new_broker(&self, old: u32) -> u32 {
        let mut new = 0;
        TestBroker::eventually("a new broker", || {
            match self.broker_pids()[..] {
                [pid] if pid != old => new = pid,
                _ => return false,
            }
            true
        });
        new
    }

    /// Pids of live broker processes serving this test's socket.
    pub fn broker_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let needle = self.socket.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("objmgrd") && cmdline.contains(&needle) && is_alive(pid) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// This test binary, running only its `child_process_entry` (which reads
/// what to do from the environment).
pub fn child_entry() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ]);
    cmd
}

/// Sends `signal` to process `pid` of this test.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: sends a signal to a process of this test; no memory involved.
    unsafe { libc::kill(pid as i32, signal) };
}

/// Running and not a zombie.
pub fn is_alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z' && state != 'X')
}

/// A process's state letter (`R`, `S`, `T` stopped, `Z` zombie...), if it
/// exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let pids = self.broker_pids();
        if !pids.is_empty() {
            // As the user the broker runs as: a client trusts only its own
            // user's broker (or root's).
            let mut stop = Command::new(env!("CARGO_BIN_EXE_objmgr"));
            stop.args(["broker", "stop"]);
            self.env(&mut stop);
            if let Ok(meta) = std::fs::symlink_metadata(&self.socket) {
                use std::os::unix::{fs::MetadataExt, process::CommandExt};
                if rustix::process::getuid().is_root() && meta.uid() != 0 {
                    stop.uid(meta.uid()).gid(meta.gid());
                }
            }
            let _ = stop.output();
            let deadline = Instant::now() + PATIENCE;
            while self.broker_pids().iter().any(|p| pids.contains(p)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            // One that would not stop (a failed test may leave it stuck).
            for pid in self.broker_pids().into_iter().filter(|p| pids.contains(p)) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn result_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("@@"))
        .map(str::to_owned)
        .collect()
}

/// Starts a script command (see [`TestBroker::script`]) that will stop at
/// `hold` until released.
pub fn spawn_script(cmd: &mut Command) -> ScriptChild {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    // Read on a thread, so that waiting for a line can time out: a
    // child stuck in a wait fails its test instead of hanging the run.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (sender, results) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if let Some(result) = line.trim_end().strip_prefix("@@")
                && sender.send(result.to_owned()).is_err()
            {
                break;
            }
        }
    });
    ScriptChild {
        child,
        stdin,
        results,
        lines: Vec::new(),
    }
}

/// A running script child.
pub struct ScriptChild {
    pub child: Child,
    stdin: Option<ChildStdin>,
    /// The child's result lines, as they come.
    results: std::sync::mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

/// How long a child may stay silent before its test fails.
pub const SILENCE: Duration = Duration::from_secs(120);

impl ScriptChild {
    /// Reads result lines until one starts with `prefix`; returns it.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        self.wait_for_within(prefix, SILENCE)
    }

    /// The next result line (`None` once the child has closed its output);
    /// kills the child and fails the test after [`SILENCE`].
    fn next_result(&mut self, waiting_for: &str) -> Option<String> {
        match self.results.recv_timeout(SILENCE) {
            Ok(result) => Some(result),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.kill9();
                panic!(
                    "child silent for {SILENCE:?} while waiting for {waiting_for:?}; saw {:?}",
                    self.lines
                );
            }
        }
    }

    /// [`Self::wait_for`], failing the test if the line does not come
    /// within `patience`.
    pub fn wait_for_within(&mut self, prefix: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = match self.results.recv_timeout(left) {
                Ok(result) => result,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "child exited before printing {prefix:?}; saw {:?}",
                    self.lines
                ),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.kill9();
                    panic!("no {prefix:?} within {patience:?}; saw {:?}", self.lines);
                }
            };
            self.lines.push(result.clone());
            if result.starts_with(prefix) {
                return result;
            }
        }
    }

    /// Lets a `hold` continue.
    pub fn release(&mut self) {
        self.release_with("go");
    }

    /// Lets a `hold` continue, giving it `text` (the script's `$IN`).
    pub fn release_with(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{text}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for exit and returns the remaining result lines.
    pub fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        while let Some(result) = self.next_result("its end") {
            self.lines.push(result);
        }
        let status = self.child.wait().unwrap();
        let lines = std::mem::take(&mut self.lines);
        assert!(status.success(), "child failed: {lines:?}");
        lines
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

/// A failing test must not leave its children behind (waiting forever).
impl Drop for ScriptChild {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether a path exists (used to check for leftovers).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Whether the tests run as root (needed to act as other users); says
/// "skipped" when not, and fails instead where `OBJMGR_TESTS_AS_ROOT` is
/// set (CI runs as root: a skip there would hide the security tests).
pub fn is_root() -> bool {
    if rustix::process::getuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("OBJMGR_TESTS_AS_ROOT").is_none(),
        "OBJMGR_TESTS_AS_ROOT is set, but the tests do not run as root"
    );
    eprintln!("skipped: needs root to act as other users");
    false
}

/// A uid (and gid of the same number) that no account uses: one per test
/// process and `k`, so parallel runs do not meet.
pub fn unused_id(k: u32) -> u32 {
    3_000_000 + (std::process::id() % 100_000) * 16 + k
}

/// Runs `cmd` as `id` (uid and gid; no supplementary groups: std calls
/// `setgroups(0)` when root switches uid).
pub fn as_user(cmd: &mut Command, id: u32) -> &mut Command {
    cmd.uid(id).gid(id) // std drops supplementary groups when root sets a uid
}

/// Runs `cmd`; a run that takes longer than a minute is a hang and fails the test.
pub fn output_or_hang(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A program a test has just copied may be open for writing in a child
    // that another test's thread forked meanwhile (until it execs): its
    // exec fails with ETXTBSY for that moment.
    let mut busy = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && busy < 200 => {
                busy += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            spawned => break spawned.unwrap(),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Starts `cmd` with stdin and stdout piped and reads its output up to the
/// line containing `marker` (a script's `@@holding`, a foreground broker's
/// `objmgrd ready`); returns the child and the rest of its output. Fails
/// the test if the child ends first.
pub fn start_until(cmd: &mut Command, marker: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains(marker) {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended before {marker:?}"
        );
    }
    (child, out)
}
