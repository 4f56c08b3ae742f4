//! A broker that dies (killed, crashed) is replaced, and loses nothing:
//! the processes of the lost broker bring their handles to the new one,
//! which rebuilds the objects and names from them; handles keep working,
//! waits keep waiting, a name keeps meaning one object, and a mutex whose
//! owner died while no broker ran is abandoned. A process holding a handle
//! no broker can take back (a job, here) loses its whole session instead,
//! at once: every handle of it fails with `ERROR_INVALID_HANDLE` in every
//! operation, also those that never reach the broker, and every wait on one
//! ends. No process goes on using an object that another process can no
//! longer reach by its name.

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

/// Stops process `pid` and waits until every thread of it has stopped.
fn stop(pid: u32) {
    common::signal(pid, libc::SIGSTOP);
    TestBroker::eventually("the process to stop", || {
        common::process_state(pid) == Some('T')
    });
}

/// A script's lines after its background waiter's line and the line of the
/// hold it ran under.
fn after_the_wait(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .skip_while(|l| !l.starts_with("bg "))
        .skip(2)
        .map(String::as_str)
        .collect()
}

#[test]
fn a_new_broker_takes_every_handle_back_and_names_keep_their_objects() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "event Local\\kept manual 0",
        "semaphore Local\\kept-count 1 2",
        "create - 8192",
        "map write",
        "write 0 nameless",
        "create Local\\kept-memory 4096",
        "map write",
        "write 0 kept",
        "hold_waiting 0",
        "read 0 4",
        "map write",
        "write 0 more",
        "read 0 4",
        "release 1",
        "wait 1 0",
        "open_event Local\\kept",
        "create Local\\kept-memory 4096",
        "hold",
    ]);
    holder.wait_for("holding");
    let old = broker.kill_broker();
    // The holder's watcher starts a new broker at once and hands it its
    // handles; nothing else has to call.
    broker.new_broker(old);
    // Another process finds the same objects under the names: what the
    // holder wrote, and the event its waiting thread sleeps on.
    let lines = broker.run(&[
        "open Local\\kept-memory read",
        "map read",
        "read 0 4",
        "open_event Local\\kept",
        "set 0",
        "open_semaphore Local\\kept-count",
        "wait 1 0",
    ]);
    assert_eq!(lines[2], "read kept", "{lines:?}");
    assert_eq!(lines[4], "set", "{lines:?}");
    assert_eq!(lines[6], "wait object 0", "the count was kept: {lines:?}");
    let ended = holder.wait_for_within("bg ", Duration::from_secs(10));
    assert_eq!(ended, "bg wait object 0", "the old wait goes on");
    holder.release();
    let lines = holder.finish();
    let after = after_the_wait(&lines);
    assert_eq!(after.len(), 10, "{lines:?}");
    assert_eq!(after[0], "read kept", "{lines:?}");
    assert!(after[1].starts_with("map "), "a new view: {lines:?}");
    assert_eq!(after[3], "read more", "{lines:?}");
    assert_eq!(after[4], "released previous=0", "{lines:?}");
    assert_eq!(after[5], "wait object 0", "{lines:?}");
    assert_eq!(after[6], "opened", "{lines:?}");
    assert_eq!(after[7], "create existed=1", "{lines:?}");
    // Once its last holder is gone, an object goes with its name, as ever.
    let lines = broker.run(&["open_event Local\\kept", "open Local\\kept-memory read"]);
    assert!(lines[0].starts_with("err 2 "), "{lines:?}");
    assert!(lines[1].starts_with("err 2 "), "{lines:?}");
    let out = broker.objmgr(&["broker", "status", "--json"]).stdout;
    let status: serde_json::Value = serde_json::from_slice(&out).expect("status is JSON");
    assert_eq!(status["objects"], 0, "nothing is left: {status}");
    assert_eq!(status["handles"], 0, "{status}");
}

