//! Synchronization objects across real processes and threads: mutexes,
//! events, semaphores, waitable timers, and waits on one or many. Each test
//! runs its own broker (see `common`).

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

/// `objmgr stat NAME` output as text.
fn stat(broker: &TestBroker, name: &str) -> String {
    let out = broker.objmgr(&["stat", name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One property from `objmgr stat NAME` (`key:  value` lines).
fn property(broker: &TestBroker, name: &str, key: &str) -> Option<String> {
    stat(broker, name).lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim().to_owned())
    })
}

/// Waits until `objmgr stat` shows `n` threads waiting on `name`.
fn await_waiters(broker: &TestBroker, name: &str, n: u32) {
    TestBroker::eventually(&format!("{n} waiters on {name}"), || {
        property(broker, name, "waiters") == Some(n.to_string())
    });
}

/// How many of `children` have exited.
fn exited(children: &mut [common::ScriptChild]) -> usize {
    children
        .iter_mut()
        .filter_map(|c| c.child.try_wait().unwrap())
        .count()
}

/// Sets event `name` once per waiter still waiting, each time after the
/// previous set released one (two quick sets of an auto-reset event may
/// release only one waiter), and checks every waiter saw its event.
fn set_one_at_a_time(broker: &TestBroker, name: &str, waiters: &mut Vec<common::ScriptChild>) {
    let total = waiters.len();
    while exited(waiters) < total {
        let before = exited(waiters);
        broker.run(&[&format!("open_event {name}"), "set 0"]);
        TestBroker::eventually("a set releases a waiter", || exited(waiters) > before);
    }
    for w in waiters.drain(..) {
        assert_eq!(w.finish().last().unwrap(), "wait object 0");
    }
}

#[test]
fn mutex_is_recursive_and_owned_by_a_thread() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "mutex m 0",
        "wait 0 0",
        "wait 0 0",
        "release 0",
        "release 0",
        "release 0",
        "mutex m 1",
        "release 1",
    ]);
    assert_eq!(lines[1], "wait object 0");
    assert_eq!(lines[2], "wait object 0");
    assert_eq!(lines[3], "released");
    assert_eq!(lines[4], "released");
    // Released as often as acquired: the third release is by a non-owner.
    assert!(lines[5].starts_with("err 288 "), "{lines:?}");
    // Creating an existing mutex with initial ownership does not acquire it.
    assert_eq!(lines[6], "mutex existed=1");
    assert!(lines[7].starts_with("err 288 "), "{lines:?}");
}

#[test]
fn another_process_cannot_release_or_take_an_owned_mutex() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["mutex m 1", "hold", "release 0"]);
    owner.wait_for("holding");
    let owner_pid = property(&broker, "m", "owner").unwrap();
    assert!(
        owner_pid.starts_with(&format!("{}/", owner.child.id())),
        "{owner_pid}"
    );
    let lines = broker.run(&["open_mutex m", "release 0", "wait 0 50"]);
    assert!(lines[1].starts_with("err 288 "), "{lines:?}");
    assert_eq!(lines[2], "wait timeout");
    owner.release();
    assert_eq!(owner.finish().last().unwrap(), "released");
}

#[test]
fn mutex_is_abandoned_when_its_owning_process_is_killed() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["mutex Global\\m 1", "hold"]);
    owner.wait_for("holding");
    let mut waiter = broker.spawn(&[
        "open_mutex Global\\m",
        "wait 0 inf",
        "wait 0 0",
        "release 0",
        "release 0",
        "wait 0 0",
    ]);
    await_waiters(&broker, "Global\\m", 1);
    owner.kill9();
    assert_eq!(waiter.wait_for("wait"), "wait abandoned 0");
    let lines = waiter.finish();
    // After the abandoned acquisition it is an ordinary owned mutex.
    assert_eq!(
        &lines[2..],
        ["wait object 0", "released", "released", "wait object 0"]
    );
}

#[test]
fn mutex_is_abandoned_when_its_owning_thread_exits() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "mutex m 0",
        "thread_lock 0",
        "wait 0 5000",
        "release 0",
        "wait 0 0",
    ]);
    assert_eq!(lines[1], "thread exited");
    assert_eq!(lines[2], "wait abandoned 0");
    assert_eq!(lines[4], "wait object 0");
}

