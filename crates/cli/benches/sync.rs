//! Synchronization benchmarks against raw Linux, measured in the same run.
//!
//! `cargo bench -p objmgr-cli --bench sync`. The cross-process ping-pong runs
//! with both processes pinned to CPU 0 (a wake-up across CPUs costs 25–50 µs
//! on small VMs and would swamp the difference being measured); set
//! `BENCH_UNPINNED=1` to let the scheduler place them. `BENCH_QUICK=1`
//! shrinks everything for a smoke run; `BENCH_ONLY=mutex,c_mutex,semaphore,
//! c_semaphore,event,wait_any,c_wait_any,ping_pong,cross_user,many_events`
//! runs only the named
//! cases. `cross_user` needs root: it runs a system broker of its own and a
//! process of another uid.

use objmgr::{Event, MapAccess, Mutex, Reset, Section, Semaphore, View, Waitable};
use rustix::thread::futex;
use std::ffi::{CStr, c_char, c_void};
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod harness;
use harness::{Broker, PerOp, cpus_allowed, measure, report, rss_bytes, start_objmgrd};

// The C ABI, called as C code calls it.
use objmgr_win32 as _;
unsafe extern "C" {
    fn CreateMutexA(attributes: *const c_void, owned: i32, name: *const c_char) -> *mut c_void;
    fn CreateEventA(
        attributes: *const c_void,
        manual: i32,
        initial: i32,
        name: *const c_char,
    ) -> *mut c_void;
    fn OpenEventA(access: u32, inherit: i32, name: *const c_char) -> *mut c_void;
    fn CreateSemaphoreA(
        attributes: *const c_void,
        initial: i32,
        maximum: i32,
        name: *const c_char,
    ) -> *mut c_void;
    fn ReleaseSemaphore(handle: *mut c_void, count: i32, previous: *mut i32) -> i32;
    fn WaitForMultipleObjects(count: u32, handles: *const *mut c_void, all: i32, ms: u32) -> u32;
    fn WaitForSingleObject(handle: *mut c_void, ms: u32) -> u32;
    fn ReleaseMutex(handle: *mut c_void) -> i32;
    fn SetEvent(handle: *mut c_void) -> i32;
    fn CloseHandle(handle: *mut c_void) -> i32;
}
const INFINITE: u32 = u32::MAX;
const C_PING: &CStr = c"Local\\bench-c-ping";
const C_PONG: &CStr = c"Local\\bench-c-pong";

const ROLE_ENV: &str = "OBJMGR_BENCH_ROLE";
const ROUNDS_ENV: &str = "OBJMGR_BENCH_ROUNDS";
const PING: &str = "Local\\bench-ping";
const PONG: &str = "Local\\bench-pong";
const SHARED: &str = "Local\\bench-shared";

/// Raw baselines live in this section's memory (a `MAP_SHARED` memfd).
fn shared_view() -> (Section, View) {
    let section = Section::create(SHARED, 65536).unwrap();
    let view = section.map(MapAccess::WRITE).unwrap();
    (section, view)
}

fn pin_to_cpu0() {
    let mut set = rustix::thread::CpuSet::new();
    set.set(0);
    rustix::thread::sched_setaffinity(None, &set).unwrap();
}

