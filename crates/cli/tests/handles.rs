//! Handles across processes: inheritance, `DuplicateHandle`, handle flags,
//! process and thread objects, fork. Real processes, one broker per test.

mod common;
#[path = "common/script.rs"]
mod script;

use common::TestBroker;

/// Entry point for child processes (see `sections.rs`).
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

fn objmgr_out(broker: &TestBroker, args: &[&str]) -> String {
    String::from_utf8_lossy(&broker.objmgr(args).stdout).into_owned()
}

#[test]
fn an_unnamed_section_is_shared_with_a_child_by_inheritance() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create_inh - 65536",
        "map all",
        "write 0 from-parent",
        "spawn inherit adopt_section $H;map all;read 0 11;write 100 from-child",
        "child_finish",
        "read 100 10",
    ]);
    assert!(
        lines.contains(&"child read from-parent".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"child exit=0".to_owned()), "{lines:?}");
    assert_eq!(lines.last().unwrap(), "read from-child");
}

#[test]
fn only_inheritable_handles_reach_the_child() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create - 65536",    // handle 4, not inheritable
        "create_inh - 4096", // handle 8
        "spawn inherit adopt_section 4;adopt_section 8",
        "child_finish",
        "spawn noinherit adopt_section 8",
        "child_finish",
        "set_handle_info 4 1 1", // marked inheritable later
        "handle_info 4",
        "spawn inherit adopt_section 4",
        "child_finish",
    ]);
    let child: Vec<&String> = lines.iter().filter(|l| l.starts_with("child ")).collect();
    assert!(child[0].starts_with("child err 6 "), "{lines:?}");
    assert_eq!(child[1], "child adopted");
    assert!(
        child[3].starts_with("child err 6 "),
        "without bInheritHandles: {lines:?}"
    );
    assert!(lines.contains(&"flags 1".to_owned()), "{lines:?}");
    assert_eq!(lines[lines.len() - 2], "child adopted");
}

#[test]
fn duplicate_handle_into_and_out_of_another_process() {
    let broker = TestBroker::new();
    let mut other = broker.spawn(&[
        "create Local\\\\theirs 65536", // handle 4 in that process
        "map all",
        "write 0 their-data",
        "hold",
        "adopt_section $IN",
        "map read",
        "read 0 7",
        "map all",
    ]);
    other.wait_for("holding");
    let pid = other.child.id().to_string();
    let lines = broker.run(&[
        &format!("open_process {pid}"),
        "create - 65536",
        "map all",
        "write 0 our-data",
        "dup_from 0 4 same", // out of the other process
        "adopt_section $D",
        "map read",
        "read 0 10",
        // A read-only handle to a section whose descriptor lets everyone
        // read only: more than the handle has is refused.
        "create_sd Local\\\\readable D:(A;;GR;;;WD)",
        "open Local\\\\readable read",
        "dup_into 0 $H 6",
        "dup_into 0 8 4", // our section, reduced to FILE_MAP_READ
    ]);
    assert_eq!(lines[7], "read their-data", "{lines:?}");
    assert!(lines[10].starts_with("err 5 "), "{lines:?}");
    let value = lines[11].strip_prefix("dup value=").expect("duplicated");
    other.release_with(value);
    let theirs = other.finish();
    let n = theirs.len();
    assert_eq!(theirs[n - 2], "read our-dat", "{theirs:?}");
    // The duplicate has read access only: no writable view, the kernel agrees.
    assert!(theirs[n - 1].starts_with("err 5 "), "{theirs:?}");
}

#[test]
fn process_exit_codes_waits_and_termination() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "spawn noinherit exit 7",
        "child_finish",
        "spawn noinherit event - auto 0;wait 0 inf",
        "exit_code",
        "terminate 42",
        "child_finish",
        "spawn noinherit exit 0",
        "child_finish",
    ]);
    assert!(lines.contains(&"child exit=7".to_owned()), "{lines:?}");
    // STILL_ACTIVE while it runs; then the code TerminateProcess gave.
    assert!(lines.contains(&"exit_code 259".to_owned()), "{lines:?}");
    assert!(lines.contains(&"child exit=42".to_owned()), "{lines:?}");
    assert_eq!(lines.last().unwrap(), "child exit=0");
}