#[test]
fn a_waiting_process_gets_the_mutex_abandoned_when_the_owning_thread_exits() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["mutex m 0", "thread_lock_hold 0", "wait 0 20000"]);
    owner.wait_for("thread holding");
    let waiter = broker.spawn(&["open_mutex m", "wait 0 20000"]);
    await_waiters(&broker, "m", 1);
    owner.release(); // the owning thread exits; its process lives on
    assert_eq!(waiter.finish().last().unwrap(), "wait abandoned 0");
    // The waiter's process exited holding it: abandoned again, for the owner's
    // process, whose other thread takes it.
    assert_eq!(owner.finish().last().unwrap(), "wait abandoned 0");
}

#[test]
fn auto_reset_event_releases_exactly_one_waiter_per_set() {
    let broker = TestBroker::new();
    let mut setter = broker.spawn(&["event ev auto 0", "hold", "set 0", "hold"]);
    setter.wait_for("holding");
    let mut waiters: Vec<_> = (0..3)
        .map(|_| broker.spawn(&["open_event ev", "wait 0 inf"]))
        .collect();
    await_waiters(&broker, "ev", 3);
    setter.release(); // one set
    // Exactly one waiter is released; the others go back to waiting.
    TestBroker::eventually("one waiter released", || exited(&mut waiters) == 1);
    await_waiters(&broker, "ev", 2);
    assert_eq!(property(&broker, "ev", "signaled").as_deref(), Some("no"));
    set_one_at_a_time(&broker, "ev", &mut waiters);
    setter.wait_for("holding");
    setter.release();
    setter.finish();
}

#[test]
fn manual_reset_event_releases_everyone_until_reset() {
    let broker = TestBroker::new();
    let mut setter = broker.spawn(&[
        "event ev manual 0",
        "hold",
        "set 0",
        "hold",
        "reset 0",
        "wait 0 0",
    ]);
    setter.wait_for("holding");
    let waiters: Vec<_> = (0..3)
        .map(|_| broker.spawn(&["open_event ev", "wait 0 inf", "wait 0 0"]))
        .collect();
    await_waiters(&broker, "ev", 3);
    setter.release();
    for w in waiters {
        // Released, and the event is still signaled for the next wait.
        assert_eq!(&w.finish()[1..], ["wait object 0", "wait object 0"]);
    }
    setter.wait_for("holding");
    setter.release();
    assert_eq!(setter.finish().last().unwrap(), "wait timeout");
}

#[test]
fn pulse_releases_current_waiters_and_leaves_the_event_reset() {
    for (reset, released) in [("manual", 3), ("auto", 1)] {
        let broker = TestBroker::new();
        let mut pulser = broker.spawn(&[
            &format!("event ev {reset} 0"),
            "hold",
            "pulse 0",
            "wait 0 0",
            "hold",
        ]);
        pulser.wait_for("holding");
        let mut waiters: Vec<_> = (0..3)
            .map(|_| broker.spawn(&["open_event ev", "wait 0 inf"]))
            .collect();
        await_waiters(&broker, "ev", 3);
        pulser.release();
        // The pulse leaves the event non-signaled.
        assert_eq!(pulser.wait_for("wait"), "wait timeout", "{reset}");
        TestBroker::eventually("pulsed waiters released", || {
            exited(&mut waiters) == released
        });
        await_waiters(&broker, "ev", 3 - released as u32);
        set_one_at_a_time(&broker, "ev", &mut waiters);
        pulser.wait_for("holding");
        pulser.release();
        pulser.finish();
    }
}

