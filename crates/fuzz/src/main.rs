//! `objmgr-fuzz`: runs the fuzz targets of `objmgr_fuzz` on stable Rust.
//!
//! ```text
//! objmgr-fuzz wire|broker|socket [--seed N] [--cases N] [--seconds N] [--crashes DIR]
//! objmgr-fuzz replay wire|broker|socket FILE...
//! ```
//!
//! Each case is random bytes (for `wire`, turned into an encoded request or
//! reply and mutated). A case that panics is saved in the crashes directory
//! (default `fuzz-crashes`) and the run stops with exit status 1; a case that
//! runs for more than 10 seconds is saved as a hang (exit status 2). The
//! `socket` target runs a real broker (this program in the broker's role)
//! and saves the cases before a failure as one sequence. Run as root, the
//! driver first becomes an unused uid and gid.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use objmgr_fuzz::{broker_case, wire_case, wire_input};

mod socket;

/// What the driver runs as when started as root: no account has it.
const UNUSED_ID: u32 = 3_999_999_999;
const HANG: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Wire,
    Broker,
    Socket,
}

impl Target {
    fn parse(name: &str) -> Option<Target> {
        match name {
            "wire" => Some(Target::Wire),
            "broker" => Some(Target::Broker),
            "socket" => Some(Target::Socket),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::Wire => "wire",
            Target::Broker => "broker",
            Target::Socket => "socket",
        }
    }

    /// Runs one case of an in-process target.
    fn run(self, input: &[u8]) {
        match self {
            Target::Wire => wire_case(input),
            Target::Broker => broker_case(input),
            Target::Socket => unreachable!("the socket target runs a broker process"),
        }
    }
}

struct Options {
    target: Target,
    seed: u64,
    cases: Option<u64>,
    seconds: Option<u64>,
    crashes: PathBuf,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: objmgr-fuzz wire|broker|socket [--seed N] [--cases N] [--seconds N] [--crashes DIR]\n       objmgr-fuzz replay wire|broker|socket FILE..."
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    if let Some(parent) = std::env::var_os(socket::BROKER_ROLE_ENV) {
        // The `socket` target's broker (with `objmgrd`'s arguments), which
        // must not outlive the driver, however the driver ends.
        let parent = parent.to_str().and_then(|p| p.parse::<i32>().ok());
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != parent {
            return ExitCode::FAILURE; // the driver is gone already
        }
        return objmgr_server::main();
    }
    // The in-process broker's notes (a recovery starting, in a third of the
    // broker cases) are not news; its errors are.
    objmgr_server::log::limit(objmgr_server::log::Level::Error);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("replay") {
        let Some(target) = args.get(1).and_then(|t| Target::parse(t)) else {
            return usage();
        };
        if let Err(e) = drop_root(None) {
            eprintln!("objmgr-fuzz: cannot leave root: {e}");
            return ExitCode::FAILURE;
        }
        return replay(target, &args[2..]);
    }
    let Some(options) = parse(&args) else {
        return usage();
    };
    if let Err(e) = drop_root(Some(&options.crashes)) {
        eprintln!("objmgr-fuzz: cannot leave root: {e}");
        return ExitCode::FAILURE;
    }
    fuzz(&options)
}

fn parse(args: &[String]) -> Option<Options> {
    let mut options = Options {
        target: Target::parse(args.first()?)?,
        seed: 1,
        cases: None,
        seconds: None,
        crashes: PathBuf::from("fuzz-crashes"),
    };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next()?;
        match flag.as_str() {
            "--seed" => options.seed = value.parse().ok()?,
            "--cases" => options.cases = Some(value.parse().ok()?),
            "--seconds" => options.seconds = Some(value.parse().ok()?),
            "--crashes" => options.crashes = PathBuf::from(value),
            _ => return None,
        }
    }
    if options.cases.is_none() && options.seconds.is_none() {
        options.cases = Some(10_000);
    }
    Some(options)
}

/// As root, becomes an unused uid and gid with no supplementary groups, so
/// that a broker bug found by a case cannot touch anything of the machine's;
/// `crashes`, made first, is given to that uid so that cases can be saved.
fn drop_root(crashes: Option<&Path>) -> std::io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    if let Some(dir) = crashes {
        // Only a directory made now (never one that exists, nor what a
        // symbolic link points to), or one a previous run made.
        match std::fs::symlink_metadata(dir) {
            Ok(meta) => {
                use std::os::unix::fs::MetadataExt;
                if !meta.is_dir() || meta.uid() != UNUSED_ID {
                    return Err(std::io::Error::other(format!(
                        "{} exists and is not a directory a previous run made: \
                         give --crashes a new path",
                        dir.display()
                    )));
                }
            }
            Err(_) => {
                std::fs::DirBuilder::new().mode(0o700).create(dir)?;
                std::os::unix::fs::lchown(dir, Some(UNUSED_ID), Some(UNUSED_ID))?;
            }
        }
    }
    // SAFETY: plain system calls with valid arguments, made while this
    // process has one thread (glibc applies them to every thread anyway).
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(UNUSED_ID, UNUSED_ID, UNUSED_ID) != 0
            || libc::setresuid(UNUSED_ID, UNUSED_ID, UNUSED_ID) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A small, fast generator (xorshift64*): cases differ by seed only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() % (max as u64 + 1)) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Cases run so far, and the one running (for the hang watchdog).