#[test]
fn a_process_handle_waits_alongside_events() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event - auto 0",
        "spawn noinherit exit 3",
        "child_process",
        "wait_any 0,1 20000",
        "exitcode 1",
        "wait 1 0", // an exited process stays signaled
        "terminate 9",
    ]);
    assert_eq!(lines[3], "wait object 1", "{lines:?}");
    assert_eq!(lines[4], "exitcode 3");
    assert_eq!(lines[5], "wait object 0");
    // Terminating a process that has exited: ERROR_ACCESS_DENIED.
    assert!(lines[6].starts_with("err 5 "), "{lines:?}");
}

#[test]
fn a_killed_child_releases_its_inherited_handles() {
    let broker = TestBroker::new();
    let mut parent = broker.spawn(&[
        "create_inh Global\\\\inherited 4096",
        "spawn inherit event - auto 0;wait 0 inf",
        "close",
        "hold",
        "child_kill9",
        "child_finish",
    ]);
    parent.wait_for("holding");
    let handles = |broker: &TestBroker| {
        objmgr_out(broker, &["stat", "Global\\inherited"])
            .lines()
            .find_map(|l| l.strip_prefix("handles:").map(|v| v.trim().to_owned()))
    };
    // The parent closed its handle; the child's inherited one keeps it alive.
    assert_eq!(handles(&broker).as_deref(), Some("1"));
    parent.release();
    let lines = parent.finish();
    assert_eq!(lines.last().unwrap(), "child exit=137", "{lines:?}");
    TestBroker::eventually("the name is free", || handles(&broker).is_none());
}

#[test]
fn grandchildren_inherit_through_two_generations() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create_inh - 4096",
        "map all",
        "write 0 grand",
        "spawn inherit spawn inherit adopt_section $H|map read|read 0 5;child_finish",
        "child_finish",
    ]);
    assert!(
        lines.contains(&"child child read grand".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"child child exit=0".to_owned()),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "child exit=0");
}

#[test]
fn handle_flags_inherit_and_protect_from_close() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event e auto 0",
        "handle_info $E",
        "set_handle_info $E 3 3",
        "handle_info $E",
        "closeobj 0",
        "adopt_event 4",
        "set_handle_info 4 2 0",
        "closeobj 0",
        "handle_info 4",
    ]);
    assert_eq!(lines[1], "flags 0");
    assert_eq!(lines[3], "flags 3");
    assert!(
        lines[4].starts_with("err 6 "),
        "a protected handle: {lines:?}"
    );
    assert_eq!(lines[5], "adopted", "it is still open");
    assert_eq!(lines[7], "closed");
    assert!(lines[8].starts_with("err 6 "), "{lines:?}");
}

/// Forks as `fork_check` (with `how`) does, once the parent asks through
/// its connection's page: the child's old handle fails, a new object works
/// there, the child has not inherited the page (with which it could ask
/// as its parent), and the parent's handle (to an auto-reset event the
/// child did not take) and page are untouched.
fn check_forked_child(how: &str) {
    check_forked_child_with(how, "-");
}