#[test]
fn semaphore_counts_limits_and_arguments() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "semaphore bad 2 1",
        "semaphore bad 0 0",
        "semaphore s 1 3",
        "release 0 2",
        "release 0 1",
        "wait 0 0",
        "wait 0 0",
        "wait 0 0",
        "wait 0 0",
        "release 0 0",
        "semaphore s 0 1",
    ]);
    assert!(lines[0].starts_with("err 87 "), "{lines:?}");
    assert!(lines[1].starts_with("err 87 "), "{lines:?}");
    assert_eq!(lines[3], "released previous=1");
    // Past the maximum: ERROR_TOO_MANY_POSTS, and the count is unchanged.
    assert!(lines[4].starts_with("err 298 "), "{lines:?}");
    assert_eq!(
        &lines[5..9],
        [
            "wait object 0",
            "wait object 0",
            "wait object 0",
            "wait timeout"
        ]
    );
    assert!(lines[9].starts_with("err 87 "), "{lines:?}");
    assert_eq!(lines[10], "semaphore existed=1");
}

#[test]
fn semaphore_count_is_conserved_under_multi_process_stress() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "semaphore s 2 2",
        "create counters 65536",
        "map all",
        "hold",
        "wait 0 0",
        "wait 0 0",
        "wait 0 0",
    ]);
    holder.wait_for("holding");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            broker.spawn(&[
                "open_semaphore s",
                "open counters all",
                "map all",
                "exclusive 0 0 400 2",
            ])
        })
        .collect();
    for w in workers {
        let lines = w.finish();
        assert_eq!(lines.last().unwrap(), "exclusive violations=0 abandoned=0");
    }
    holder.release();
    let lines = holder.finish();
    // Both units are back: two waits succeed, the third times out.
    assert_eq!(
        &lines[lines.len() - 3..],
        ["wait object 0", "wait object 0", "wait timeout"]
    );
}

#[test]
fn wait_any_takes_only_the_lowest_signaled_object() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event - auto 0",
        "event - auto 1",
        "semaphore - 1 1",
        "wait_any 0,1,2 0",
        "wait_any 0,1,2 0",
        "wait_any 0,1,2 0",
    ]);
    assert_eq!(
        &lines[3..],
        ["wait object 1", "wait object 2", "wait timeout"]
    );
}

#[test]
fn wait_argument_errors() {
    let broker = TestBroker::new();
    let many = vec!["0"; 65].join(",");
    let sixty_four = vec!["0"; 64].join(",");
    let lines = broker.run(&[
        "event - manual 1",
        &format!("wait_any {many} 0"),
        &format!("wait_any {sixty_four} 0"),
        "wait_all 0,0 0",
    ]);
    assert!(lines[1].starts_with("err 87 "), "{lines:?}");
    assert_eq!(lines[2], "wait object 0");
    // The same object twice in a wait-all.
    assert!(lines[3].starts_with("err 87 "), "{lines:?}");
}

#[test]
fn wait_all_takes_all_or_nothing() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "semaphore - 1 1",
        "semaphore - 0 1",
        "mutex - 0",
        "wait_all 0,1,2 50",
        // Nothing was taken by the failed wait-all.
        "wait 0 0",
        "release 0",
        "release 1",
        "wait_all 0,1,2 0",
        "wait_any 0,1 0",
        "release 2",
    ]);
    assert_eq!(lines[3], "wait timeout");
    assert_eq!(lines[4], "wait object 0");
    assert_eq!(lines[7], "wait object 0");
    assert_eq!(lines[8], "wait timeout");
    // The wait-all made this thread the mutex owner.
    assert_eq!(lines[9], "released");
}

#[test]
fn wait_all_is_atomic_under_contention() {
    wait_all_under_contention(TestBroker::new(), false);
}

/// Linux before 5.16 has no `futex_waitv`: multi-object waits then sleep on
/// the arena's doorbell. `OBJMGR_FUTEX_WAITV=0` makes every process of the
/// test (the broker too) do so here.
fn without_futex_waitv() -> TestBroker {
    TestBroker::new().with_env("OBJMGR_FUTEX_WAITV", "0")
}

#[test]
fn wait_all_is_atomic_under_contention_without_futex_waitv() {
    wait_all_under_contention(without_futex_waitv(), true);
}