/// The other side of a ping-pong, in a child process (this binary again).
fn pong_child(role: &str, rounds: u32) {
    match role {
        "events" => {
            let ping = Event::open(PING).unwrap();
            let pong = Event::open(PONG).unwrap();
            for _ in 0..rounds {
                ping.wait(None).unwrap();
                pong.set().unwrap();
            }
        }
        "c-events" => {
            // SAFETY: the documented C ABI, with valid names and handles.
            unsafe {
                let ping = OpenEventA(0x1F_0003, 0, C_PING.as_ptr());
                let pong = OpenEventA(0x1F_0003, 0, C_PONG.as_ptr());
                for _ in 0..rounds {
                    WaitForSingleObject(ping, INFINITE);
                    SetEvent(pong);
                }
                CloseHandle(ping);
                CloseHandle(pong);
            }
        }
        "futex" => {
            let section = Section::open(SHARED, MapAccess::WRITE).unwrap();
            let view = section.map(MapAccess::WRITE).unwrap();
            let (ping, pong) = (view.atomic_u32(0).unwrap(), view.atomic_u32(4).unwrap());
            for i in 1..=rounds {
                while ping.load(Ordering::Acquire) != i {
                    let _ = futex::wait(ping, futex::Flags::empty(), i - 1, None);
                }
                pong.store(i, Ordering::Release);
                let _ = futex::wake(pong, futex::Flags::empty(), 1);
            }
        }
        "cross-owner" => cross_user_owner(rounds),
        "cross-user" => cross_user_side("remote", rounds),
        other => panic!("unknown role {other}"),
    }
}

/// Objects a service shares with every user on the system broker.
const CROSS_EVENT: &str = "Global\\bench-cross-event";
const CROSS_MUTEX: &str = "Global\\bench-cross-mutex";
const CROSS_SEM: &str = "Global\\bench-cross-semaphore";

/// The service's side (root, in the objects' domain): creates them, times
/// its own fast path on them, then starts a process of another user that
/// times the same operations, which go through the broker.
fn cross_user_owner(rounds: u32) {
    use std::os::unix::process::CommandExt;
    let everyone = objmgr::security::SecurityDescriptor::from_sddl("D:(A;;GA;;;WD)").unwrap();
    let options = objmgr::CreateOptions {
        security: Some(everyone),
        ..Default::default()
    };
    let _event = Event::create_with(Some(CROSS_EVENT), Reset::Auto, false, &options).unwrap();
    let _mutex = Mutex::create_with(Some(CROSS_MUTEX), false, &options).unwrap();
    let _sem = Semaphore::create_with(Some(CROSS_SEM), 0, 1, &options).unwrap();
    cross_user_side("same", rounds);
    // A uid no account uses (and its gid; std drops supplementary groups).
    let other = 3_900_000 + std::process::id() % 100_000;
    let status = Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, "cross-user")
        .env(ROUNDS_ENV, rounds.to_string())
        .uid(other)
        .gid(other)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Times the shared objects' operations in this process and prints them as
/// `cross SIDE CASE NANOSECONDS` lines.
fn cross_user_side(side: &str, rounds: u32) {
    let event = Event::open(CROSS_EVENT).unwrap();
    let mutex = Mutex::open(CROSS_MUTEX).unwrap();
    let sem = Semaphore::open(CROSS_SEM).unwrap();
    let cases: [(&str, &dyn Fn()); 3] = [
        ("mutex", &|| drop(black_box(mutex.lock().unwrap()))),
        ("semaphore", &|| {
            sem.release(1).unwrap();
            black_box(sem.wait(None).unwrap());
        }),
        ("event", &|| {
            event.set().unwrap();
            black_box(event.wait(None).unwrap());
        }),
    ];
    for (case, op) in cases {
        let t = measure(3, rounds as usize, |_| op());
        println!("cross {side} {case} {}", t.nanos());
    }
}

