//! Sections across real processes: sharing, names, lifetime, views, files,
//! errors. Each test runs its own broker (see `common`).

mod common;
#[path = "common/script.rs"]
mod script;

use common::{TestBroker, exists};
use std::process::Command;

/// Entry point for child processes (the harness re-executes this binary with
/// a script); without a script in the environment it does nothing.
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

#[test]
fn two_processes_share_named_memory_both_ways() {
    let broker = TestBroker::new();
    let mut writer = broker.spawn(&[
        "create Global\\MyFileMappingObject 256",
        "map all",
        "write 0 Message-from-first-process.",
        "hold",
        "read 128 32",
    ]);
    writer.wait_for("holding");
    let reader = broker.run(&[
        "open Global\\MyFileMappingObject all",
        "map all",
        "read 0 27",
        "write 128 answer-from-second",
    ]);
    assert_eq!(reader[2], "read Message-from-first-process.");
    writer.release();
    let lines = writer.finish();
    assert_eq!(lines.last().unwrap(), "read answer-from-second");
}

#[test]
fn unprefixed_names_are_local_and_distinct_from_global() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&["create plain 4096", "map write", "write 0 local", "hold"]);
    owner.wait_for("holding");
    let lines = broker.run(&[
        "open Local\\plain read",
        "map read",
        "read 0 5",
        "open Global\\plain read",
        "create Global\\plain 4096",
        "existed",
    ]);
    assert_eq!(lines[2], "read local");
    assert!(lines[3].starts_with("err 2 "), "{lines:?}");
    assert_eq!(lines[5], "existed 0");
    owner.release();
    owner.finish();
}

#[test]
fn existing_name_returns_the_same_object_and_ignores_arguments() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create same 4096",
        "map write",
        "write 0 first",
        "create same 1048576 ro",
        "existed",
        "size",
        "map read",
        "read 0 5",
    ]);
    assert_eq!(lines[3], "create existed=1");
    assert_eq!(lines[5], "size 4096");
    assert_eq!(lines[7], "read first");
}

#[test]
fn error_codes_match_windows() {
    let broker = TestBroker::new();
    let long = format!("create {} 4096", "n".repeat(260));
    let lines = broker.run(&[
        "create zero 0",
        "open missing read",
        "create Foo\\bar 4096",
        "create Global\\ 4096",
        "create Local\\a\\b 4096",
        "create global\\lower 4096",
        &long,
        "open - read",
        "create ok 100000",
        "map write 4096 0",
        "map write 65536 40000",
        "map write 131072 0",
        "map none",
        "map write 65536 30000",
        "open ok read",
        "map write",
        "map rx",
        "create ro 4096 ro",
        "map write",
        "map copy",
    ]);
    let expect = [
        "87",        // size 0 for a memory-backed section: ERROR_INVALID_PARAMETER
        "2",         // ERROR_FILE_NOT_FOUND
        "3",         // unknown prefix: ERROR_PATH_NOT_FOUND
        "123",       // ERROR_INVALID_NAME
        "3",         // ERROR_PATH_NOT_FOUND
        "3",         // prefixes are case-sensitive
        "206",       // ERROR_FILENAME_EXCED_RANGE
        "6",         // the empty name is no section: ERROR_INVALID_HANDLE
        "existed=0", // ok
        "1132",      // ERROR_MAPPED_ALIGNMENT
        "5",         // past the end: ERROR_ACCESS_DENIED
        "87",        // offset past the end with size 0
        "len=",      // no access requested: a view with no access, as on Windows
        "len=30000", // ok
        "open",      // read-only handle
        "5",         // a read-only handle never maps writable
        "5",         // execute on a non-executable section
        "existed=0", // PAGE_READONLY section
        "5",         // write view of a read-only section
        "len=4096",  // copy-on-write views of it are fine
    ];
    for (i, want) in expect.iter().enumerate() {
        if want.parse::<u32>().is_ok() {
            let code = lines[i]
                .strip_prefix("err ")
                .and_then(|rest| rest.split(' ').next());
            assert_eq!(code, Some(*want), "step {i}: got {:?}", lines[i]);
        } else {
            assert!(
                lines[i].contains(want),
                "step {i}: got {:?}, want {want}",
                lines[i]
            );
        }
    }
}