#[test]
fn multi_object_waits_wake_across_processes_without_futex_waitv() {
    let broker = without_futex_waitv();
    // Only a ring of the doorbell can end these waits well before their
    // 30 s timeouts (at which a last look would still find the signal).
    let mut any = broker.spawn(&[
        "waitv",
        "event e0 auto 0",
        "event e1 auto 0",
        "hold",
        "twait_any 0,1 30000",
        "twait_any 0,1 30000",
        "hold",
    ]);
    assert_eq!(
        any.wait_for("waitv"),
        "waitv false",
        "the doorbell is in use"
    );
    let mut all = broker.spawn(&[
        "event e0 auto 0",
        "mutex m 0",
        "hold",
        "twait_all 0,1 30000",
        "hold",
    ]);
    any.wait_for("holding");
    all.wait_for("holding");
    any.release();
    all.release();
    await_waiters(&broker, "e1", 1);
    await_waiters(&broker, "m", 1);
    // e1 wakes the wait-any; the wait-all still lacks e0.
    let setter = broker.run(&["event e1 auto 0", "set 0"]);
    assert_eq!(setter[1], "set");
    let woken = |line: String, expected: &str| {
        let (outcome, after) = line
            .split_once(" after=")
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(outcome, expected);
        let ms: u64 = after.parse().unwrap();
        assert!(
            ms < 15_000,
            "woken by the signal, not found at the timeout: {line}"
        );
    };
    woken(any.wait_for("wait"), "wait object 1");
    // One set of auto-reset e0: taken by exactly one of the two waits, which
    // then finishes; the other is released by a second set.
    broker.run(&["event e0 auto 0", "set 0"]);
    broker.run(&["event e0 auto 0", "set 0"]);
    woken(any.wait_for("wait"), "wait object 0");
    woken(all.wait_for("wait"), "wait object 0");
    // Each set was taken once: nothing is left signaled.
    assert_eq!(property(&broker, "e0", "signaled").as_deref(), Some("no"));
    any.release();
    all.release();
    any.finish();
    all.finish();
}

/// `doorbell`: the workers must be using the doorbell (no `futex_waitv`).
fn wait_all_under_contention(broker: TestBroker, doorbell: bool) {
    let mut holder = broker.spawn(&[
        "mutex m0 0",
        "mutex m1 0",
        "semaphore s2 1 1",
        "create counters 4096",
        "hold",
    ]);
    holder.wait_for("holding");
    let open = [
        "waitv",
        "open_mutex m0",
        "open_mutex m1",
        "open_semaphore s2",
        "open counters all",
        "map all",
    ];
    let sets = ["0,1", "1,2", "0,2", "0,1,2", "0", "2"];
    let workers: Vec<_> = sets
        .iter()
        .map(|set| {
            let mut script = open.to_vec();
            let run = format!("exclusive {set} 0 300 1");
            script.push(&run);
            broker.spawn(&script)
        })
        .collect();
    for w in workers {
        let lines = w.finish();
        if doorbell {
            assert_eq!(lines[0], "waitv false", "the doorbell is in use");
        }
        assert_eq!(lines.last().unwrap(), "exclusive violations=0 abandoned=0");
    }
    assert_eq!(property(&broker, "s2", "count").as_deref(), Some("1"));
    assert_eq!(property(&broker, "m0", "signaled").as_deref(), Some("yes"));
    holder.release();
    holder.finish();
}

#[test]
fn a_process_killed_inside_wait_all_leaves_nothing_stuck() {
    killed_inside_wait_all(TestBroker::new(), false);
}

#[test]
fn a_process_killed_inside_wait_all_leaves_nothing_stuck_without_futex_waitv() {
    killed_inside_wait_all(without_futex_waitv(), true);
}

#[test]
fn the_brokers_clean_up_rings_the_doorbell() {
    // A waiter already asleep on the doorbell, waiting for a mutex whose
    // owner is then killed: only the broker's clean-up can wake it.
    let broker = without_futex_waitv();
    let mut owner = broker.spawn(&["mutex m 1", "hold"]);
    owner.wait_for("holding");
    let mut waiter = broker.spawn(&["mutex m 0", "event go manual 1", "twait_all 0,1 30000"]);
    await_waiters(&broker, "m", 1);
    owner.kill9();
    let line = waiter.wait_for("wait");
    let (outcome, after) = line.split_once(" after=").unwrap();
    assert_eq!(outcome, "wait abandoned 0");
    // Not found by a last look at the 30 s timeout: woken by the clean-up.
    assert!(after.parse::<u64>().unwrap() < 15_000, "{line}");
    waiter.finish();
}