/// Files a process opened come back with it: their share modes still keep
/// other opens out, the process reads and writes on at its own position,
/// and its copy of a handle is the same open.
#[test]
fn files_a_process_opened_come_back_with_their_share_modes() {
    let broker = TestBroker::new();
    let file = broker.dir.join("kept.dat").display().to_string();
    let mut holder = broker.spawn(&[
        // Read and write; others may only read.
        &format!("fopen {file} rw 1"),
        // The connection's note of the open is the file's own descriptor.
        &format!("fdcount {file}"),
        "fwrite 0 hello",
        // A copy of its own handle (value 4), for reading.
        "dup_self 4 1",
        "hold",
        "fwrite 0 world",
        "adopt_file 8",
        "hold",
    ]);
    holder.wait_for("holding");
    let old = broker.kill_broker();
    broker.new_broker(old);
    let lines = broker.run(&[
        &format!("fopen {file} rw 7"),
        &format!("fopen {file} r 7"),
        "fread 0 5",
    ]);
    assert!(
        lines[0].starts_with("err 32 "),
        "the share mode holds: {lines:?}"
    );
    assert!(lines[1].starts_with("fopen value="), "{lines:?}");
    assert_eq!(lines[2], "read hello", "{lines:?}");
    holder.release();
    holder.wait_for("holding");
    holder.release();
    let lines = holder.finish();
    assert_eq!(lines[1], "fdcount 1", "one descriptor per open: {lines:?}");
    assert_eq!(lines[2], "wrote 5", "{lines:?}");
    assert_eq!(lines[3], "dup value=8", "{lines:?}");
    assert_eq!(lines[6], "wrote 5", "at its own position: {lines:?}");
    assert_eq!(lines[7], "adopted file", "the copy came back: {lines:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "helloworld");
    // The opens went with their holder.
    let lines = broker.run(&[&format!("fopen {file} rw 0")]);
    assert!(lines[0].starts_with("fopen value="), "{lines:?}");
    let out = broker.objmgr(&["broker", "status", "--json"]).stdout;
    let status: serde_json::Value = serde_json::from_slice(&out).expect("status is JSON");
    assert_eq!(status["objects"], 0, "nothing is left: {status}");
}

/// A mutex's waiters are told it is abandoned when its owner dies while no
/// broker runs: the new broker reaps the owner's tag in the old arena.
#[test]
fn a_mutex_whose_owner_dies_with_no_broker_is_abandoned() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["mutex Local\\owned 1", "hold"]);
    owner.wait_for("holding");
    let mut waiter = broker.spawn(&["open_mutex Local\\owned", "hold_waiting 0"]);
    waiter.wait_for("holding");
    // The owner cannot come back: it is stopped, then killed.
    stop(owner.child.id());
    broker.kill_broker();
    owner.kill9();
    let ended = waiter.wait_for_within("bg ", Duration::from_secs(10));
    assert_eq!(ended, "bg wait abandoned 0");
    waiter.release();
    waiter.finish();
}

/// A request in flight as the broker dies (the broker is stopped under it,
/// then killed) is sent again to the new broker once the handles are back:
/// here `SetHandleInformation`, which names a handle of the session.
#[test]
fn a_request_in_flight_goes_to_the_new_broker() {
    request_in_flight_goes_to_the_new_broker(&[]);
}

/// The same, for a request left in the connection's page (the process
/// asked a few times first): the process notices its broker is gone while
/// it sleeps on the page, and the page shows the broker never began it. The
/// request is a `DuplicateHandle`, which only that lets the process send
/// again (it may act on other processes).
#[test]
fn a_request_in_flight_in_the_page_goes_to_the_new_broker() {
    request_in_flight_goes_to_the_new_broker(&["open Local\\absent read"; 6]);
}

fn request_in_flight_goes_to_the_new_broker(first: &[&str]) {
    let broker = TestBroker::new();
    let mut steps = vec![
        "event Local\\inflight manual 0",
        "bg_wait_event Local\\inflight",
    ];
    steps.extend(first);
    steps.push("hold");
    if !first.is_empty() {
        steps.push("dup_self 4 100002");
    }
    steps.extend([
        "set_handle_info 4 1 1",
        "handle_info 4",
        "open_event Local\\inflight",
        "set 1",
        "hold",
    ]);
    let mut holder = broker.spawn(&steps);
    holder.wait_for("holding");
    // (With a doorbell, the request below goes in the page.)
    let status = broker.objmgr(&["broker", "status"]);
    let doorbells = String::from_utf8_lossy(&status.stdout)
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("doorbell")?
                .trim()
                .parse::<u32>()
                .ok()
        })
        .unwrap();
    assert_eq!(doorbells, u32::from(!first.is_empty()));
    let pids = broker.broker_pids();
    assert_eq!(pids.len(), 1);
    common::signal(pids[0], libc::SIGSTOP);
    holder.release();
    // The request is sent and waits for an answer that will not come.
    std::thread::sleep(Duration::from_millis(200));
    common::signal(pids[0], libc::SIGKILL);
    let ended = holder.wait_for_within("bg ", Duration::from_secs(10));
    assert_eq!(ended, "bg wait object 0");
    holder.release();
    let lines = holder.finish();
    // (The background waiter's line may come anywhere.)
    let after: Vec<&str> = lines
        .iter()
        .skip_while(|l| l.as_str() != "released")
        .skip(1)
        .filter(|l| !l.starts_with("bg "))
        .map(String::as_str)
        .collect();
    let after = match first.is_empty() {
        true => &after[..],
        false => {
            assert!(after[0].starts_with("dup value="), "{lines:?}");
            &after[1..]
        }
    };
    assert_eq!(after[..4], ["set", "flags 1", "opened", "set"], "{lines:?}");
}

