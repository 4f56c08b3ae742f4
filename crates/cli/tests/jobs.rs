//! Job objects with real processes: membership by assignment and by spawn,
//! termination, kill on close, limits, accounting, breakaway, nesting,
//! names and access. Every test ends every process it started.

mod common;
#[path = "common/script.rs"]
mod script;

use common::TestBroker;
use std::time::{Duration, Instant};

/// Entry point for child processes (see `sections.rs`).
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

#[test]
fn members_by_assignment_and_by_spawn_end_together_with_the_code_given() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "job Local\\\\team",
        // A child that assigns itself and then starts a grandchild: both
        // members (the grandchild by inheritance).
        "spawn noinherit open_job Local\\\\team;job_assign 0 self;spawn noinherit sleep 60000;sleep 60000",
        "child_process",
        // A child assigned from outside.
        "spawn noinherit sleep 60000",
        "child_process",
        "in_job 1 0",
        "job_assign 0 1",
        "in_job 1 0",
        "in_job self any",
        "job_count 0 3",
        "job_acct 0",
        "job_terminate 0 42",
        "wait 0 20000",
        "wait 1 20000",
        "exitcode 0",
        "exitcode 1",
        "job_wait 0 0",
        "job_count 0 0",
    ]);
    assert_eq!(
        lines,
        [
            "job existed=0",
            "spawned pid=",
            "child process",
            "spawned pid=",
            "child process",
            "in_job no",
            "assigned",
            "in_job yes",
            "in_job no",
            "job_count 3",
            "job_acct total=3 active=3 terminated=0 user_ms=",
            "job terminated",
            "wait object 0",
            "wait object 0",
            "exitcode 42",
            "exitcode 42",
            "wait object 0",
            "job_count 0",
        ]
        .iter()
        .zip(&lines)
        .map(|(want, got)| if got.starts_with(want) {
            got.clone()
        } else {
            want.to_string()
        })
        .collect::<Vec<_>>()
    );
}

#[test]
fn kill_on_close_ends_every_member_when_the_supervisor_is_killed() {
    let broker = TestBroker::new();
    let mut supervisor = broker.spawn(&[
        "job -",
        "job_limits 0 2000 0 0 0 0",
        "spawn noinherit sleep 60000",
        "child_process",
        "job_assign 0 0",
        // A member that forks: its child is no member, but is in the
        // member's process group.
        "spawn noinherit fork_sleep;sleep 60000",
        "child_process",
        "job_assign 0 1",
        "job_count 0 2",
        "job_pids 0",
        "hold",
    ]);
    let pids_line = supervisor.wait_for("job_pids");
    assert!(pids_line.starts_with("job_pids count=2 "), "{pids_line}");
    let mut pids: Vec<u32> = pids_line
        .rsplit('=')
        .next()
        .unwrap()
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    // The forked grandchild, once it exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    let forked = loop {
        let found: Vec<u32> = pids.iter().flat_map(|p| children_of(*p)).collect();
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "the member never forked");
        std::thread::sleep(Duration::from_millis(20));
    };
    pids.extend(forked);
    supervisor.wait_for("holding");
    supervisor.kill9();
    // Its handle to the job closes with it: every member is killed (and
    // the grandchild in the second member's process group with it).
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "members outlived the job: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The children of process `pid` (of any of its threads).
fn children_of(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    tasks
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[test]
fn the_active_process_limit_refuses_and_ends_one_process_too_many() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "job -",
        "job_limits 0 8 1 0 0 0",
        "spawn noinherit sleep 60000",
        "child_process",
        "job_assign 0 0",
        "spawn noinherit sleep 60000",
        "child_process",
        "job_assign 0 1",
        "wait 1 20000",
        "exitcode 1",
        "job_count 0 1",
        "job_terminate 0 1",
        "wait 0 20000",
    ]);
    assert_eq!(lines[4], "assigned", "{lines:?}");
    assert!(lines[7].starts_with("err 1816 "), "{lines:?}");
    assert_eq!(
        lines[8..11],
        ["wait object 0", "exitcode 1816", "job_count 1"]
    );
    assert_eq!(lines[12], "wait object 0");
}