/// `doorbell`: the survivors must be using the doorbell (no `futex_waitv`).
fn killed_inside_wait_all(broker: TestBroker, doorbell: bool) {
    let open = [
        "mutex m0 0",
        "mutex m1 0",
        "mutex m2 0",
        "create counters 4096",
        "map all",
    ];
    // Keeps the objects alive across the kills, so that the survivors below
    // use the very slots the victims died in (not fresh ones).
    let mut keeper = broker.spawn(&[&open[..], &["hold"]].concat());
    keeper.wait_for("holding");
    let mut victims: Vec<_> = (0..2)
        .map(|i| {
            let mut script = open.to_vec();
            script.push(if i == 0 {
                "exclusive 0,1,2 0 100000000 1"
            } else {
                "exclusive 1,2 0 100000000 1"
            });
            broker.spawn(&script)
        })
        .collect();
    // Let the victims run, then kill them at arbitrary points of their loops.
    TestBroker::eventually("victims running", || {
        property(&broker, "m1", "waiters").is_some_and(|w| w != "0")
            || property(&broker, "m1", "owner").is_some()
    });
    for v in &mut victims {
        std::thread::sleep(Duration::from_millis(30));
        v.kill9();
    }
    // A victim killed inside its critical section leaves the counters at
    // offset 0 raised: the survivors count at offset 64.
    let survivors: Vec<_> = ["0,1", "1,2", "0,2"]
        .iter()
        .map(|set| {
            let run = format!("exclusive {set} 64 200 1");
            broker.spawn(&[&open[..], &["waitv", &run]].concat())
        })
        .collect();
    for s in survivors {
        let lines = s.finish();
        assert_eq!(
            &lines[..3],
            ["mutex existed=1", "mutex existed=1", "mutex existed=1"],
            "the victims' objects"
        );
        if doorbell {
            assert_eq!(lines[5], "waitv false", "the doorbell is in use");
        }
        let last = lines.last().unwrap();
        assert!(last.starts_with("exclusive violations=0 "), "{lines:?}");
    }
    // Nothing stays locked or owned.
    for m in ["m0", "m1", "m2"] {
        assert_eq!(
            property(&broker, m, "signaled").as_deref(),
            Some("yes"),
            "{m}"
        );
    }
    keeper.release();
    keeper.finish();
}

#[test]
fn timers_fire_on_time_and_keep_their_period() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "timer - auto",
        "settimer 0 -1000000 0", // 100 ms, relative
        "twait 0 5000",
        "twait 0 50",            // one-shot: fired once
        "settimer 0 -500000 50", // 50 ms, then every 50 ms
        "twait 0 5000",
        "twait 0 5000",
        "twait 0 5000",
        "twait 0 5000",
        "cancel 0",
        "twait 0 200",
        "settimer_abs 0 100",
        "twait 0 5000",
    ]);
    let after = |line: &str| -> u64 {
        let (outcome, ms) = line.rsplit_once(" after=").unwrap();
        assert_eq!(outcome, "wait object 0", "{lines:?}");
        ms.parse().unwrap()
    };
    let first = after(&lines[2]);
    assert!(
        (95..3000).contains(&first),
        "one-shot fired after {first} ms"
    );
    assert!(lines[3].starts_with("wait timeout"), "{lines:?}");
    let periods: Vec<u64> = lines[5..9].iter().map(|l| after(l)).collect();
    // The first expiry after 50 ms, then one per period; the period does not
    // drift with how late each waiter woke (generous bounds: shared CI hosts).
    assert!(periods[0] >= 45, "{periods:?}");
    assert!(periods[1..].iter().all(|&p| p < 2000), "{periods:?}");
    assert!(periods.iter().sum::<u64>() >= 190, "{periods:?}");
    assert!(
        lines[10].starts_with("wait timeout"),
        "cancelled: {lines:?}"
    );
    let absolute = after(&lines[12]);
    assert!(
        (90..3000).contains(&absolute),
        "absolute due time after {absolute} ms"
    );
}