fn check_forked_child_with(how: &str, mine: &str) {
    let broker = TestBroker::new();
    let mut steps = vec!["event e auto 1"];
    steps.extend(["event - auto 0"; 5]);
    steps.extend([how, "wait 0 0", "event - auto 0"]);
    let lines = broker.run(&steps);
    assert!(
        lines.contains(&format!(
            "forkchild page=no object=err6 value=err6 new=wait object 0 mine={mine} placeholders=0"
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"forked status=0 page=yes".to_owned()),
        "{lines:?}"
    );
    let n = lines.len();
    assert_eq!(lines[n - 2], "wait object 0");
    assert!(lines[n - 1].starts_with("event"), "{lines:?}");
}

#[test]
fn a_forked_child_starts_with_no_handles_and_a_working_client() {
    check_forked_child("fork_check");
}

/// A child made by a bare `clone` runs none of the `fork()` handlers: the
/// client still sees that it is not its parent (the page holding the handle
/// generation is wiped in the child).
#[test]
fn a_child_cloned_without_fork_handlers_starts_with_no_handles() {
    check_forked_child("fork_check raw");
}

/// A forked child that closes every descriptor it inherited and opens its
/// own (a daemon does) keeps them: the library closes its copies of the
/// parent's connection only while their numbers still name them.
#[test]
fn a_forked_child_that_closed_what_it_inherited_keeps_the_files_it_opened() {
    check_forked_child_with("fork_check closefrom", "kept");
    check_forked_child_with("fork_check raw closefrom", "kept");
}

#[test]
fn threads_have_waitable_handles_and_exit_codes() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "thread_spawn 5 50",
        "exitcode 0",
        "wait 0 20000",
        "exitcode 0",
        "event - auto 0",
        "thread_spawn 6 10",
        "wait_any 1,2 20000",
    ]);
    assert_eq!(lines[1], "exitcode 259");
    assert_eq!(lines[2], "wait object 0");
    assert_eq!(lines[3], "exitcode 5");
    assert_eq!(lines[6], "wait object 1");
}

#[test]
fn a_handle_duplicated_into_a_process_that_dies_unused_is_released() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create Local\\\\given 4096",
        "spawn noinherit event - auto 0;wait 0 inf",
        "child_process",
        "dup_into 0 $H same",
        "close",
        "child_kill9",
        "child_finish",
    ]);
    assert!(lines[3].starts_with("dup value="), "{lines:?}");
    TestBroker::eventually("the duplicate died with the process", || {
        !broker.objmgr(&["stat", "given"]).status.success()
    });
}

#[test]
fn cli_lists_processes_and_their_handles() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&["event_inh ev auto 0", "create Global\\\\sec 4096", "hold"]);
    holder.wait_for("holding");
    let pid = holder.child.id().to_string();
    let ps = objmgr_out(&broker, &["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(pid.as_str())),
        "{ps}"
    );
    let handles = objmgr_out(&broker, &["handles", &pid]);
    let event = handles
        .lines()
        .find(|l| l.contains("\\ev"))
        .expect(&handles);
    assert!(
        event.contains("Event") && event.contains("inherit"),
        "{handles}"
    );
    assert!(
        handles.contains("Section") && handles.contains("\\BaseNamedObjects\\sec"),
        "{handles}"
    );
    let json = objmgr_out(&broker, &["handles", &pid, "--json"]);
    assert!(json.contains("\"inherit\":true"), "{json}");
    let none = broker.objmgr(&["handles", "999999999"]);
    assert_eq!(none.status.code(), Some(1));
    holder.release();
    holder.finish();
}

#[test]
fn pseudo_handles_and_the_broker_itself() {
    let broker = TestBroker::new();
    let lines = broker.run(&["dup_pseudo"]);
    assert_eq!(lines[0], "pseudo is_me=true");
    let broker_pid = broker.broker_pids()[0].to_string();
    let lines = broker.run(&[&format!("open_process {broker_pid}"), "terminate_obj 0 1"]);
    assert!(lines[1].starts_with("err 5 "), "{lines:?}");
    assert_eq!(broker.broker_pids().len(), 1, "the broker survived");
}

#[test]
fn the_current_thread_pseudo_handle_duplicates_into_a_real_one() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "dup_current_thread", // this thread: alive
        "wait 0 0",
        "exitcode 0",
        "dup_current_thread", // the same thread again: the same object, alive
        "wait 1 0",
        "foreign_thread", // a thread that has ended by the time we wait
        "wait 2 5000",
        "exitcode 2",
    ]);
    assert_eq!(lines[0], "thread handle same_process=true");
    assert_eq!(lines[1], "wait timeout");
    assert_eq!(lines[2], "exitcode 259", "STILL_ACTIVE");
    assert_eq!(lines[4], "wait timeout");
    assert_eq!(lines[5], "thread handle same_process=true");
    assert_eq!(lines[6], "wait object 0", "signaled when the thread ended");
    assert_eq!(lines[7], "exitcode 0");
}