#[test]
fn read_only_handles_hold_read_only_descriptors() {
    let broker = TestBroker::new();
    let mut creator = broker.spawn(&["create fd 4096", "fdmode", "hold"]);
    assert_eq!(creator.wait_for("fdmode"), "fdmode rw");
    creator.wait_for("holding");
    let lines = broker.run(&[
        "open fd read",
        "fdmode",
        "raw_map_write",
        "open fd write",
        "fdmode",
        "raw_map_write",
    ]);
    assert_eq!(lines[1], "fdmode ro");
    assert_eq!(
        lines[2], "raw_map_write refused errno=13",
        "the kernel itself refuses a writable shared mapping (EACCES)"
    );
    assert_eq!(lines[4], "fdmode rw");
    assert_eq!(lines[5], "raw_map_write mapped");
    creator.release();
    // A process that holds the section with more access already shares
    // that handle's descriptor (no new one is sent); the read-only handle
    // still maps nothing writable.
    let lines = broker.run(&[
        "create shared 4096",
        "open shared read",
        "fdmode",
        "map write",
        "map read",
    ]);
    assert_eq!(lines[2], "fdmode rw");
    assert!(lines[3].starts_with("err 5 "), "{lines:?}");
    assert!(lines[4].starts_with("map len=4096"), "{lines:?}");
    let lines = broker.run(&["create rosec 4096 ro", "fdmode", "open rosec all", "fdmode"]);
    assert_eq!(
        (lines[1].as_str(), lines[3].as_str()),
        ("fdmode ro", "fdmode ro")
    );
}

#[test]
fn last_close_destroys_and_views_outlive_handles() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create life 4096",
        "map write",
        "close",
        "write 0 still-mapped",
        "read 0 12",
        "open life read",
    ]);
    assert_eq!(lines[4], "read still-mapped");
    assert!(
        lines[5].starts_with("err 2 "),
        "name must be free after the last close: {lines:?}"
    );
}

fn stat_finds(broker: &TestBroker, name: &str) -> bool {
    broker.objmgr(&["stat", name]).status.success()
}

#[test]
fn kill_9_of_the_only_holder_frees_the_name() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "create Global\\doomed 65536",
        "map write",
        "write 0 x",
        "hold",
    ]);
    holder.wait_for("holding");
    assert!(stat_finds(&broker, "Global\\doomed"));
    let brokers = broker.broker_pids();
    assert_eq!(brokers.len(), 1);
    // Once the holder is reaped (kill9 waits for it), its handles are closed
    // for everyone: the broker reads a dead client's hang-up before it serves
    // any request made after the death. No polling.
    holder.kill9();
    assert!(
        !stat_finds(&broker, "Global\\doomed"),
        "the name outlived its only holder"
    );
    let lines = broker.run(&["create Global\\doomed 4096", "existed"]);
    assert_eq!(lines[1], "existed 0");
    assert_eq!(
        broker.broker_pids(),
        brokers,
        "the same broker freed the name (it did not die and restart)"
    );
}

#[test]
fn a_close_is_in_effect_for_everyone_once_it_returns() {
    // One process creates and closes a name, then wakes another through an
    // event, which opens the name at once: the open must fail, every round,
    // although closes go to the broker without waiting for a reply.
    const ROUNDS: usize = 300;
    let broker = TestBroker::new();
    let events = ["event Local\\ping auto 0", "event Local\\pong auto 0"];
    // A last round without the close: the opener must then find the name,
    // so that all those "not found" above mean something.
    let closer_script: Vec<&str> = events
        .into_iter()
        .chain(
            (0..ROUNDS).flat_map(|_| ["create Local\\order 4096", "close", "set 0", "wait 1 inf"]),
        )
        .chain(["create Local\\order 4096", "set 0", "wait 1 inf"])
        .collect();
    // The opener closes something of its own just before it waits, so that
    // its connection is often ready (with that close) when the closer's close
    // arrives: the broker must still read the closer's close first.
    let opener_script: Vec<&str> = events
        .into_iter()
        .chain((0..ROUNDS).flat_map(|_| {
            [
                "create - 4096",
                "close",
                "wait 0 inf",
                "open Local\\order read",
                "set 1",
            ]
        }))
        .chain(["wait 0 inf", "open Local\\order read", "set 1"])
        .collect();
    let closer = broker.spawn(&closer_script);
    let opener = broker.spawn(&opener_script);
    let created = closer.finish();
    let opened = opener.finish();
    let creations = created.iter().filter(|l| l.starts_with("create")).count();
    assert_eq!(creations, ROUNDS + 1);
    assert!(
        created
            .iter()
            .filter(|l| l.starts_with("create"))
            .all(|l| l == "create existed=0"),
        "{created:?}"
    );
    let mut opens: Vec<&String> = opened
        .iter()
        .filter(|l| l.starts_with("err") || l.starts_with("open"))
        .collect();
    assert_eq!(opens.len(), ROUNDS + 1, "{opened:?}");
    assert_eq!(opens.pop().unwrap(), "open", "the name not closed is found");
    for (round, line) in opens.iter().enumerate() {
        assert!(
            line.starts_with("err 2 "),
            "round {round}: a closed section was still found: {line}"
        );
    }
}