#[test]
fn manual_reset_timer_stays_signaled_until_set_again() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "timer t manual",
        "settimer 0 -1 0",
        "wait 0 5000",
        "wait 0 0",
        "settimer 0 -100000000 0", // 10 s: re-armed and non-signaled again
        "wait 0 0",
        "cancel 0",
        "wait 0 0",
    ]);
    assert_eq!(&lines[2..4], ["wait object 0", "wait object 0"]);
    assert_eq!(lines[5], "wait timeout");
    assert_eq!(lines[7], "wait timeout");
}

#[test]
fn timeouts_return_on_time() {
    let broker = TestBroker::new();
    let started = Instant::now();
    let lines = broker.run(&["event - auto 0", "twait 0 200", "twait 0 0"]);
    let (outcome, ms) = lines[1].rsplit_once(" after=").unwrap();
    assert_eq!(outcome, "wait timeout");
    let ms: u64 = ms.parse().unwrap();
    assert!((200..5000).contains(&ms), "200 ms timeout took {ms} ms");
    assert!(lines[2].starts_with("wait timeout after="), "{lines:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn sync_objects_share_the_namespace_with_sections() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create x 4096",
        "event x auto 0",
        "event e auto 1",
        "mutex e 0",
        "open_mutex e",
        "open_event missing",
        "event e manual 0",
        "wait 1 0",
        "wait 1 0",
        "semaphore Bogus\\\\s 0 1",
        "open x read",
    ]);
    assert!(lines[1].starts_with("err 6 "), "{lines:?}");
    assert!(lines[3].starts_with("err 6 "), "{lines:?}");
    assert!(lines[4].starts_with("err 6 "), "{lines:?}");
    assert!(lines[5].starts_with("err 2 "), "{lines:?}");
    // The existing auto-reset, signaled event; the new arguments are ignored.
    assert_eq!(lines[6], "event existed=1");
    assert_eq!(&lines[7..9], ["wait object 0", "wait timeout"]);
    assert!(lines[9].starts_with("err 3 "), "{lines:?}");
    assert_eq!(lines[10], "open");
}

#[test]
fn sync_objects_die_with_their_last_handle() {
    let broker = TestBroker::new();
    let gone = |name: &str| {
        let out = broker.objmgr(&["stat", name]);
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("ERROR_FILE_NOT_FOUND")
    };
    // Closing the last handle destroys the object while its process lives on.
    let mut holder = broker.spawn(&["event e auto 0", "mutex m 1", "closeobj 0", "hold"]);
    holder.wait_for("holding");
    let brokers = broker.broker_pids();
    assert!(gone("e"), "the closed event is gone");
    assert!(!gone("m"), "the open mutex stays");
    // So does the death of the last holder.
    holder.kill9();
    assert!(gone("m"), "the mutex died with its holder");
    assert_eq!(broker.broker_pids(), brokers, "the same broker");
}

#[test]
fn handles_enforce_their_access() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event e auto 0",
        "open_event e 100000", // SYNCHRONIZE only
        "set 1",
        "open_event e 2", // EVENT_MODIFY_STATE only
        "wait 2 0",
        "set 2",
        "wait 1 0",
        "semaphore s 0 1",
        "open_semaphore s 100000",
        "release 4 1",
    ]);
    assert!(lines[2].starts_with("err 5 "), "{lines:?}");
    assert!(lines[4].starts_with("err 5 "), "{lines:?}");
    assert_eq!(lines[5], "set");
    assert_eq!(lines[6], "wait object 0");
    assert!(lines[9].starts_with("err 5 "), "{lines:?}");
}

#[test]
fn signal_and_wait_hands_over_a_mutex_and_waits_for_an_answer() {
    let broker = TestBroker::new();
    let mut first = broker.spawn(&[
        "mutex m 1",
        "event ev auto 0",
        "hold",
        "signal_wait 0 1 inf",
    ]);
    first.wait_for("holding");
    let second = broker.spawn(&[
        "open_mutex m",
        "open_event ev",
        "wait 0 inf",
        "set 1",
        "release 0",
    ]);
    await_waiters(&broker, "m", 1);
    first.release();
    assert_eq!(second.finish()[2..], ["wait object 0", "set", "released"]);
    assert_eq!(first.finish().last().unwrap(), "wait object 0");
}