/// Runs the cross-user case on a system broker of its own (needs root, to
/// act as another user) and reports the slow path against the fast path.
fn cross_user(rounds: u32) {
    let dir = std::env::temp_dir().join(format!("omtest-bench-system-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("system.sock");
    let mut broker = start_objmgrd(
        Command::new(env!("CARGO_BIN_EXE_objmgrd"))
            .args(["--system", "--idle-timeout", "never", "--socket"])
            .arg(&socket),
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, "cross-owner")
        .env(ROUNDS_ENV, rounds.to_string())
        .env_remove("OBJMGR_SOCKET")
        .env("OBJMGR_SYSTEM_SOCKET", &socket)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "the cross-user run failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let time = |side: &str, case: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("cross {side} {case} ")))
            .and_then(|ns| ns.trim().parse().ok())
            .map(PerOp)
            .unwrap_or_else(|| panic!("no {side} {case} figure in {text}"))
    };
    for (case, what) in [
        ("mutex", "acquire+release"),
        ("semaphore", "release+wait"),
        ("event", "set+wait"),
    ] {
        report(
            &format!("another user's {case} {what} (vs the owner's)"),
            time("remote", case),
            time("same", case),
            "- (two broker round trips)",
        );
    }
}

fn spawn_pong(role: &str, rounds: u32) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, role)
        .env(ROUNDS_ENV, rounds.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Time per round trip of an objmgr auto-reset event ping-pong.
fn events_ping_pong(rounds: u32) -> Duration {
    let ping = Event::create(Some(PING), Reset::Auto, false).unwrap();
    let pong = Event::create(Some(PONG), Reset::Auto, false).unwrap();
    let mut child = spawn_pong("events", rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        ping.set().unwrap();
        pong.wait(None).unwrap();
    }
    let elapsed = start.elapsed();
    child.wait().unwrap();
    elapsed / rounds
}

/// Time per round trip of the same ping-pong through the C ABI.
fn c_events_ping_pong(rounds: u32) -> Duration {
    // SAFETY: the documented C ABI, with valid names and handles.
    unsafe {
        let ping = CreateEventA(std::ptr::null(), 0, 0, C_PING.as_ptr());
        let pong = CreateEventA(std::ptr::null(), 0, 0, C_PONG.as_ptr());
        let mut child = spawn_pong("c-events", rounds);
        let start = Instant::now();
        for _ in 0..rounds {
            SetEvent(ping);
            WaitForSingleObject(pong, INFINITE);
        }
        let elapsed = start.elapsed();
        child.wait().unwrap();
        CloseHandle(ping);
        CloseHandle(pong);
        elapsed / rounds
    }
}

/// Time per round trip of a raw futex ping-pong through shared memory.
fn futex_ping_pong(view: &View, rounds: u32) -> Duration {
    let (ping, pong) = (view.atomic_u32(0).unwrap(), view.atomic_u32(4).unwrap());
    ping.store(0, Ordering::Release);
    pong.store(0, Ordering::Release);
    let mut child = spawn_pong("futex", rounds);
    let start = Instant::now();
    for i in 1..=rounds {
        ping.store(i, Ordering::Release);
        let _ = futex::wake(ping, futex::Flags::empty(), 1);
        while pong.load(Ordering::Acquire) != i {
            let _ = futex::wait(pong, futex::Flags::empty(), i - 1, None);
        }
    }
    let elapsed = start.elapsed();
    child.wait().unwrap();
    elapsed / rounds
}

/// A process-shared robust pthread mutex in shared memory.
fn robust_pthread_mutex(view: &View, offset: usize) -> *mut libc::pthread_mutex_t {
    let mutex = view
        .as_ptr()
        .wrapping_add(offset)
        .cast::<libc::pthread_mutex_t>();
    // SAFETY: the view is writable, large enough and suitably aligned at
    // `offset`; the attribute object lives on this stack frame only.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        assert_eq!(libc::pthread_mutex_init(mutex, &attr), 0);
        libc::pthread_mutexattr_destroy(&mut attr);
    }
    mutex
}

/// A process-shared POSIX semaphore in shared memory.
fn shared_sem(view: &View, offset: usize) -> *mut libc::sem_t {
    let sem = view.as_ptr().wrapping_add(offset).cast::<libc::sem_t>();
    // SAFETY: writable, large enough, aligned; pshared = 1.
    assert_eq!(unsafe { libc::sem_init(sem, 1, 0) }, 0);
    sem
}

/// The raw baseline for an auto-reset event: what one writes on futexes
/// by hand (a signaled flag, and a count of sleepers so that setting makes
/// no system call unless somebody sleeps).
struct FutexEvent {
    signaled: AtomicU32,
    sleepers: AtomicU32,
}

impl FutexEvent {
    fn set(&self) {
        self.signaled.store(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _ = futex::wake(&self.signaled, futex::Flags::empty(), 1);
        }
    }