#[test]
fn a_member_cannot_commit_memory_past_the_process_limit() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "job Local\\\\small",
        "job_limits 0 100 0 256 0 0",
        // Assigned while running, and started by a member: both limited.
        "spawn noinherit open_job Local\\\\small;job_assign 0 self;alloc 16;alloc 1024;spawn noinherit alloc 16|alloc 1024;child_finish",
        "child_finish",
        // A limit this machine cannot enforce is refused, not ignored.
        "job_limits 0 200 0 0 0 0",
    ]);
    assert_eq!(
        lines[3..9],
        [
            "child opened job",
            "child assigned",
            "child alloc ok",
            "child alloc failed",
            "child spawned pid=",
            "child child alloc ok",
        ]
        .iter()
        .zip(&lines[3..9])
        .map(|(want, got)| if got.starts_with(want) {
            got.clone()
        } else {
            want.to_string()
        })
        .collect::<Vec<_>>()
    );
    assert_eq!(lines[9], "child child alloc failed", "{lines:?}");
    assert!(
        lines[12].starts_with("err 50 ") && lines[12].contains("JOB_MEMORY"),
        "{lines:?}"
    );
}

#[test]
fn user_time_limits_end_a_process_or_the_whole_job_and_accounting_counts() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        // Accounting of a member that used CPU and exited.
        "job -",
        "spawn noinherit burn 300",
        "child_process",
        "job_assign 0 0",
        "wait 0 20000",
        "job_count 0 0",
        "job_acct 0",
        // The per-process limit ends that process; the job is not signaled.
        "job -",
        "job_limits 1 2 0 0 100 0",
        "spawn noinherit burn 20000",
        "child_process",
        "job_assign 1 1",
        "wait 1 20000",
        "exitcode 1",
        "job_wait 1 0",
        // The job limit ends every member and signals the job.
        "job -",
        "job_limits 2 4 0 0 0 100",
        "spawn noinherit burn 20000",
        "child_process",
        "job_assign 2 2",
        "wait 2 20000",
        "exitcode 2",
        "job_wait 2 0",
        "job_acct 2",
    ]);
    let acct = &lines[6];
    assert!(
        acct.starts_with("job_acct total=1 active=0 terminated=0 "),
        "{lines:?}"
    );
    let user_ms: u64 = acct.rsplit('=').next().unwrap().parse().unwrap();
    assert!(user_ms >= 50, "{acct}");
    assert_eq!(
        lines[12..15],
        ["wait object 0", "exitcode 1816", "wait timeout"],
        "{lines:?}"
    );
    assert_eq!(
        lines[20..23],
        ["wait object 0", "exitcode 1816", "wait object 0"],
        "{lines:?}"
    );
    assert!(
        lines[23].starts_with("job_acct total=1 active=0 terminated=1 "),
        "{lines:?}"
    );
}

#[test]
fn children_break_away_only_where_the_job_allows() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "job -",
        "job_assign 0 self",
        "spawn breakaway sleep 60000",
        "job_limits 0 800 0 0 0 0",
        "spawn breakaway sleep 60000",
        "child_process",
        "in_job 0 0",
        "spawn noinherit sleep 60000",
        "child_process",
        "in_job 1 0",
        "job_limits 0 1000 0 0 0 0",
        "spawn noinherit sleep 60000",
        "child_process",
        "in_job 2 0",
        "terminate_obj 0 1",
        "terminate_obj 1 1",
        "terminate_obj 2 1",
    ]);
    assert!(lines[2].starts_with("err 5 "), "{lines:?}");
    assert_eq!(lines[6], "in_job no", "{lines:?}");
    assert_eq!(lines[9], "in_job yes", "{lines:?}");
    assert_eq!(lines[13], "in_job no", "{lines:?}");
    assert_eq!(lines[14..], ["terminated", "terminated", "terminated"]);
}