/// Fail-stop: a process holding a handle that no broker can take back (a
/// job) loses its whole session at once when its broker dies: old handles
/// fail in every operation, its waits end, views keep their memory, and
/// names go to the new broker, which does not have them.
#[test]
fn a_session_that_cannot_be_taken_back_fails_at_once() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "job Local\\lost-job",
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
    broker.kill_broker();
    let ended = holder.wait_for_within("bg ", Duration::from_secs(10));
    assert!(ended.starts_with("bg err 6 "), "{ended}");
    assert!(ended.contains("gone"), "{ended}");
    holder.release();
    let lines = holder.finish();
    let after = after_the_wait(&lines);
    assert_eq!(after.len(), 8, "{lines:?}");
    assert!(after[0].starts_with("err 6 "), "a signal fails: {lines:?}");
    assert!(after[1].starts_with("err 6 "), "a poll fails: {lines:?}");
    assert_eq!(after[2], "read kept", "views keep their memory");
    assert!(
        after[3].starts_with("err 6 "),
        "a new view fails: {lines:?}"
    );
    // Names are looked up in a new broker, which does not have them.
    assert!(after[4].starts_with("err 2 "), "{lines:?}");
    assert!(after[5].starts_with("err 2 "), "{lines:?}");
    assert_eq!(after[6], "event existed=0");
    assert_eq!(after[7], "wait object 0");
}

/// A process that was given handles (here, inherited from its parent) never
/// comes back to a new broker: it might not know every handle it was given
/// (this child never took its inherited one over), and one it does not know
/// of would be lost silently, its value free for another object. It is
/// fail-stop: the name of the event it made itself is gone with its session.
#[test]
fn a_process_that_was_given_handles_does_not_come_back() {
    let broker = TestBroker::new();
    let mut parent = broker.spawn(&[
        "event_inh Local\\gifted manual 0",
        "spawn inherit event Local\\childs manual 0;wait 0 inf",
        "hold",
    ]);
    parent.wait_for("holding");
    TestBroker::eventually("the child to make its event", || {
        broker.objmgr(&["stat", "Local\\childs"]).status.success()
    });
    broker.kill_broker();
    let lines = broker.run(&["open_event Local\\childs", "open_event Local\\gifted"]);
    assert!(lines[0].starts_with("err 2 "), "{lines:?}");
    assert!(lines[1].starts_with("err 2 "), "{lines:?}");
    parent.release();
    parent.finish();
}

/// A broker that dies during its own recovery: the next one takes over from
/// its journal, which still names the process that had not come back yet
/// (stopped), and everyone comes back to it.
#[test]
fn a_broker_that_dies_while_recovering_is_replaced_too() {
    let broker = TestBroker::new();
    let mut slow = broker.spawn(&[
        "event Local\\\\chain manual 0",
        "create Local\\\\chain-memory 4096",
        "map write",
        "write 0 chain",
        "hold",
        "read 0 5",
    ]);
    slow.wait_for("holding");
    let mut waiter = broker.spawn(&["open_event Local\\\\chain", "hold_waiting 0"]);
    waiter.wait_for("holding");
    stop(slow.child.id());
    let first = broker.kill_broker();
    // The waiter comes back to a second broker, which waits for the
    // stopped process; it dies too.
    let second = broker.new_broker(first);

    std::thread::sleep(Duration::from_millis(300));
    common::signal(second, libc::SIGKILL);
    TestBroker::eventually("the second broker to die", || {
        !broker.broker_pids().contains(&second)
    });
    broker.new_broker(second);
    common::signal(slow.child.id(), libc::SIGCONT);
    let lines = broker.run(&[
        "open Local\\\\chain-memory read",
        "map read",
        "read 0 5",
        "open_event Local\\\\chain",
        "set 0",
    ]);
    assert_eq!(lines[2], "read chain", "{lines:?}");
    let ended = waiter.wait_for_within("bg ", Duration::from_secs(10));
    assert_eq!(ended, "bg wait object 0");
    slow.release();
    let lines = slow.finish();
    assert_eq!(lines.last().map(String::as_str), Some("read chain"));
    waiter.release();
    waiter.finish();
}