#[test]
fn racing_creators_get_exactly_one_creation() {
    let broker = TestBroker::new();
    let mut children: Vec<_> = (0..32)
        .map(|_| {
            broker.spawn(&[
                "hold",
                "create Global\\race 65536",
                "map write",
                "add 0",
                "hold",
                "load 0",
            ])
        })
        .collect();
    // All 32 are running and waiting; let them go as close together as we can.
    for child in &mut children {
        child.wait_for("holding");
    }
    for child in &mut children {
        child.release();
    }
    let mut created = 0;
    for child in &mut children {
        let line = child.wait_for("create");
        if line == "create existed=0" {
            created += 1;
        } else {
            assert_eq!(line, "create existed=1");
        }
        child.wait_for("holding");
    }
    assert_eq!(created, 1, "exactly one process creates the section");
    for child in &mut children {
        child.release();
    }
    for child in children {
        assert_eq!(
            child.finish().last().unwrap(),
            "load 32",
            "all 32 see the same memory"
        );
    }
}

#[test]
fn copy_on_write_views_are_private() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&[
        "create cow 4096",
        "map write",
        "write 0 original",
        "hold",
        "read 0 8",
    ]);
    owner.wait_for("holding");
    let lines = broker.run(&["open cow read", "map copy", "write 0 modified", "read 0 8"]);
    assert_eq!(lines[3], "read modified");
    owner.release();
    assert_eq!(owner.finish().last().unwrap(), "read original");
}

#[test]
fn views_at_chosen_addresses_never_clobber() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create at 131072",
        "map write",
        "map_at write inside",
        "map_at write 10001",
        "map write 65536 0 prefault",
        "write 0 y",
        "read 0 1",
    ]);
    assert!(
        lines[2].starts_with("err 487 "),
        "an occupied address: ERROR_INVALID_ADDRESS: {lines:?}"
    );
    assert!(lines[3].starts_with("err 1132 "), "{lines:?}");
    assert!(lines[4].starts_with("map len=65536 "), "{lines:?}");
    assert_eq!(lines[6], "read y");
    // Unmap a view, then map exactly where it was.
    let lines = broker.run(&[
        "create at2 65536",
        "map write",
        "unmap",
        "map_at write freed",
        "write 0 z",
        "read 0 1",
    ]);
    let freed = lines[1].rsplit('=').next().unwrap();
    assert_eq!(lines[3], format!("map_at addr={freed}"));
    assert_eq!(lines[5], "read z");
}

#[test]
fn file_backed_sections_share_the_file() {
    let broker = TestBroker::new();
    let path = broker.dir.join("data.bin");
    std::fs::write(&path, b"file contents here").unwrap();
    let p = path.to_str().unwrap();
    let mut owner = broker.spawn(&[
        &format!("create_file {p} rw Global\\filemap 0"),
        "size",
        "map write",
        "read 0 18",
        "write 0 FILE",
        "flush",
        "hold",
        "read 0 4",
    ]);
    owner.wait_for("holding");
    assert_eq!(owner.lines[1], "size 18");
    assert_eq!(owner.lines[3], "read file contents here");
    assert_eq!(
        &std::fs::read(&path).unwrap()[..4],
        b"FILE",
        "flushed view writes reach the file"
    );
    let lines = broker.run(&["open Global\\filemap read", "map read", "read 0 18"]);
    assert_eq!(lines[2], "read FILE contents here");
    // Writes to the file are visible in views.
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(b"EDIT", 0)
        .unwrap();
    owner.release();
    assert_eq!(owner.finish().last().unwrap(), "read EDIT");
}