static CASES: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn fuzz(options: &Options) -> ExitCode {
    let target = options.target;
    let crashes = options.crashes.clone();
    std::thread::spawn(move || watchdog(target, &crashes));
    if target == Target::Socket {
        return fuzz_socket(options);
    }
    let mut rng = Rng(options.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let started = Instant::now();
    let deadline = options.seconds.map(|s| started + Duration::from_secs(s));
    let mut run = 0u64;
    loop {
        if options.cases.is_some_and(|c| run >= c) || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let input = match target {
            Target::Wire => wire_input(&rng.bytes(96)),
            Target::Broker | Target::Socket => rng.bytes(1024),
        };
        CURRENT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone_from(&input);
        let outcome = std::panic::catch_unwind(|| target.run(&input));
        CASES.fetch_add(1, Ordering::Relaxed);
        run += 1;
        if outcome.is_err() {
            let saved = save(&options.crashes, target, "crash", &input);
            eprintln!(
                "objmgr-fuzz: {} case {run} (seed {}) panicked; saved as {}\n  replay: objmgr-fuzz replay {} {}",
                target.name(),
                options.seed,
                saved.display(),
                target.name(),
                saved.display()
            );
            return ExitCode::FAILURE;
        }
    }
    println!(
        "objmgr-fuzz {}: {run} cases in {:.1} s (seed {}), no crash",
        target.name(),
        started.elapsed().as_secs_f64(),
        options.seed
    );
    ExitCode::SUCCESS
}

/// The `socket` target: cases against one broker process, whose health is
/// checked every 50 cases and at the end.
fn fuzz_socket(options: &Options) -> ExitCode {
    let mut broker = match socket::Broker::start() {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("objmgr-fuzz: cannot start a broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rng = Rng(options.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let started = Instant::now();
    let deadline = options.seconds.map(|s| started + Duration::from_secs(s));
    let mut kept = socket::Kept::default();
    let mut run = 0u64;
    loop {
        let done = options.cases.is_some_and(|c| run >= c)
            || deadline.is_some_and(|d| Instant::now() >= d);
        if (done || (run > 0 && run.is_multiple_of(50)))
            && let Err(why) = broker.healthy()
        {
            let saved = save(&options.crashes, Target::Socket, "crash", &kept.encode());
            eprintln!(
                "objmgr-fuzz: socket case {run} (seed {}): {why}; the cases before it are saved as {}\n  replay: objmgr-fuzz replay socket {}",
                options.seed,
                saved.display(),
                saved.display()
            );
            return ExitCode::FAILURE;
        }
        if done {
            break;
        }
        let input = rng.bytes(512);
        kept.push(&input);
        // A hang is saved as what a replay needs: the cases so far.
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = kept.encode();
        broker.case(&input);
        CASES.fetch_add(1, Ordering::Relaxed);
        run += 1;
    }
    broker.stop();
    println!(
        "objmgr-fuzz socket: {run} cases in {:.1} s (seed {}), no crash",
        started.elapsed().as_secs_f64(),
        options.seed
    );
    ExitCode::SUCCESS
}

/// Saves a case whose number has not moved for [`HANG`] and ends the run.
fn watchdog(target: Target, crashes: &Path) {
    let mut last = (u64::MAX, Instant::now());
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = CASES.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= HANG {
            let input = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let saved = save(crashes, target, "hang", &input);
            eprintln!(
                "objmgr-fuzz: a {} case ran for over {HANG:?}; saved as {}",
                target.name(),
                saved.display()
            );
            std::process::exit(2);
        }
    }
}

/// Writes `input` into `dir`, named by kind and content (FNV-1a).
fn save(dir: &Path, target: Target, kind: &str, input: &[u8]) -> PathBuf {
    let hash = input.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    let path = dir.join(format!("{}-{kind}-{hash:016x}.bin", target.name()));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!(
            "objmgr-fuzz: cannot save {}: {e}; the case, hex: {}",
            path.display(),
            input.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    path
}

fn replay(target: Target, files: &[String]) -> ExitCode {
    if files.is_empty() {
        return usage();
    }
    for file in files {
        let input = match std::fs::read(file) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("objmgr-fuzz: {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if target == Target::Socket {
            if let Err(why) = socket::replay(&input) {
                eprintln!("objmgr-fuzz: {file}: {why}");
                return ExitCode::FAILURE;
            }
            continue;
        }
        if std::panic::catch_unwind(|| target.run(&input)).is_err() {
            eprintln!("objmgr-fuzz: {file}: panicked");
            return ExitCode::FAILURE;
        }
    }
    println!("objmgr-fuzz: {} replayed, no crash", files.len());
    ExitCode::SUCCESS
}