/// A waitable timer keeps its meaning across the broker's death: armed
/// before, it comes due after (its state never needed the broker), ending a
/// wait that began before, and another process finds it, signaled, by name.
#[test]
fn a_timer_armed_before_the_broker_dies_comes_due_after() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "timer Local\\\\tick manual",
        // Due in 5 s.
        "settimer 0 -50000000 0",
        "hold_waiting 0",
    ]);
    holder.wait_for("holding");
    let armed = std::time::Instant::now();
    let first = broker.kill_broker();
    broker.new_broker(first);
    let replaced = armed.elapsed();
    assert!(
        replaced < Duration::from_millis(4000),
        "the broker must be replaced before the timer is due ({replaced:?})"
    );
    let ended = holder.wait_for_within("bg ", Duration::from_secs(10));
    assert_eq!(ended, "bg wait object 0");
    assert!(
        armed.elapsed() >= Duration::from_millis(4000),
        "the wait ended when the timer came due, after the new broker"
    );
    let lines = broker.run(&["open_timer Local\\\\tick", "wait 0 0"]);
    assert_eq!(lines[1], "wait object 0", "{lines:?}");
    holder.release();
    holder.finish();
}

/// A section the process holds twice, with a close left in its close ring
/// and an open that shared its descriptor, comes back whole: the closed
/// handle stays closed, and opens by name after the takeover (whose hints
/// name the lost broker's numbers) get the same section, with a descriptor.
#[test]
fn close_rings_and_shared_descriptors_survive_a_new_broker() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "create Local\\ringed-memory 4096", // 4
        "map write",
        "write 0 before",
        "open Local\\ringed-memory read", // 8: shares 4's descriptor
        "open Local\\ringed-memory read", // 12
        "close",                          // 12, into the ring
        "hold",
        "open Local\\ringed-memory write", // after the takeover
        "fdmode",
        "map write",
        "write 0 after!",
        "close", // into the new broker's ring
        "hold",
    ]);
    holder.wait_for("holding");
    let pid = holder.child.id().to_string();
    replace_broker_until_back(&broker, &pid, 2);
    holder.release();
    holder.wait_for("holding");
    let lines = holder.lines.clone();
    let n = lines.len();
    assert_eq!(lines[n - 6], "open", "{lines:?}");
    assert_eq!(lines[n - 5], "fdmode rw", "{lines:?}");
    let seen = broker.run(&["open Local\\ringed-memory read", "map read", "read 0 6"]);
    assert_eq!(seen[2], "read after!", "one section: {seen:?}");
    let listed = broker.objmgr(&["handles", &pid]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.matches("Section").count(), 2, "{listed}");
    holder.release();
    holder.finish();
    let lines = broker.run(&["open Local\\ringed-memory read"]);
    assert!(lines[0].starts_with("err 2 "), "nothing is left: {lines:?}");
}

/// Sections over files come back: a named one keeps its name and its file,
/// an unnamed one its handle, and both map the file as before.
#[test]
fn sections_over_files_come_back() {
    let broker = TestBroker::new();
    let path = broker.dir.join("mapped.bin");
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    let p = path.to_str().unwrap();
    let mut holder = broker.spawn(&[
        &format!("create_file {p} rw Local\\mapped-file 8192"),
        "map write",
        "write 0 named",
        &format!("create_file {p} rw - 4096"),
        "map write",
        "write 100 nameless",
        "hold",
        "map write", // a new view of the unnamed one, after the takeover
        "write 100 again",
        "read 100 5",
        "close",
        "close",
        "hold",
    ]);
    holder.wait_for("holding");
    let pid = holder.child.id().to_string();
    replace_broker_until_back(&broker, &pid, 2);
    // Another process finds the named one over the same file.
    let seen = broker.run(&["open Local\\mapped-file read", "map read", "read 0 5"]);
    assert_eq!(seen[2], "read named", "{seen:?}");
    holder.release();
    holder.wait_for("holding");
    let lines = holder.lines.clone();
    assert!(lines.iter().any(|l| l == "read again"), "{lines:?}");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(&data[100..105], b"again", "written through to the file");
    // Both closed: nothing is left, the name is free.
    let seen = broker.run(&["open Local\\mapped-file read"]);
    assert!(seen[0].starts_with("err 2 "), "{seen:?}");
    holder.release();
    holder.finish();
}

/// Kills the broker, and waits until a new one has the `sections` section
/// handles of process `pid` back.
fn replace_broker_until_back(broker: &TestBroker, pid: &str, sections: usize) {
    let old = broker.kill_broker();
    broker.new_broker(old);
    TestBroker::eventually("the holder to be back", || {
        let listed = broker.objmgr(&["handles", pid]);
        String::from_utf8_lossy(&listed.stdout)
            .matches("Section")
            .count()
            == sections
    });
}