#[test]
fn file_backed_rules_match_windows() {
    let broker = TestBroker::new();
    let empty = broker.dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let small = broker.dir.join("small.bin");
    std::fs::write(&small, b"0123456789").unwrap();
    let (e, s) = (empty.to_str().unwrap(), small.to_str().unwrap());
    let lines = broker.run(&[
        &format!("create_file {e} rw - 0"),
        &format!("create_file {e} rw named 0"),
        &format!("create_file {s} ro - 0 rw"),
        &format!("create_file {s} ro - 100 ro"),
        &format!("create_file {s} ro - 5 ro"),
        &format!("create_file {s} rw - 100000 rw"),
        "size",
    ]);
    assert!(
        lines[0].starts_with("err 1006 "),
        "zero-length file, size 0: ERROR_FILE_INVALID: {lines:?}"
    );
    assert!(lines[1].starts_with("err 1006 "), "{lines:?}");
    assert!(
        lines[2].starts_with("err 5 "),
        "read-only file, PAGE_READWRITE: ERROR_ACCESS_DENIED: {lines:?}"
    );
    assert!(
        lines[3].starts_with("err 8 "),
        "read-only file cannot grow: {lines:?}"
    );
    assert_eq!(lines[4], "create_file");
    assert_eq!(lines[5], "create_file");
    assert_eq!(lines[6], "size 100000");
    assert_eq!(
        std::fs::metadata(&small).unwrap().len(),
        100_000,
        "a larger writable mapping extends the file"
    );
}

#[test]
fn large_pages_use_huge_pages_or_fail_as_documented() {
    let broker = TestBroker::new();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap())
        })
    };
    let Some(huge_kib) = field("Hugepagesize:") else {
        // A kernel without huge-page support.
        let lines = broker.run(&["create_large - 2097152"]);
        assert!(lines[0].starts_with("err 50 "), "{lines:?}");
        return;
    };
    let huge = (huge_kib * 1024).to_string();
    let last = (huge_kib * 1024 - 1).to_string();
    let free = field("HugePages_Free:").unwrap_or(0);
    let create = format!("create_large Local\\big {huge}");
    let lines = broker.run(&["create_large - 4096", &create]);
    assert!(
        lines[0].starts_with("err 87 "),
        "size not a multiple of the large page: {lines:?}"
    );
    if free >= 1 {
        assert_eq!(lines[1], "create existed=0");
        let write = format!("write {last} h");
        let read = format!("read {last} 1");
        let mut holder = broker.spawn(&[
            &create,
            "map write",
            &write,
            &read,
            "unmap",
            "map write 65536 4096",
            "hold",
        ]);
        holder.wait_for("holding");
        assert_eq!(holder.lines[3], "read h", "{:?}", holder.lines);
        // A view must start on a huge page: 64 KiB offsets inside one are refused.
        assert!(
            holder.lines[5].starts_with("err 1132 "),
            "{:?}",
            holder.lines
        );
        // objmgr dump reads anywhere in it all the same.
        let dump = broker.objmgr(&["dump", "Local\\big", "--offset", &last, "--len", "1"]);
        assert!(dump.status.success(), "{dump:?}");
        assert_eq!(
            String::from_utf8_lossy(&dump.stdout),
            format!("{:08x}: 68{}h\n", huge_kib * 1024 - 1, " ".repeat(39))
        );
        holder.release();
        holder.finish();
    } else {
        assert!(
            lines[1].starts_with("err 1450 "),
            "no free huge pages: ERROR_NO_SYSTEM_RESOURCES: {lines:?}"
        );
    }
}

#[test]
fn cli_lists_stats_and_dumps_live_sections() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&[
        "create Global\\shown 70000",
        "map write",
        "write 65536 Hello,-dump!",
        "hold",
    ]);
    owner.wait_for("holding");
    let ls = broker.objmgr(&["ls"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success());
    assert!(
        text.contains("Section")
            && text.contains("70000")
            && text.contains("\\BaseNamedObjects\\shown"),
        "{text}"
    );
    let json = broker.objmgr(&["ls", "--json"]).stdout;
    let listed: serde_json::Value = serde_json::from_slice(&json).expect("ls --json is JSON");
    assert_eq!(listed["schema_version"], 1, "{listed}");
    let shown = listed["objects"]
        .as_array()
        .expect("ls --json lists objects")
        .iter()
        .find(|o| o["path"] == "\\BaseNamedObjects\\shown")
        .unwrap_or_else(|| panic!("not listed: {listed}"));
    assert_eq!(shown["type"], "Section", "{shown}");
    assert_eq!(shown["handles"], 1, "{shown}");
    assert_eq!(shown["size"], 70000, "{shown}");
    let stat_json = broker.objmgr(&["stat", "Global\\shown", "--json"]).stdout;
    let stat_json: serde_json::Value =
        serde_json::from_slice(&stat_json).expect("stat --json is JSON");
    assert_eq!(
        stat_json["path"], "\\BaseNamedObjects\\shown",
        "{stat_json}"
    );
    let stat =
        String::from_utf8_lossy(&broker.objmgr(&["stat", "Global\\shown"]).stdout).into_owned();
    assert!(
        stat.contains("PAGE_READWRITE") && stat.contains("paging file"),
        "{stat}"
    );
    // Byte for byte what `xxd -o 65536` prints for the same 20 bytes.
    let dump = broker.objmgr(&["dump", "Global\\shown", "--offset", "65536", "--len", "20"]);
    assert_eq!(
        String::from_utf8_lossy(&dump.stdout),
        "00010000: 4865 6c6c 6f2c 2d64 756d 7021 0000 0000  Hello,-dump!....\n\
         00010010: 0000 0000                                ....\n"
    );
    let missing = broker.objmgr(&["stat", "Global\\nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ERROR_FILE_NOT_FOUND"));
    assert_eq!(broker.objmgr(&["bogus"]).status.code(), Some(2));
    owner.release();
    owner.finish();
}

