//! A broker that dies (killed, crashed, stopped) takes its whole session
//! with it, at once and for everyone: every handle of it fails with
//! `ERROR_INVALID_HANDLE` in every operation, also those that never reach
//! the broker; every wait on one ends; names are looked up in a new broker,
//! which starts empty. No process goes on using an object that another
//! process can no longer reach by its name. Views keep their memory.

mod common;
#[path = "common/script.rs"]
mod script;

use std::time::Duration;

use common::TestBroker;

/// Entry point for child processes (see `sections.rs`).
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

/// Kills (SIGKILL) the test's one running broker.
fn kill_broker(broker: &TestBroker) {
    let pids = broker.broker_pids();
    assert_eq!(pids.len(), 1, "one broker runs: {pids:?}");
    // SAFETY: sends a signal to a process of this test; no memory involved.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    TestBroker::eventually("the broker to die", || broker.broker_pids().is_empty());
}

#[test]
fn a_killed_broker_fails_old_handles_at_once_and_ends_their_waits() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "event Local\\lost manual 0",
        "create Local\\lost-memory 4096",
        "map write",
        "write 0 kept",
        "hold_waiting 0",
        "set 0",
        "wait 0 0",
        "read 0 4",
        "map read",
        "open_event Local\\lost",
        "open Local\\lost-memory read",
        "event Local\\lost manual 1",
        "wait 1 0",
    ]);
    holder.wait_for("holding");
    kill_broker(&broker);
    // The wait ends with no broker running: nothing has started one yet.
    let ended = holder.wait_for_within("bg ", Duration::from_secs(10));
    assert!(ended.starts_with("bg err 6 "), "{ended}");
    assert!(ended.contains("gone"), "{ended}");
    assert!(broker.broker_pids().is_empty());
    holder.release();
    let lines = holder.finish();
    let after: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("bg "))
        .skip(2) // the waiter's line and the hold's
        .map(String::as_str)
        .collect();
    assert_eq!(after.len(), 8, "{lines:?}");
    assert!(after[0].starts_with("err 6 "), "a signal fails: {lines:?}");
    assert!(after[1].starts_with("err 6 "), "a poll fails: {lines:?}");
    assert_eq!(after[2], "read kept", "views keep their memory");
    assert!(
        after[3].starts_with("err 6 "),
        "a new view fails: {lines:?}"
    );
    // Names are looked up in a new broker, which starts empty.
    assert!(after[4].starts_with("err 2 "), "{lines:?}");
    assert!(after[5].starts_with("err 2 "), "{lines:?}");
    assert_eq!(after[6], "event existed=0");
    assert_eq!(after[7], "wait object 0");
}

/// The same when a call is waiting for the broker's answer as it dies: the
/// call notices the loss first (it holds the connection), and the waits of
/// the lost session still end.
#[test]
fn waits_end_when_a_call_in_flight_notices_the_loss_first() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "event Local\\inflight manual 0",
        "bg_wait_event Local\\inflight",
        "hold",
        "open_event Local\\inflight",
        "hold",
    ]);
    holder.wait_for("holding");
    let pids = broker.broker_pids();
    assert_eq!(pids.len(), 1);
    let pid = pids[0] as i32;
    // SAFETY: signals to this test's broker; no memory involved.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    holder.release();
    // The open is sent and waits for an answer that will not come.
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let ended = holder.wait_for_within("bg ", Duration::from_secs(10));
    assert!(ended.starts_with("bg err 6 "), "{ended}");
    holder.release();
    let lines = holder.finish();
    // The open went to a new broker, which has no such name.
    assert!(lines.iter().any(|l| l.starts_with("err 2 ")), "{lines:?}");
}

/// No split brain: once one process has lost a name with its broker, no
/// other process finds the old object under it, and a new object under the
/// name is one object for everyone who opens it from then on.
#[test]
fn after_a_broker_dies_a_name_means_one_object_for_everyone() {
    let broker = TestBroker::new();
    let mut first = broker.spawn(&[
        "create Local\\shared 4096",
        "map write",
        "write 0 old",
        "hold",
        "create Local\\shared 4096",
        "map write",
        "write 0 new",
        "hold",
    ]);
    first.wait_for("holding");
    kill_broker(&broker);
    first.release();
    first.wait_for("holding");
    // A second process opens the name: it gets the object the first process
    // created after the loss, not an object of its own.
    let lines = broker.run(&["open Local\\shared read", "map read", "read 0 3"]);
    assert_eq!(lines[2], "read new", "{lines:?}");
    first.release();
    let lines = first.finish();
    assert_eq!(lines[5], "create existed=0", "a new object: {lines:?}");
}

/// A mutex's waiters do not hang when its owner dies after the broker did.
#[test]
fn a_wait_on_a_mutex_whose_owner_dies_with_no_broker_does_not_hang() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["mutex Local\\owned 1", "hold"]);
    owner.wait_for("holding");
    let mut waiter = broker.spawn(&["open_mutex Local\\owned", "hold_waiting 0"]);
    waiter.wait_for("holding");
    kill_broker(&broker);
    owner.kill9();
    let ended = waiter.wait_for_within("bg ", Duration::from_secs(10));
    assert!(ended.starts_with("bg err 6 "), "{ended}");
    waiter.release();
    waiter.finish();
}
