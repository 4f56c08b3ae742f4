//! Broker memory under churn: spawns processes that exit, and creates and
//! closes objects of every type, in cycles, and prints the broker's resident
//! memory before and after. A broker that keeps nothing of what is gone stays
//! flat.
//!
//! ```sh
//! cargo run --release --example broker_churn -- 100000
//! ```
//!
//! Each cycle: spawn `/bin/true`, and a child that connects to the broker
//! with an inherited handle and makes an event, wait for each, close their
//! process and thread handles; create and close a named section, an unnamed section, an event,
//! a mutex, a semaphore, a waitable timer and a thread.

use objmgr::process::Command;
use objmgr::{Event, Mutex, Reset, Section, Semaphore, WaitableTimer};

/// The broker's resident set, in KiB.
fn broker_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cycle(i: u64) -> objmgr::Result<()> {
    // A child that is no objmgr client, and one that is (and holds an
    // inherited handle it never looks at).
    let child = Command::new("/bin/true").spawn()?;
    child.process.wait(None)?;
    drop(child);
    // One whose handles close while it still runs.
    drop(Command::new("/bin/true").spawn()?);
    let inherited = Event::create_with(
        None,
        Reset::Manual,
        false,
        &objmgr::CreateOptions {
            inheritable: true,
            ..objmgr::CreateOptions::default()
        },
    )?;
    let exe = std::env::current_exe().expect("own path");
    let child = Command::new(exe.to_string_lossy())
        .arg("child")
        .inherit_handles(true)
        .spawn()?;
    child.process.wait(None)?;
    drop(child);
    inherited.close()?;
    Section::create(&format!("Local\\churn-{i}"), 4096)?.close()?;
    Section::builder().size(65536).create()?.close()?;
    Event::create(
        Some(&format!("Local\\churn-event-{i}")),
        Reset::Manual,
        false,
    )?
    .close()?;
    Mutex::create(None, true)?.close()?;
    Semaphore::create(None, 1, 10)?.close()?;
    WaitableTimer::create(None, Reset::Auto)?.close()?;
    let thread = objmgr::thread::spawn(|| 0)?;
    thread.wait(None)?;
    thread.close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("child") => {
            Event::create(None, Reset::Auto, false)?;
            return Ok(());
        }
        Some("parent") => {
            Command::new("/bin/true").spawn()?;
            return Ok(());
        }
        _ => {}
    }
    let cycles: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    // Warm up: allocator pools and tables reach their working size.
    let warm_up = (cycles / 10).max(1000);
    for i in 0..warm_up {
        cycle(i)?;
    }
    let pid = objmgr::admin::broker_status()?.pid;
    let before = broker_rss_kib(pid);
    for i in 0..cycles {
        cycle(i)?;
    }
    let after = broker_rss_kib(pid);
    // The last thread closes its own handle as it ends: give it a moment.
    let mut status = objmgr::admin::broker_status()?;
    for _ in 0..200 {
        if status.objects == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        status = objmgr::admin::broker_status()?;
    }
    println!(
        "broker RSS after {warm_up} warm-up cycles: {before} KiB; after {cycles} more: {after} KiB \
         ({:+.1} bytes per cycle); objects left: {}, handles left: {}, process records: {}",
        (after as f64 - before as f64) * 1024.0 / cycles as f64,
        status.objects,
        status.handles,
        status.processes_tracked
    );
    Ok(())
}
