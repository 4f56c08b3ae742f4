//! Files shared between processes with Windows' rules: share modes,
//! byte-range locks that are mandatory among objmgr processes and visible
//! to `fcntl`, handles inherited by a child (sharing the position), no
//! truncation under a mapped section, and deletion only where shared.

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

fn path(broker: &TestBroker, name: &str) -> String {
    broker.dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn share_modes_are_checked_across_processes_and_links() {
    let broker = TestBroker::new();
    let file = path(&broker, "shared.dat");
    let link = path(&broker, "link.dat");
    // The holder writes and lets others read only.
    let mut holder = broker.spawn(&[&format!("fopen {file} rw 1"), "hold"]);
    holder.wait_for("holding");
    std::fs::hard_link(&file, &link).unwrap();
    let listed = String::from_utf8_lossy(&broker.objmgr(&["ls", "--files"]).stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("File") && l.contains("share=read") && l.contains("shared.dat")),
        "{listed}"
    );
    let lines = broker.run(&[
        // A reader that shares writing: fine.
        &format!("fopen {file} r 3"),
        // A reader that does not share writing (the holder writes).
        &format!("fopen {file} r 1"),
        // A writer (the holder does not share writing), by the other name.
        &format!("fopen {link} w 7"),
        // Deleting needs FILE_SHARE_DELETE from every open.
        &format!("fdelete {link}"),
    ]);
    assert!(lines[0].starts_with("fopen value="), "{lines:?}");
    for line in &lines[1..4] {
        assert!(line.starts_with("err 32 "), "{lines:?}");
    }
    holder.release();
    holder.finish();
    // Once the holder is gone, nothing stands in the way.
    let lines = broker.run(&[
        &format!("fopen {link} w 0"),
        "fclose 0",
        &format!("fdelete {link}"),
    ]);
    assert_eq!(lines[1..], ["closed file", "deleted"], "{lines:?}");
}

#[test]
fn byte_range_locks_are_mandatory_wait_and_die_with_their_holder() {
    let broker = TestBroker::new();
    let file = path(&broker, "locked.dat");
    std::fs::write(&file, vec![b'.'; 4096]).unwrap();
    let mut holder = broker.spawn(&[
        &format!("fopen {file} rw 3"),
        "flock 0 0 100 x now",
        "flock 0 50 10 s now",
        "flock 0 1000 10 s now",
        "hold",
        "funlock 0 0 100",
        "funlock 0 0 100",
        "hold",
    ]);
    holder.wait_for("holding");
    let listed = String::from_utf8_lossy(&broker.objmgr(&["ls", "--files"]).stdout).into_owned();
    assert!(
        listed.contains("0-99:write") && listed.contains("1000-1009:read"),
        "{listed}"
    );
    assert_eq!(
        holder.lines,
        [
            "fopen value=4",
            "locked",
            "err 33 locking 10 bytes at 50 of file handle 0x4",
            "locked",
            "holding"
        ]
        .iter()
        .zip(&holder.lines)
        .map(|(want, got)| if got.starts_with(want) {
            got.clone()
        } else {
            want.to_string()
        })
        .collect::<Vec<_>>()
    );
    let lines = broker.run(&[
        &format!("fopen {file} rw 3"),
        "flock 0 10 10 s now",
        "fread 0 5",
        "fseek 0 200",
        "fread 0 3",
        // A shared lock held elsewhere: reading is fine, writing is not.
        "fseek 0 1000",
        "fread 0 2",
        "fseek 0 1000",
        "fwrite 0 xx",
        "flock 0 2000 10 x now",
        "funlock 0 2000 11",
    ]);
    assert!(lines[1].starts_with("err 33 "), "{lines:?}");
    assert!(lines[2].starts_with("err 33 "), "{lines:?}");
    assert_eq!(lines[4], "read ...");
    assert_eq!(lines[6], "read ..");
    assert!(lines[8].starts_with("err 33 "), "{lines:?}");
    assert_eq!(lines[9], "locked");
    assert!(lines[10].starts_with("err 158 "), "{lines:?}");
    // A waiter sleeps until the holder unlocks.
    let mut waiter = broker.spawn(&[
        &format!("fopen {file} rw 3"),
        "flock 0 0 100 x wait",
        "mypid",
    ]);
    waiter.wait_for("fopen");
    std::thread::sleep(std::time::Duration::from_millis(300));
    holder.release();
    assert_eq!(holder.wait_for("unlocked"), "unlocked");
    assert!(
        holder.wait_for("err").starts_with("err 158 "),
        "unlocking twice"
    );
    assert_eq!(waiter.wait_for("locked"), "locked");
    // The waiter holds it now; killed, it lets go.
    waiter.wait_for("pid");
    waiter.kill9();
    let lines = broker.run(&[&format!("fopen {file} rw 3"), "flock 0 0 100 x now"]);
    assert_eq!(lines[1], "locked", "{lines:?}");
    holder.release();
    holder.finish();
}