#[test]
fn waits_and_signals_never_ask_the_broker() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event - auto 0",
        "semaphore - 0 10",
        "mutex - 0",
        "timer - auto",
        "requests",
        "churn 0 1 2 1000",
        "settimer 3 -1 0",
        "wait 3 inf",
        "wait_all 0,1,2 0",
        "pulse 0",
        "requests",
    ]);
    let count = |line: &str| {
        line.strip_prefix("requests ")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(lines[5], "churned");
    // Every operation did its work (none failed before reaching the arena).
    assert_eq!(
        &lines[6..10],
        ["settimer", "wait object 0", "wait timeout", "pulse"],
        "{lines:?}"
    );
    assert_eq!(count(&lines[4]), count(&lines[10]), "{lines:?}");
}

#[test]
fn a_process_holds_100000_events_without_running_out_of_descriptors() {
    let broker = TestBroker::new();
    let lines = broker.run(&["many_events 100000"]);
    let line = &lines[0];
    // No descriptor and no mapping per event: after the first events (the
    // connection, its page and doorbell, its watcher and the first arena),
    // at most one more arena mapping (its fd is closed once mapped), and a
    // few the allocator may make meanwhile (a thread's first allocation
    // maps an arena of its own: seen once in a loaded full run).
    let field = |key: &str| -> i64 {
        line.split(' ')
            .find_map(|w| w.strip_prefix(key))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(field("fds+=") == 0, "{line}");
    assert!(field("maps+=") <= 3, "{line}");
    assert!(line.ends_with("wait object 0"), "{line}");
}

#[test]
fn cli_shows_each_objects_state() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&[
        "event ev manual 1",
        "mutex Global\\mx 1",
        "semaphore sem 2 5",
        "timer tm auto",
        "settimer 3 -600000000 0",
        "hold",
    ]);
    owner.wait_for("holding");
    let ls = broker.objmgr(&["ls"]);
    assert!(ls.status.success());
    let text = String::from_utf8_lossy(&ls.stdout).into_owned();
    let row = |path: &str| {
        text.lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("no {path} in\n{text}"))
            .to_owned()
    };
    assert!(
        row("\\ev").starts_with("Event") && row("\\ev").contains("signaled=yes"),
        "{text}"
    );
    let mutex = row("\\BaseNamedObjects\\mx");
    assert!(
        mutex.contains(&format!("owner={}/", owner.child.id())),
        "{text}"
    );
    assert!(row("\\sem").contains("count=2 maximum=5"), "{text}");
    assert!(row("\\tm").contains("signaled=no due=+"), "{text}");
    let json =
        String::from_utf8_lossy(&broker.objmgr(&["stat", "sem", "--json"]).stdout).into_owned();
    // Typed: numbers are numbers, yes/no are booleans, and only sections
    // have a size.
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["count"], 2, "{json}");
    assert_eq!(json["maximum"], 5, "{json}");
    assert!(json["size"].is_null(), "{json}");
    assert_eq!(json["schema_version"], 1, "{json}");
    assert_eq!(
        property(&broker, "Global\\mx", "recursion").as_deref(),
        Some("1")
    );
    assert_eq!(property(&broker, "tm", "reset").as_deref(), Some("auto"));
    owner.release();
    owner.finish();
}

#[test]
fn a_forked_child_does_not_keep_its_dead_parent_alive_for_the_broker() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["mutex m 1", "fork_sleep", "hold"]);
    let forked: i32 = owner
        .wait_for("forked")
        .strip_prefix("forked ")
        .unwrap()
        .parse()
        .unwrap();
    /// Stops the forked child however the test ends.
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // SAFETY: plain kill(2) of the process the script forked.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _reap = Reap(forked);
    owner.wait_for("holding");
    // Bounded well below the forked child's 60 s: a broker that waited for
    // the child to close the inherited connection would time this out.
    let waiter = broker.spawn(&["open_mutex m", "wait 0 20000"]);
    await_waiters(&broker, "m", 1);
    owner.kill9();
    // The forked child still runs, but the owner's connection closed with
    // the owner: the mutex is abandoned at once.
    assert_eq!(waiter.finish().last().unwrap(), "wait abandoned 0");
}
