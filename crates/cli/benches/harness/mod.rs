//! What every benchmark binary shares: a private broker, timing, and the
//! report line format (objmgr, raw Linux baseline, ratio, target).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A time per operation, kept in fractions of a nanosecond: at tens of
/// nanoseconds a whole-nanosecond rounding (`Duration / u32`) is a large
/// part of the figure and of the ratio.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct PerOp(pub f64);

impl PerOp {
    /// Nanoseconds, with their fraction.
    pub fn nanos(self) -> f64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 / 1e9
    }

    /// `total` spread over `ops` operations.
    pub fn of(total: Duration, ops: usize) -> PerOp {
        PerOp(total.as_nanos() as f64 / ops.max(1) as f64)
    }
}

impl From<Duration> for PerOp {
    /// A time already per operation (measured in whole nanoseconds or more).
    fn from(d: Duration) -> PerOp {
        PerOp(d.as_nanos() as f64)
    }
}

impl std::fmt::Display for PerOp {
    /// One decimal, in ns, µs or ms.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (value, unit) = match self.0 {
            n if n < 1e3 => (n, "ns"),
            n if n < 1e6 => (n / 1e3, "µs"),
            n => (n / 1e6, "ms"),
        };
        let text = format!("{value:.1}{unit}");
        f.pad(&text)
    }
}

/// Median time per iteration of `f`, over `batches` batches of `iters`.
pub fn measure(batches: usize, iters: usize, mut f: impl FnMut(usize)) -> PerOp {
    let mut samples: Vec<PerOp> = (0..batches)
        .map(|b| {
            let start = Instant::now();
            for i in 0..iters {
                f(b * iters + i);
            }
            PerOp::of(start.elapsed(), iters)
        })
        .collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    samples[samples.len() / 2]
}

pub fn report(what: &str, ours: PerOp, base: PerOp, target: &str) {
    let ratio = ours.0 / base.0;
    println!(
        "{what:<58} objmgr {ours:>10}  raw {base:>10}  ratio {ratio:>5.2}x  (target {target})"
    );
}

/// A broker of our own for the benchmark run; stopped (and its directory
/// removed) on drop. `OBJMGR_SOCKET` points this process at it.
pub struct Broker {
    pub child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = std::env::temp_dir().join(format!("omtest-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("broker.sock");
        // SAFETY: called before any thread is started; nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("OBJMGR_SOCKET", &socket) };
        let child = start_objmgrd(
            Command::new(env!("CARGO_BIN_EXE_objmgrd"))
                .args(["--idle-timeout", "never", "--socket"])
                .arg(&socket)
                // The memory measurement connects many times from this one
                // process, and the namespace measurement creates up to
                // 100,000 sections: past the default quotas per process.
                .args(["--quota", "connections=1000000,sections=1000000"]),
        );
        Broker { child, dir, socket }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if objmgr::admin::shutdown_broker().is_err() {
            let _ = self.child.kill(); // it would not listen: never wait forever
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `objmgrd` as `cmd` says and returns once it is ready.
pub fn start_objmgrd(cmd: &mut Command) -> Child {
    let mut child = cmd
        .env("OBJMGR_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start objmgrd");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    child
}

/// The CPUs this process may run on, as `/proc/self/status` lists them.
pub fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}