#[test]
fn jobs_nest_share_the_namespace_and_check_access() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event Local\\\\taken manual 0",
        "job Local\\\\taken",
        "job Local\\\\outer",
        "job Local\\\\outer",
        "open_job Local\\\\outer 4",
        "spawn noinherit sleep 60000",
        "child_process",
        "job_assign 2 1",
        "job_assign 0 1",
        // Nesting: an empty job takes the member in, inside its job.
        "job Local\\\\inner",
        "job_assign 3 1",
        "in_job 1 3",
        "in_job 1 0",
        "job_count 0 1",
        "job_terminate 0 7",
        "wait 1 20000",
        "exitcode 1",
        "open_event Local\\\\outer",
        "close_job 0",
        "close_job 0",
        "close_job 0",
        "open_job Local\\\\outer",
    ]);
    assert!(lines[1].starts_with("err 6 "), "{lines:?}");
    assert_eq!(
        lines[2..5],
        ["job existed=0", "job existed=1", "opened job"]
    );
    // A handle with JOB_OBJECT_QUERY alone cannot assign.
    assert!(lines[7].starts_with("err 5 "), "{lines:?}");
    assert_eq!(lines[8], "assigned");
    assert_eq!(
        lines[10..14],
        ["assigned", "in_job yes", "in_job yes", "job_count 1"],
        "{lines:?}"
    );
    assert_eq!(lines[15..17], ["wait object 0", "exitcode 7"]);
    assert!(lines[17].starts_with("err 6 "), "{lines:?}");
    // The last handle closed: the name is gone.
    assert!(lines[21].starts_with("err 2 "), "{lines:?}");
}

#[test]
fn objmgr_ls_and_stat_show_a_jobs_members_and_limits() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "job Local\\\\shown",
        "job_limits 0 2008 3 0 0 0",
        "spawn noinherit sleep 60000",
        "child_process",
        "job_assign 0 0",
        "hold",
        "job_terminate 0 1",
        "wait 0 20000",
    ]);
    holder.wait_for("holding");
    let ls = String::from_utf8_lossy(&broker.objmgr(&["ls"]).stdout).into_owned();
    assert!(
        ls.lines()
            .any(|l| l.starts_with("Job") && l.contains("processes=1") && l.contains("shown")),
        "{ls}"
    );
    let stat =
        String::from_utf8_lossy(&broker.objmgr(&["stat", "Local\\shown"]).stdout).into_owned();
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {stat}"))
    };
    assert_eq!(field("processes"), "1");
    assert_eq!(field("active_process_limit"), "3");
    assert!(
        field("limits").contains("JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE"),
        "{stat}"
    );
    holder.release();
    let lines = holder.finish();
    assert_eq!(lines.last().unwrap(), "wait object 0");
}

#[test]
fn a_member_cannot_free_its_children_by_nesting_a_job_that_lets_them_go() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "job Local\\\\outer-keeps",
        // The member makes a job that lets children go silently, nests it
        // in the outer one, and starts a child: the child stays in the
        // outer job.
        "spawn noinherit open_job Local\\\\outer-keeps;job_assign 0 self;job -;job_limits 1 1000 0 0 0 0;job_assign 1 self;spawn noinherit sleep 60000;child_process;in_job 0 0;in_job 0 1;terminate_obj 0 1",
        "child_finish",
    ]);
    let child: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("child "))
        .collect();
    assert_eq!(
        child
            .iter()
            .filter(|l| l.starts_with("in_job"))
            .collect::<Vec<_>>(),
        [&"in_job yes", &"in_job no"],
        "{lines:?}"
    );
}

#[test]
fn a_member_whose_only_handle_waited_in_its_own_table_still_leaves_its_job() {
    let broker = TestBroker::new();
    // The child holds (unclaimed: it never connects) the only handle to its
    // own process when it exits: its record goes with that handle, after
    // it has left the job.
    let lines = broker.run(&[
        "job -",
        "job_limits 0 2 0 0 60000 0",
        "spawn noinherit sleep 300",
        "child_process",
        "job_assign 0 0",
        "dup_into 0 $E same",
        "closeobj 0",
        "job_count 0 0",
        "job_acct 0",
    ]);
    assert_eq!(lines[7], "job_count 0", "{lines:?}");
    assert!(
        lines[8].starts_with("job_acct total=1 active=0 "),
        "{lines:?}"
    );
    // The broker is still there.
    assert_eq!(broker.run(&["job -"]), ["job existed=0"]);
}