#[test]
fn a_mapped_file_cannot_be_cut_short_from_another_process() {
    let broker = TestBroker::new();
    let file = path(&broker, "mapped.dat");
    std::fs::write(&file, vec![0u8; 8192]).unwrap();
    let mut mapper = broker.spawn(&[&format!("create_file {file} rw - 8192"), "map all", "hold"]);
    mapper.wait_for("holding");
    let lines = broker.run(&[
        &format!("fopen {file} rw 7"),
        "fsetlen 0 100",
        "fsetlen 0 16384",
        // The mapping is a user of the file: it writes and shares only
        // reading and writing.
        &format!("fopen {file} r 1"),
        &format!("fdelete {file}"),
    ]);
    assert!(lines[1].starts_with("err 1224 "), "{lines:?}");
    assert_eq!(lines[2], "length set");
    assert!(lines[3].starts_with("err 32 "), "{lines:?}");
    assert!(lines[4].starts_with("err 5 "), "{lines:?}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 16384);
    mapper.release();
    mapper.finish();
    // The section is gone: now it may shrink.
    let lines = broker.run(&[&format!("fopen {file} rw 7"), "fsetlen 0 100"]);
    assert_eq!(lines[1], "length set", "{lines:?}");
}

#[test]
fn an_inherited_file_handle_shares_the_position_and_the_share_mode() {
    let broker = TestBroker::new();
    let file = path(&broker, "inherited.dat");
    let lines = broker.run(&[
        &format!("fopen {file} rw 0 inherit"),
        "fwrite 0 ab",
        "spawn inherit adopt_file 4;fwrite 0 cd",
        "child_finish",
        "fwrite 0 ef",
        // Share mode 0 keeps everyone else out, the child's handle included
        // in the count of users.
        &format!("fopen {file} r 7"),
    ]);
    assert_eq!(lines[0], "fopen value=4");
    assert_eq!(
        lines[3..6],
        ["child adopted file", "child wrote 2", "child exit=0"],
        "{lines:?}"
    );
    assert!(lines[7].starts_with("err 32 "), "{lines:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "abcdef");
}

#[test]
fn a_file_handle_duplicated_into_another_process_is_the_same_open() {
    let broker = TestBroker::new();
    let file = path(&broker, "duplicated.dat");
    let mut other = broker.spawn(&["event - manual 0", "hold", "adopt_file $IN", "fwrite 0 cd"]);
    other.wait_for("holding");
    let lines = broker.run(&[
        &format!("fopen {file} rw 0"),
        "fwrite 0 ab",
        &format!("open_process {}", other.child.id()),
        "dup_into 0 4 same",
    ]);
    let value = lines[3]
        .strip_prefix("dup value=")
        .unwrap_or_else(|| panic!("{lines:?}"));
    other.release_with(value);
    let lines = other.finish();
    assert_eq!(
        lines[lines.len() - 2..],
        ["adopted file", "wrote 2"],
        "{lines:?}"
    );
    // The position was shared: the other process wrote after "ab".
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "abcd");
}

#[test]
fn a_handle_never_carries_more_than_its_access_and_proves_nothing_it_lacks() {
    let broker = TestBroker::new();
    let file = path(&broker, "narrow.dat");
    std::fs::write(&file, b"data").unwrap();
    // An O_PATH fd opens nothing: it cannot stand for a reader.
    let lines = broker.run(&[&format!("fopen_path {file}")]);
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    // A read-write handle duplicated as read-only: the other process gets a
    // read-only fd (and the library refuses the write before the kernel).
    let mut other = broker.spawn(&[
        "event - manual 0",
        "hold",
        "adopt_file $IN",
        "ffdmode 0",
        "fread 0 4",
        "fwrite 0 xx",
    ]);
    other.wait_for("holding");
    let lines = broker.run(&[
        &format!("fopen {file} rw 7"),
        &format!("open_process {}", other.child.id()),
        "dup_into 0 4 1",
    ]);
    let value = lines[2]
        .strip_prefix("dup value=")
        .unwrap_or_else(|| panic!("{lines:?}"));
    other.release_with(value);
    let lines = other.finish();
    let tail = &lines[lines.len() - 4..];
    assert_eq!(
        tail[..3],
        ["adopted file", "ffdmode ro", "read data"],
        "{lines:?}"
    );
    assert!(tail[3].starts_with("err 5 "), "{lines:?}");
}

#[test]
fn unlocking_one_lock_keeps_the_others_of_the_handle() {
    let broker = TestBroker::new();
    let file = path(&broker, "stacked.dat");
    std::fs::write(&file, vec![b'.'; 256]).unwrap();
    let mut holder = broker.spawn(&[
        &format!("fopen {file} rw 3"),
        "flock 0 0 100 s now",
        "flock 0 50 10 s now",
        "funlock 0 0 100",
        "hold",
    ]);
    holder.wait_for("holding");
    // 50..59 is still locked (shared): no exclusive lock there; the rest is free.
    let lines = broker.run(&[
        &format!("fopen {file} rw 3"),
        "flock 0 55 1 x now",
        "flock 0 0 10 x now",
    ]);
    assert!(lines[1].starts_with("err 33 "), "{lines:?}");
    assert_eq!(lines[2], "locked", "{lines:?}");
    holder.release();
    holder.finish();
}

#[test]
fn a_delete_waits_for_the_last_handle_and_delete_on_close_survives_a_killed_holder() {
    let broker = TestBroker::new();
    let file = path(&broker, "pending.dat");
    std::fs::write(&file, b"x").unwrap();
    // Open with FILE_SHARE_DELETE: deleting is pending, the name stays,
    // and new opens are refused until the holder closes.
    let mut holder = broker.spawn(&[&format!("fopen {file} r 7"), "hold", "fclose 0", "hold"]);
    holder.wait_for("holding");
    let lines = broker.run(&[
        &format!("fdelete {file}"),
        &format!("exists {file}"),
        &format!("fopen {file} r 7"),
    ]);
    assert_eq!(lines[..2], ["deleted", "exists 1"], "{lines:?}");
    assert!(lines[2].starts_with("err 5 "), "{lines:?}");
    holder.release();
    holder.wait_for("holding");
    let gone = |p: &str| {
        for _ in 0..250 {
            if !std::path::Path::new(p).exists() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    };
    assert!(gone(&file), "the name outlived the last handle");
    holder.release();
    holder.finish();
    // Delete on close: others may open only sharing delete; the file goes
    // when its last handle goes, also when the holder is killed.
    let doc = path(&broker, "temporary.dat");
    let mut owner = broker.spawn(&[&format!("fopen_doc {doc} 7"), "hold"]);
    owner.wait_for("holding");
    let lines = broker.run(&[&format!("fopen {doc} r 3"), &format!("fopen {doc} r 7")]);
    assert!(lines[0].starts_with("err 32 "), "{lines:?}");
    assert!(lines[1].starts_with("fopen value="), "{lines:?}");
    assert!(std::path::Path::new(&doc).exists());
    owner.kill9();
    assert!(
        gone(&doc),
        "a delete-on-close file outlived its killed holder"
    );
}