#[test]
fn broker_starts_once_under_a_race_and_idles_out() {
    let broker = TestBroker::new();
    assert!(broker.broker_pids().is_empty());
    let mut children: Vec<_> = (0..10)
        .map(|i| {
            broker
                .script(&["hold", &format!("create Global\\start{i} 4096"), "hold"])
                .env("OBJMGR_IDLE_TIMEOUT_MS", "200")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|c| std::io::BufReader::new(c.stdout.take().unwrap()))
        .collect();
    let mut next_result = |i: usize| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut outputs[i], &mut line).unwrap() > 0,
                "child died"
            );
            if let Some(result) = line.trim().strip_prefix("@@") {
                return result.to_owned();
            }
        }
    };
    // All ten are running (none has touched objmgr yet); then all go at once.
    for i in 0..children.len() {
        assert_eq!(next_result(i), "holding");
    }
    assert!(broker.broker_pids().is_empty());
    for child in &mut children {
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
    }
    // Every child got served...
    for i in 0..children.len() {
        assert_eq!(next_result(i), "released");
        assert_eq!(next_result(i), "create existed=0");
    }
    // ...by exactly one broker.
    assert_eq!(broker.broker_pids().len(), 1);
    for mut child in children {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
    // With its last client gone, the broker exits by itself and cleans up.
    TestBroker::eventually("the idle broker to exit", || {
        broker.broker_pids().is_empty()
    });
    TestBroker::eventually("the socket to be removed", || !exists(&broker.socket));
}

#[test]
fn garbage_gets_a_client_disconnected_and_others_served() {
    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType};
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "create Global\\survivor 4096",
        "map write",
        "write 0 alive",
        "hold",
    ]);
    holder.wait_for("holding");
    let garbage: [&[u8]; 3] = [b"\xff\xff\xff\xffgarbage", b"", &[0u8; 3]];
    for bytes in garbage {
        let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
        rustix::net::connect(&fd, &SocketAddrUnix::new(&broker.socket).unwrap()).unwrap();
        rustix::net::send(&fd, bytes, SendFlags::empty()).unwrap();
        let mut buf = [0u8; 256];
        // The broker answers garbage by closing the connection: recv sees EOF.
        let n = rustix::net::recv(&fd, &mut buf, RecvFlags::empty())
            .map(|(n, _)| n)
            .unwrap_or(0);
        if !bytes.is_empty() {
            assert_eq!(n, 0, "expected a disconnect after {bytes:?}");
        }
    }
    // A request before Hello gets an ERROR_INVALID_DATA reply, then a disconnect.
    {
        use objmgr_proto::wire::{Opcode, Request, decode_reply};
        let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
        rustix::net::connect(&fd, &SocketAddrUnix::new(&broker.socket).unwrap()).unwrap();
        rustix::net::send(&fd, &Request::Status.encode(7), SendFlags::empty()).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = rustix::net::recv(&fd, &mut buf, RecvFlags::empty()).unwrap();
        let (seq, result) = decode_reply(Opcode::Status, &buf[..n]).unwrap();
        assert_eq!((seq, result.unwrap_err().0), (7, 13));
        let n = rustix::net::recv(&fd, &mut buf, RecvFlags::empty())
            .map(|(n, _)| n)
            .unwrap_or(0);
        assert_eq!(n, 0, "the broker hangs up after a protocol violation");
    }
    let lines = broker.run(&["open Global\\survivor read", "map read", "read 0 5"]);
    assert_eq!(lines[2], "read alive");
    holder.release();
    holder.finish();
}