#[test]
fn a_threads_mutexes_are_abandoned_before_its_object_is_signaled() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "mutex Local\\kept 0",               // 0
        "foreign_thread_owning Local\\kept", // 1: its thread, ended
        "wait 1 5000",
        "wait 0 0",
    ]);
    assert_eq!(lines[2], "wait object 0", "{lines:?}");
    assert_eq!(lines[3], "wait abandoned 0", "{lines:?}");
    // A thread's own thread-local destructors run before its object is
    // signaled (one releases the mutex here, so it is free, not abandoned).
    let lines = broker.run(&["thread_exit_order 20 release"]);
    assert_eq!(lines, ["thread_exit_order wrong=0"]);
    // And with nobody releasing it, it is abandoned before the object is
    // signaled, while someone waits on the thread as it ends.
    let lines = broker.run(&["thread_exit_order 20 keep"]);
    assert_eq!(lines, ["thread_exit_order wrong=0"]);
}

#[test]
fn fork_while_another_thread_talks_to_the_broker() {
    let broker = TestBroker::new();
    let lines = broker.run(&["fork_busy 40"]);
    assert_eq!(lines, ["fork_busy hung=0 failed=0"]);
}

#[test]
fn an_inherited_protected_handle_cannot_be_closed() {
    // The child did not set the flag itself; closing must still fail
    // (ERROR_INVALID_HANDLE), and the handle must stay usable.
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create_inh - 65536", // handle 4, inheritable
        "set_handle_info 4 2 2", // HANDLE_FLAG_PROTECT_FROM_CLOSE
        "spawn inherit adopt_section 4;close;handle_info 4;set_handle_info 4 2 0;adopt_section 4;close;handle_info 4",
        "child_finish",
    ]);
    let child: Vec<&String> = lines.iter().filter(|l| l.starts_with("child ")).collect();
    assert_eq!(child[0], "child adopted", "{lines:?}");
    assert!(child[1].starts_with("child err 6 "), "{lines:?}");
    assert_eq!(child[2], "child flags 3", "{lines:?}");
    assert_eq!(child[3], "child set", "{lines:?}");
    assert_eq!(child[5], "child close", "{lines:?}");
    assert!(
        child[6].starts_with("child err 6 "),
        "closed at last: {lines:?}"
    );
}

#[test]
fn spawned_children_start_with_the_usual_fd_limit() {
    // The broker raises its own fd limit to hold many sections; a child it
    // starts must get the limit the broker was given, not the raised one.
    use std::os::unix::process::CommandExt;
    let broker = TestBroker::new();
    let mut starter = broker.script(&["spawn inherit nofile", "child_finish"]);
    // SAFETY: between fork and exec, one async-signal-safe system call.
    unsafe {
        starter.pre_exec(|| {
            let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
            let limit = rustix::process::Rlimit {
                current: Some(512),
                maximum: hard,
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    // The starter starts the broker, which inherits its limit of 512.
    let out = starter.output().unwrap();
    let lines = common::result_lines(&out);
    assert!(out.status.success(), "{lines:?}");
    assert!(lines.contains(&"child nofile 512".to_owned()), "{lines:?}");
    let broker_limit =
        std::fs::read_to_string(format!("/proc/{}/limits", broker.broker_pids()[0])).unwrap();
    assert!(
        !broker_limit
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("512")),
        "the broker raised its own limit: {broker_limit}"
    );
}

#[test]
fn a_process_out_of_descriptors_keeps_its_session_without_a_doorbell() {
    let broker = TestBroker::new();
    // Every descriptor of the process in use when it would ask for its
    // doorbell: its requests go on the socket, and nothing is lost.
    let lines = broker.run(&["nofile_limit 256", "events_at_fd_limit 10"]);
    assert_eq!(lines.last().unwrap(), "events_at_fd_limit 10 wait object 0");
    // The doorbell was asked for while no descriptor was free (it did not
    // fit), and nothing went through the page.
    let status = broker.objmgr(&["broker", "status"]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let counter = |prefix: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {status}"))
    };
    assert_eq!(counter("doorbell "), 1, "{status}");
    assert_eq!(counter("of which paged "), 0, "{status}");
}
