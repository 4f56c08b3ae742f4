//! Cutting the lifeline ends every wait of the process (its own test
//! process: a cut would end the waits of tests running beside it).

use std::sync::mpsc;
use std::time::Duration;

use objmgr_proto::error::ERROR_INVALID_HANDLE;
use objmgr_proto::sync::SyncInit;
use objmgr_sync::lifeline;
use objmgr_sync::ops::{Actor, Kind, Token, init_slot};
use objmgr_sync::wait::wait;
use objmgr_sync::{Slot, WaitOutcome};

fn actor(thread: u32) -> Actor {
    Actor {
        token: Token::new(1, thread).unwrap(),
        pid: 1,
        tid: thread,
    }
}

#[test]
fn a_cut_lifeline_ends_sleeping_waits_and_spares_later_ones() {
    static NEVER: Slot = Slot::new();
    static OTHER: Slot = Slot::new();
    let event = SyncInit::Event {
        manual_reset: true,
        signaled: false,
    };
    init_slot(&NEVER, event, None);
    init_slot(&OTHER, event, None);
    let kind = Kind::Event { manual_reset: true };
    let (done, ended) = mpsc::channel();
    let waiters: Vec<_> = (1..=2u32)
        .map(|thread| {
            let done = done.clone();
            std::thread::spawn(move || {
                // One object (a plain futex wait without `futex_waitv`) and two.
                let result = if thread == 1 {
                    wait(&[(&NEVER, kind)], false, None, &actor(thread))
                } else {
                    wait(
                        &[(&NEVER, kind), (&OTHER, kind)],
                        false,
                        None,
                        &actor(thread),
                    )
                };
                done.send(result.map(|w| w.outcome)).unwrap();
            })
        })
        .collect();
    // Both are asleep (nothing can wake them but the cut).
    std::thread::sleep(Duration::from_millis(100));
    assert!(ended.try_recv().is_err(), "nothing was signaled");
    lifeline::cut();
    for _ in 0..2 {
        let result = ended
            .recv_timeout(Duration::from_secs(5))
            .expect("a cut wakes every sleeping wait");
        assert_eq!(result, Err(ERROR_INVALID_HANDLE));
    }
    for waiter in waiters {
        waiter.join().unwrap();
    }
    // A wait that begins after the cut is an ordinary wait.
    let polled = wait(&[(&NEVER, kind)], false, Some(0), &actor(3)).map(|w| w.outcome);
    assert_eq!(polled, Ok(WaitOutcome::Timeout));
}