#[test]
fn broker_shutdown_fails_calls_cleanly_and_next_use_restarts() {
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&[
        "create Global\\gone 4096",
        "map write",
        "write 0 kept",
        "hold",
        "read 0 4",
        "map read",
        "open Global\\gone read",
        "create Global\\again 4096",
    ]);
    holder.wait_for("holding");
    assert!(broker.objmgr(&["broker", "stop"]).status.success());
    TestBroker::eventually("the broker to stop", || broker.broker_pids().is_empty());
    holder.release();
    let lines = holder.finish();
    let n = lines.len();
    assert_eq!(
        lines[n - 4],
        "read kept",
        "views keep working without the broker"
    );
    assert!(
        lines[n - 3].starts_with("err 6 ") && lines[n - 3].contains("gone"),
        "the lost broker's handles are a clear error: {lines:?}"
    );
    assert!(
        lines[n - 2].starts_with("err 2 "),
        "a name is looked up in a new broker, which starts empty: {lines:?}"
    );
    assert_eq!(
        lines[n - 1],
        "create existed=0",
        "the next use starts a broker again"
    );
}

#[test]
fn memory_sections_cannot_be_resized_and_execute_views_work() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "create sealed 131072",
        "truncate 4096",
        "truncate 1048576",
        "map write",
        "write 131071 z",
        "read 131071 1",
        "create exec 65536 rx",
        "map rx",
    ]);
    // EPERM: the memfd is sealed against shrinking and growing, so no view can take SIGBUS.
    assert_eq!(lines[1], "truncate refused errno=1");
    assert_eq!(lines[2], "truncate refused errno=1");
    assert_eq!(lines[5], "read z");
    assert!(lines[7].starts_with("map len=65536 "), "{lines:?}");
}

#[test]
fn the_broker_refuses_other_users() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !rustix::process::getuid().is_root() {
        // Only root can run a client as another uid; the check below needs one.
        eprintln!("skipped: needs root to impersonate another uid");
        return;
    }
    let broker = TestBroker::new();
    let mut holder = broker.spawn(&["create Global\\private 4096", "hold"]);
    holder.wait_for("holding");
    // Let another uid reach the socket at the file-system level, so that only
    // the broker's SO_PEERCRED check stands in its way.
    std::fs::set_permissions(&broker.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&broker.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_objmgr"))
        .args(["broker", "status"])
        .env("OBJMGR_SOCKET", &broker.socket)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It reached the socket (no permission error), and the broker told it
    // why it would not serve it before hanging up.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ERROR_ACCESS_DENIED") && stderr.contains("uid 65534"),
        "{stderr}"
    );
    assert!(
        broker.objmgr(&["stat", "Global\\private"]).status.success(),
        "the owner is still served"
    );
    holder.release();
    holder.finish();
}

#[test]
fn nothing_is_left_behind() {
    let broker = TestBroker::new();
    let file = broker.dir.join("backing.bin");
    std::fs::write(&file, [0u8; 4096]).unwrap();
    let create_file = format!("create_file {} rw Global\\leftover-file 0", file.display());
    let mut holder = broker.spawn(&[
        "create Global\\leftover 65536",
        "create - 65536",
        &create_file,
        "event Local\\leftover-event manual 0",
        "mutex - 1",
        "hold",
    ]);
    holder.wait_for("holding");
    let broker_pid = broker.broker_pids()[0];
    let status = || -> serde_json::Value {
        let out = broker.objmgr(&["broker", "status", "--json"]).stdout;
        serde_json::from_slice(&out).expect("broker status --json is JSON")
    };
    let before = status();
    assert_eq!(before["objects"], 5, "{before}");
    assert_eq!(before["named_objects"], 3, "{before}");
    holder.kill9(); // dies holding everything, an owned mutex included
    // Named or not, every object died with its only holder.
    let after = status();
    assert_eq!(after["objects"], 0, "{after}");
    assert_eq!(after["handles"], 0, "{after}");
    assert!(broker.objmgr(&["broker", "stop"]).status.success());
    TestBroker::eventually("the broker to exit", || !common::is_alive(broker_pid));
    assert!(!exists(&broker.socket), "the socket file is removed");
    // The only file left in the test's directory is the user's own.
    let left: Vec<_> = std::fs::read_dir(&broker.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("backing.bin")]);
}

