//! File benchmarks against raw Linux, measured in the same run.
//!
//! `cargo bench -p objmgr-cli --bench files`: what an open pays for the
//! broker's share-mode check (an open registered with the broker, then
//! closed, against `open` + `close`), and a byte-range lock + unlock pair
//! (with objmgr's per-handle bookkeeping) against the same
//! open-file-description `fcntl` pair. `BENCH_QUICK=1` shrinks the runs.

use std::hint::black_box;
use std::os::fd::AsRawFd;

mod harness;
use harness::{Broker, cpus_allowed, measure, report};

fn ofd(fd: i32, kind: i32) {
    let lock = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 100,
        l_pid: 0,
    };
    // SAFETY: fcntl on a live fd with a flock that lives across the call.
    let rc = unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &lock) };
    assert_eq!(rc, 0);
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let broker = Broker::start();
    println!(
        "objmgr file benchmarks (CPUs allowed: {}; broker pid {})\n",
        cpus_allowed(),
        broker.pid()
    );
    let path = broker.dir.join("bench.dat");
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    let (batches, opens, locks) = if quick {
        (3, 500, 20_000)
    } else {
        (9, 5_000, 200_000)
    };
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap()
    };
    use objmgr::file::{FILE_READ_DATA, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA, File};
    let access = FILE_READ_DATA | FILE_WRITE_DATA;
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE;
    let ours = measure(batches, opens, |_| {
        let file = File::register(open(), access, share, false).unwrap();
        file.close().unwrap();
    });
    let raw = measure(batches, opens, |_| drop(black_box(open())));
    report(
        "open with the share check + close (vs open + close)",
        ours,
        raw,
        "- (one broker round trip)",
    );

    let file = File::register(open(), access, share, false).unwrap();
    let ours = measure(batches, locks, |_| {
        file.lock(0, 100, true, false).unwrap();
        file.unlock(0, 100).unwrap();
    });
    let plain = open();
    let fd = plain.as_raw_fd();
    let raw = measure(batches, locks, |_| {
        ofd(fd, libc::F_WRLCK);
        ofd(fd, libc::F_UNLCK);
    });
    report(
        "byte-range lock + unlock (vs fcntl OFD lock + unlock)",
        ours,
        raw,
        "<= 1.3x",
    );
    let ours = measure(batches, locks, |_| {
        file.check_io(0, 100, true).unwrap();
    });
    println!(
        "{:<58} objmgr {ours:>10}  (one F_OFD_GETLK per ReadFile/WriteFile)",
        "mandatory-lock check of a read or write"
    );
    drop(file);
    drop(broker);
}