    fn wait(&self) {
        while self.signaled.swap(0, Ordering::SeqCst) == 0 {
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let _ = futex::wait(&self.signaled, futex::Flags::empty(), 0, None);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// `Semaphore::release` as a call of its own.
#[inline(never)]
fn out_of_line_semaphore_release(semaphore: &Semaphore) -> bool {
    semaphore.release(1).is_ok()
}

/// `Semaphore::wait` as a call of its own.
#[inline(never)]
fn out_of_line_semaphore_wait(semaphore: &Semaphore) -> bool {
    semaphore.wait(None).is_ok()
}

/// The C ABI's lookup of a semaphore by handle value, alone.
#[inline(never)]
fn find_semaphore(value: u32) -> Option<u32> {
    objmgr::by_value::with_semaphore(value, |s| black_box(s.handle_value()))
}

/// Whether `BENCH_ONLY` (a comma-separated list) selects this case.
fn wanted(case: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|c| c == case))
}

/// `Mutex::wait` as a call of its own (the floor of `WaitForSingleObject`).
#[inline(never)]
fn out_of_line_wait(mutex: &Mutex) -> bool {
    mutex.wait(None).is_ok()
}

/// `Mutex::release` as a call of its own (the floor of `ReleaseMutex`).
#[inline(never)]
fn out_of_line_release(mutex: &Mutex) -> bool {
    mutex.release().is_ok()
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let rounds = std::env::var(ROUNDS_ENV).unwrap().parse().unwrap();
        return pong_child(&role, rounds);
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let pinned = std::env::var_os("BENCH_UNPINNED").is_none();
    let broker = Broker::start();
    println!(
        "objmgr synchronization benchmarks (CPUs allowed: {}; broker pid {})\n",
        cpus_allowed(),
        broker.pid()
    );
    let (batches, iters) = if quick { (3, 10_000) } else { (9, 200_000) };
    let (_section, view) = shared_view();

    // 1. Uncontended mutex acquire + release.
    if wanted("mutex") {
        let mutex = Mutex::create(None, false).unwrap();
        let ours = measure(batches, iters, |_| drop(black_box(mutex.lock().unwrap())));
        let raw = robust_pthread_mutex(&view, 256);
        let base = measure(batches, iters, |_| {
            // SAFETY: an initialized robust mutex in a live mapping.
            unsafe {
                libc::pthread_mutex_lock(raw);
                libc::pthread_mutex_unlock(raw);
            }
        });
        report(
            "mutex acquire+release, uncontended (vs robust pthread)",
            ours,
            base,
            "<= 1.3x",
        );
    }

    // 1b. The same through the C ABI.
    if wanted("c_mutex") {
        let mutex = Mutex::create(None, false).unwrap();
        let rust = measure(batches, iters, |_| drop(black_box(mutex.lock().unwrap())));
        // SAFETY: the documented C ABI, with a valid handle.
        let c = unsafe {
            let h = CreateMutexA(std::ptr::null(), 0, std::ptr::null());
            let t = measure(batches, iters, |_| {
                WaitForSingleObject(h, INFINITE);
                ReleaseMutex(h);
            });
            CloseHandle(h);
            t
        };
        report(
            "mutex acquire+release: C ABI (vs the Rust API)",
            c,
            rust,
            "<= 1.05x",
        );
        let raw = robust_pthread_mutex(&view, 512);
        let base = measure(batches, iters, |_| {
            // SAFETY: an initialized robust mutex in a live mapping.
            unsafe {
                libc::pthread_mutex_lock(raw);
                libc::pthread_mutex_unlock(raw);
            }
        });
        report(
            "mutex acquire+release: C ABI (vs robust pthread)",
            c,
            base,
            "<= 1.3x",
        );
        // What any C ABI costs before it looks a handle up: the same two
        // operations as two calls that are not inlined.
        let calls = measure(batches, iters, |_| {
            out_of_line_wait(&mutex);
            out_of_line_release(&mutex);
        });
        println!(
            "{:<58} {calls:>10}  ({:.2}x the Rust API; the rest of the C ABI's cost is its handle lookup)",
            "floor: the two calls out of line, no handle lookup",
            calls.0 / rust.0
        );
    }

    // 2. Semaphore release + wait, uncontended.
    if wanted("semaphore") {
        let sem = Semaphore::create(None, 0, 1).unwrap();
        let ours = measure(batches, iters, |_| {
            sem.release(1).unwrap();
            black_box(sem.wait(None).unwrap());
        });
        let raw = shared_sem(&view, 1024);
        let base = measure(batches, iters, |_| {
            // SAFETY: an initialized shared semaphore in a live mapping.
            unsafe {
                libc::sem_post(raw);
                libc::sem_wait(raw);
            }
        });
        report(
            "semaphore release+wait, uncontended (vs sem_post+sem_wait)",
            ours,
            base,
            "<= 1.3x",
        );
    }

    // 2b. The same through the C ABI.
    if wanted("c_semaphore") {
        let sem = Semaphore::create(None, 0, 1).unwrap();
        let rust = measure(batches, iters, |_| {
            sem.release(1).unwrap();
            black_box(sem.wait(None).unwrap());
        });
        // SAFETY: the documented C ABI, with a valid handle.
        let h = unsafe { CreateSemaphoreA(std::ptr::null(), 0, 1, std::ptr::null()) };
        // SAFETY: the documented C ABI, with the valid handle made above.
        let c = measure(batches, iters, |_| unsafe {
            ReleaseSemaphore(h, 1, std::ptr::null_mut());
            WaitForSingleObject(h, INFINITE);
        });
        report(
            "semaphore release+wait: C ABI (vs the Rust API)",
            c,
            rust,
            "<= 1.05x",
        );
        let raw = shared_sem(&view, 1536);
        let base = measure(batches, iters, |_| {
            // SAFETY: an initialized shared semaphore in a live mapping.
            unsafe {
                libc::sem_post(raw);
                libc::sem_wait(raw);
            }
        });
        report(
            "semaphore release+wait: C ABI (vs sem_post+sem_wait)",
            c,
            base,
            "<= 1.3x",
        );
        // What a call costs that cannot be inlined into its caller (as no C
        // call can), before any lookup.
        let calls = measure(batches, iters, |_| {
            black_box(out_of_line_semaphore_release(black_box(&sem)));
            black_box(out_of_line_semaphore_wait(black_box(&sem)));
        });
        println!(
            "{:<58} {calls:>10}  ({:.2}x the Rust API)",
            "floor: the two calls out of line, no handle lookup",
            calls.0 / rust.0
        );
        // What the C ABI adds to the Rust API: finding the handle by value
        // (the two lookups of the pair, out of line as in the C calls).
        let value = h as usize as u32;
        let lookups = measure(batches, iters, |_| {
            black_box(find_semaphore(black_box(value)));
            black_box(find_semaphore(black_box(value)));
        });
        println!(
            "{:<58} {lookups:>10}  ({:.2}x the Rust API; with it, {:.2}x)",
            "floor: the pair's two lookups by handle value alone",
            lookups.0 / rust.0,
            (lookups.0 + rust.0) / rust.0
        );
        // SAFETY: the handle made above, closed once.
        unsafe { CloseHandle(h) };
    }

    // 3. Event set + wait (auto-reset), uncontended.
    if wanted("event") {
        let event = Event::create(None, Reset::Auto, false).unwrap();
        let ours = measure(batches, iters, |_| {
            event.set().unwrap();
            black_box(event.wait(None).unwrap());
        });
        let raw = FutexEvent {
            signaled: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        };
        let base = measure(batches, iters, |_| {
            raw.set();
            raw.wait();
        });
        report(
            "event set+wait, uncontended (vs a futex event)",
            ours,
            base,
            "<= 1.5x",
        );
    }

    // 4. Wait-any on 64 objects, only the last signaled.
    if wanted("wait_any") {
        let others: Vec<Event> = (0..63)
            .map(|_| Event::create(None, Reset::Auto, false).unwrap())
            .collect();
        let last = Event::create(None, Reset::Manual, true).unwrap();
        let mut list: Vec<&dyn Waitable> = others.iter().map(|e| e as &dyn Waitable).collect();
        list.push(&last);
        let ours = measure(batches, iters / 10, |_| {
            black_box(objmgr::wait_any(&list, None).unwrap());
        });
        println!(
            "{:<58} objmgr {ours:>10}  (target <= 0.6 µs; no system call when one is signaled)",
            "wait-any on 64 objects, only the last signaled"
        );
    }

    // 4b. The same through the C ABI.
    if wanted("c_wait_any") {
        // SAFETY: the documented C ABI, with valid handles.
        let c = unsafe {
            let mut handles: Vec<*mut c_void> = (0..63)
                .map(|_| CreateEventA(std::ptr::null(), 0, 0, std::ptr::null()))
                .collect();
            handles.push(CreateEventA(std::ptr::null(), 1, 1, std::ptr::null()));
            let t = measure(batches, iters / 10, |_| {
                black_box(WaitForMultipleObjects(64, handles.as_ptr(), 0, INFINITE));
            });
            for h in handles {
                CloseHandle(h);
            }
            t
        };
        println!(
            "{:<58} objmgr {c:>10}  (target <= 0.6 µs)",
            "wait-any on 64 handles, only the last signaled: C ABI"
        );
    }

    // 5. Cross-process ping-pong with two auto-reset events vs raw futexes.
    if wanted("ping_pong") {
        if pinned {
            pin_to_cpu0();
        }
        let placement = if pinned {
            "both processes on CPU 0"
        } else {
            "unpinned"
        };
        let rounds = if quick { 2_000 } else { 50_000 };
        let mut ours = Vec::new();
        let mut base = Vec::new();
        for _ in 0..if quick { 1 } else { 5 } {
            ours.push(events_ping_pong(rounds));
            base.push(futex_ping_pong(&view, rounds));
        }
        ours.sort();
        base.sort();
        report(
            &format!("ping-pong round trip, 2 auto-reset events ({placement})"),
            ours[ours.len() / 2].into(),
            base[base.len() / 2].into(),
            "<= 1.1x",
        );
        let mut c_abi: Vec<Duration> = (0..if quick { 1 } else { 5 })
            .map(|_| c_events_ping_pong(rounds))
            .collect();
        c_abi.sort();
        report(
            &format!("ping-pong round trip: C ABI (vs the Rust API, {placement})"),
            c_abi[c_abi.len() / 2].into(),
            ours[ours.len() / 2].into(),
            "<= 1.1x",
        );
    }

    // 7. Objects shared between users (system broker): the slow path of
    // another user's process next to the owner's fast path.
    if wanted("cross_user") {
        if rustix::process::getuid().is_root() {
            cross_user(if quick { 2_000 } else { 20_000 });
        } else {
            println!(
                "{:<58} skipped (needs root to act as another user)",
                "cross-user"
            );
        }
    }

    // 6. A process holding 100,000 events: descriptors, mappings, memory.
    if wanted("many_events") {
        let count = if quick { 10_000 } else { 100_000 };
        let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let maps = || {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .count()
        };
        let (fds0, maps0, rss0) = (fds(), maps(), rss_bytes(broker.pid()));
        let start = Instant::now();
        let events: Vec<Event> = (0..count)
            .map(|_| Event::create(None, Reset::Auto, false).unwrap())
            .collect();
        let took = start.elapsed();
        println!(
            "{:<58} {count} events: +{} fds, +{} mappings in the process; broker +{} bytes/event; {:.2?} per create",
            "holding many events",
            fds() as i64 - fds0 as i64,
            maps() as i64 - maps0 as i64,
            rss_bytes(broker.pid()).saturating_sub(rss0) / count as u64,
            took / count as u32
        );
        drop(events);
    }
    drop(broker);
}