#[test]
fn the_broker_refuses_processes_it_cannot_see() {
    // A broker in its own pid namespace (a container, say) cannot see the
    // pid of a caller outside it: it refuses, and says why.
    let unshare = std::path::Path::new("/usr/bin/unshare");
    if !rustix::process::getuid().is_root() || !unshare.exists() {
        eprintln!("skipped: needs root and unshare(1) to make a pid namespace");
        return;
    }
    let broker = TestBroker::new();
    let mut inside = Command::new(unshare)
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_objmgrd"),
        ])
        .arg("--socket")
        .arg(&broker.socket)
        .args(["--idle-timeout", "never"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(inside.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    let out = broker.objmgr(&["broker", "status"]);
    // The broker itself (not unshare, whose command line names it too): its
    // parent, unshare, reaps it and exits.
    let brokers: Vec<u32> = broker
        .broker_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "objmgrd")
        })
        .collect();
    for pid in &brokers {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(*pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    let _ = inside.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(brokers.len(), 1, "the broker ran: {ready}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ERROR_ACCESS_DENIED") && stderr.contains("pid namespace"),
        "{stderr}"
    );
}

#[test]
fn the_commands_follow_the_usual_conventions() {
    let broker = TestBroker::new();
    let help = broker.objmgr(&["ls", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--files"));
    let help = broker.objmgr(&["dump", "-h"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--offset"));
    let version = broker.objmgr(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("objmgr {}", env!("CARGO_PKG_VERSION"))
    );
    // A missing value is a usage error (2), not a default.
    assert_eq!(
        broker.objmgr(&["dump", "x", "--offset"]).status.code(),
        Some(2)
    );
    assert_eq!(
        broker.objmgr(&["dump", "x", "--len", "ten"]).status.code(),
        Some(2)
    );
    let daemon = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_objmgrd"))
            .args(args)
            .output()
            .unwrap()
    };
    let version = daemon(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("objmgrd {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(daemon(&["--socket"]).status.code(), Some(2));
}

/// How many requests came through processes' pages, from `objmgr broker
/// status`.
fn paged_requests(broker: &TestBroker) -> u64 {
    let status = broker.objmgr(&["broker", "status"]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    status
        .lines()
        .find_map(|line| line.trim().strip_prefix("of which paged "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no paged count in {status}"))
}

/// The count of `op` requests in `objmgr broker status`.
fn requests_of(broker: &TestBroker, op: &str) -> u64 {
    let out = broker.objmgr(&["broker", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(op)).then(|| words.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {op} counter in {text}"))
}

#[test]
fn a_close_that_frees_nothing_is_in_effect_for_everyone_at_once() {
    let broker = TestBroker::new();
    // Handle 4 is the creator's, 8 the open's. Closing 8 frees nothing (4
    // holds the section): it is left in the process's close ring, no
    // message is sent, and nobody is woken.
    let mut holder = broker.spawn(&[
        "create Local\\\\ringed 4096",
        "open Local\\\\ringed read",
        "hold",
        "close",
        "hold",
        "close",
        "hold",
    ]);
    holder.wait_for("holding");
    let pid = holder.child.id().to_string();
    // Another process, connected already, asks nothing more until the
    // close has returned: its very next request must find 8 closed.
    let mut other = broker.spawn(&[
        &format!("open_process {pid}"),
        "hold",
        "dup_from 0 8 same",
        "dup_from 0 4 same",
    ]);
    other.wait_for("holding");
    holder.release();
    holder.wait_for("holding");
    other.release();
    let lines = other.finish();
    let n = lines.len();
    assert!(lines[n - 2].starts_with("err 6 "), "{lines:?}");
    assert!(lines[n - 1].starts_with("dup value="), "{lines:?}");
    // (The ring is asked for at the first close that can wait in it; the
    // other process asked for its page before its first DuplicateHandle,
    // to learn how far a broker that died got with it.)
    assert_eq!(
        requests_of(&broker, "close_ring"),
        2,
        "the rings were asked for"
    );
    let listed = broker.objmgr(&["handles", &pid]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.matches("Section").count(), 1, "{listed}");
    // The last handle's close is sent: the section is gone with it.
    assert!(broker.objmgr(&["stat", "Local\\ringed"]).status.success());
    holder.release();
    holder.wait_for("holding");
    assert!(!broker.objmgr(&["stat", "Local\\ringed"]).status.success());
    holder.release();
    holder.finish();
}

#[test]
fn an_open_by_name_never_shares_the_fd_of_a_handle_closed_behind_its_back() {
    let broker = TestBroker::new();
    // Handle 4 is the first section by that name.
    let mut first = broker.spawn(&[
        "create Local\\\\reborn 4096",
        "map write",
        "write 0 old",
        "hold",
        "open Local\\\\reborn read",
        "map read",
        "read 0 3",
    ]);
    first.wait_for("holding");
    let pid = first.child.id().to_string();
    // Another process closes that handle in the first (the section dies),
    // makes a new section by the name, and gives the first a handle to it,
    // which takes the freed value 4.
    let mut other = broker.spawn(&[
        &format!("open_process {pid}"),
        "dup_from 0 4 same close",
        "adopt_section $D",
        "close",
        "create Local\\\\reborn 4096",
        "existed",
        "map write",
        "write 0 new",
        "dup_into 0 8 same",
        "hold",
    ]);
    other.wait_for("holding");
    let lines = other.lines.clone();
    assert!(lines.iter().any(|l| l == "existed 0"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "dup value=4"), "{lines:?}");
    // The first process still has its note of 4 as the old section: the
    // open must map the new one all the same.
    first.release();
    let lines = first.finish();
    assert_eq!(lines.last().unwrap(), "read new", "{lines:?}");
    other.release();
    other.finish();
}

/// How many section memory files the broker `pid` holds open.
fn section_memfds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().contains("memfd:objmgr-section"))
        })
        .count()
}

#[test]
fn a_ring_close_that_a_theft_made_the_last_frees_the_section_unasked() {
    let broker = TestBroker::new();
    // The process holds the section twice (4 and 8) ...
    let mut holder = broker.spawn(&[
        "create Local\\\\stolen 65536",
        "open Local\\\\stolen read",
        "hold",
        "close",
        "hold",
    ]);
    holder.wait_for("holding");
    let pid = holder.child.id().to_string();
    // ... until another process closes 4 behind its back.
    broker.run(&[
        &format!("open_process {pid}"),
        "dup_from 0 4 same close",
        "adopt_section $D",
        "close",
    ]);
    let objmgrd = broker.broker_pids()[0];
    assert!(section_memfds(objmgrd) > 0);
    // Closing 8, which it believes frees nothing, goes to its close ring;
    // the section is gone though no process asks the broker anything,
    // within the broker's sweep of the rings (a second), well before any
    // other reason it has to wake.
    holder.release();
    holder.wait_for("holding");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    while section_memfds(objmgrd) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the section outlived the close"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    holder.release();
    holder.finish();
}

#[test]
fn a_process_that_asks_the_broker_often_asks_through_its_page() {
    let broker = TestBroker::new();
    let mut steps = vec!["create Local\\\\paged 4096", "map write", "write 0 hello"];
    for _ in 0..20 {
        steps.extend(["open Local\\\\paged read", "close"]);
    }
    // An answer that is an error comes through the page too.
    steps.extend([
        "open Local\\\\absent read",
        "open Local\\\\paged read",
        "map read",
        "read 0 5",
    ]);
    let lines = broker.run(&steps);
    let n = lines.len();
    assert!(lines[n - 4].starts_with("err 2 "), "{lines:?}");
    assert!(lines[n - 1].contains("hello"), "{lines:?}");
    // One doorbell; the opens after the first few came in the page (and
    // their descriptors, when one came, on the socket).
    assert_eq!(requests_of(&broker, "doorbell"), 1);
    let paged = paged_requests(&broker);
    assert!((15..=45).contains(&paged), "{paged} paged requests");
    // Exactly: the opens from the fourth request on (the doorbell is asked
    // for then), each taken once; the closes went in the ring.
    assert_eq!(paged, 20);
    assert_eq!(requests_of(&broker, "open"), 22);
}

#[test]
fn a_close_that_frees_a_section_wakes_the_broker_to_free_it_without_a_message() {
    let broker = TestBroker::new();
    // A few requests first (refused ones count): then the process has its
    // page and doorbell.
    let mut steps = vec!["open Local\\\\absent read"; 6];
    steps.extend(["create Local\\\\freed 65536", "hold", "close", "hold"]);
    let mut process = broker.spawn(&steps);
    process.wait_for("holding");
    let pid = broker.broker_pids()[0];
    let broker_fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = broker_fds();
    assert!(broker.objmgr(&["stat", "Local\\freed"]).status.success());
    let (closes, paged) = (requests_of(&broker, "close"), paged_requests(&broker));
    process.release();
    process.wait_for("holding");
    // Nobody asks the broker anything: the doorbell woke it, and it let go
    // of the section (its memory file) at once.
    TestBroker::eventually("the section freed", || broker_fds() < before);
    assert_eq!(
        requests_of(&broker, "close_no_reply"),
        0,
        "a message was sent"
    );
    assert_eq!(requests_of(&broker, "close"), closes, "a close was asked");
    assert_eq!(paged_requests(&broker), paged, "a close was asked");
    assert!(!broker.objmgr(&["stat", "Local\\freed"]).status.success());
    process.release();
    process.finish();
}
