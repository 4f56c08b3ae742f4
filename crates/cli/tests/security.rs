//! Security descriptors on objects, checked by the broker on every open and
//! every create that finds the name taken, with real processes (and, as
//! root, real other users).

mod common;
#[path = "common/script.rs"]
mod script;

use common::{TestBroker, as_user, is_root, output_or_hang, result_lines, unused_id};

/// This process's user as a SID (root is SYSTEM).
fn my_sid() -> String {
    objmgr::security::Sid::unix_user(rustix::process::getuid().as_raw()).to_string()
}

/// Entry point for child processes (see `sections.rs`).
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

#[test]
fn a_deny_ace_wins_over_a_later_allow() {
    let broker = TestBroker::new();
    let mut creator = broker.spawn(&[
        "create_sd Local\\guarded D:(D;;GW;;;WD)(A;;GA;;;WD)",
        "hold",
    ]);
    assert_eq!(creator.wait_for("create"), "create existed=0");
    creator.wait_for("holding");
    let lines = broker.run(&[
        "open Local\\guarded write",
        "open Local\\guarded all",
        "open Local\\guarded read",
        "map read",
        // A create of the taken name asks for all access: refused too.
        "create Local\\guarded 65536",
    ]);
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    assert!(lines[1].starts_with("err 5 "), "{lines:?}");
    assert_eq!(lines[2], "open");
    assert!(lines[3].starts_with("map len=65536"), "{lines:?}");
    assert!(lines[4].starts_with("err 5 "), "{lines:?}");
    creator.release();
    creator.finish();
}

#[test]
fn an_empty_dacl_leaves_the_owner_only_its_implicit_rights() {
    let broker = TestBroker::new();
    let mut creator = broker.spawn(&["event_sd Local\\sealed D:", "hold"]);
    creator.wait_for("holding");
    let lines = broker.run(&[
        // SYNCHRONIZE
        "open_event Local\\sealed 100000",
        // READ_CONTROL | WRITE_DAC: the owner keeps them
        "open_event Local\\sealed 60000",
    ]);
    assert!(lines[0].starts_with("err 5 "), "{lines:?}");
    assert_eq!(lines[1], "opened");
    creator.release();
    creator.finish();
}

#[test]
fn a_synchronize_only_grant_can_wait_but_not_signal() {
    let broker = TestBroker::new();
    let mut creator = broker.spawn(&[
        "event_sd Local\\waitonly O:SYD:(A;;0x100000;;;WD)",
        "hold",
        "set 0",
    ]);
    creator.wait_for("holding");
    let mut waiter = broker.spawn(&[
        "open_event Local\\waitonly 2",
        "open_event Local\\waitonly 100000",
        "set 0",
        "wait 0 inf",
    ]);
    assert!(
        waiter.wait_for("").starts_with("err 5 "),
        "EVENT_MODIFY_STATE is not granted"
    );
    assert_eq!(waiter.wait_for(""), "opened");
    let refused = waiter.wait_for("");
    assert!(
        refused.starts_with("err 5 "),
        "a SYNCHRONIZE handle cannot set: {refused}"
    );
    creator.release();
    assert_eq!(waiter.wait_for("wait"), "wait object 0");
    waiter.finish();
    creator.finish();
}

#[test]
fn stat_and_ls_show_the_owner_and_the_descriptor() {
    let broker = TestBroker::new();
    let mut creator = broker.spawn(&["create_sd Local\\shown D:(A;;GR;;;WD)", "hold"]);
    creator.wait_for("holding");
    let stat =
        String::from_utf8_lossy(&broker.objmgr(&["stat", "Local\\shown"]).stdout).into_owned();
    let me = if rustix::process::getuid().is_root() {
        "SY".to_owned()
    } else {
        format!("S-1-22-1-{}", rustix::process::getuid().as_raw())
    };
    assert!(
        stat.contains("object_owner") && stat.contains(&me),
        "{stat}"
    );
    assert!(stat.contains("D:(A;;GR;;;WD)"), "{stat}");
    let ls = String::from_utf8_lossy(&broker.objmgr(&["ls"]).stdout).into_owned();
    assert!(ls.contains("OWNER") && ls.contains(&me), "{ls}");
    creator.release();
    creator.finish();
}

#[test]
fn another_user_is_held_to_the_descriptor() {
    if !is_root() {
        return;
    }
    // A broker of user A; root may connect to it, and is SYSTEM there: the
    // default descriptor grants SYSTEM everything, one that names only A
    // grants root nothing.
    let broker = TestBroker::new();
    let a = unused_id(0);
    std::os::unix::fs::chown(&broker.dir, Some(a), Some(a)).unwrap();
    let mut creator = broker.script(&[
        "create Local\\default 65536",
        &format!("create_sd Local\\only-a D:(A;;GA;;;S-1-22-1-{a})"),
        "hold",
    ]);
    let (mut creator, _) = common::start_until(as_user(&mut creator, a), "@@holding");
    let lines = result_lines(&output_or_hang(
        &mut broker.script(&["open Local\\default all", "open Local\\only-a read"]),
        "root's client",
    ));
    let _ = creator.kill();
    let _ = creator.wait();
    assert_eq!(lines[0], "open", "{lines:?}");
    assert!(lines[1].starts_with("err 5 "), "{lines:?}");
}

#[test]
fn only_a_principal_of_the_creator_may_be_named_owner() {
    let stranger = "S-1-22-1-4000000000";
    let broker = TestBroker::new();
    let mut script = broker.script(&[&format!(
        "create_sd Local\\owned O:{stranger}D:(A;;GA;;;WD)"
    )]);
    let lines = result_lines(&output_or_hang(&mut script, "the creator"));
    if !is_root() {
        assert!(
            lines[0].starts_with("err 1307 "),
            "ERROR_INVALID_OWNER: {lines:?}"
        );
        return;
    }
    // Root (SYSTEM) may name anyone, as with SeRestorePrivilege.
    assert_eq!(lines, ["create existed=0"]);
    // Another user may not, but may name itself.
    let user = unused_id(1);
    let broker = TestBroker::new();
    std::os::unix::fs::chown(&broker.dir, Some(user), Some(user)).unwrap();
    let mut other = broker.script(&[
        &format!("create_sd Local\\owned2 O:{stranger}D:(A;;GA;;;WD)"),
        &format!("create_sd Local\\owned3 O:S-1-22-1-{user}D:(A;;GA;;;WD)"),
    ]);
    let lines = result_lines(&output_or_hang(as_user(&mut other, user), "a user"));
    assert!(
        lines[0].starts_with("err 1307 "),
        "ERROR_INVALID_OWNER: {lines:?}"
    );
    assert_eq!(lines[1], "create existed=0");
}

#[test]
fn a_descriptor_is_read_and_changed_through_a_handle() {
    let broker = TestBroker::new();
    let mut owner = broker.spawn(&[
        "event_sd Local\\changing D:(A;;GA;;;WD)",
        "get_sd $E 4",
        "hold",
        // Deny Everyone everything but SYNCHRONIZE and READ_CONTROL.
        "set_sd $E 4 D:(A;;0x120000;;;WD)",
        "hold",
    ]);
    assert_eq!(owner.wait_for("sd"), "sd D:(A;;GA;;;WD)");
    owner.wait_for("holding");
    // A handle without READ_CONTROL cannot read it, one with it can.
    let lines = broker.run(&[
        "open_event Local\\changing 100000",
        "get_sd $E 4",
        "open_event Local\\changing 120000",
        "get_sd $E 5",
        "set_sd $E 4 D:",
    ]);
    assert!(lines[1].starts_with("err 5 "), "{lines:?}");
    assert!(
        lines[3].starts_with("sd O:") && lines[3].contains("D:(A;;GA;;;WD)"),
        "{lines:?}"
    );
    assert!(
        lines[4].starts_with("err 5 "),
        "WRITE_DAC is not granted: {lines:?}"
    );
    owner.release();
    assert_eq!(owner.wait_for("sd"), "sd D:(A;;0x120000;;;WD)");
    owner.wait_for("holding");
    let lines = broker.run(&[
        "open_event Local\\changing 2",
        "open_event Local\\changing 100000",
    ]);
    assert!(
        lines[0].starts_with("err 5 "),
        "the new DACL holds: {lines:?}"
    );
    assert_eq!(lines[1], "opened");
    owner.release();
    owner.finish();
}

#[test]
fn duplicating_for_more_access_asks_the_descriptor() {
    let broker = TestBroker::new();
    let lines = broker.run(&[
        // The default descriptor grants the creator everything: a handle
        // with SYNCHRONIZE only may be duplicated into one that may set.
        "event Local\\dup-default manual 0",
        "open_event Local\\dup-default 100000",
        "dup_self $E 2",
        // This one grants everyone SYNCHRONIZE only.
        "event_sd Local\\dup-sync D:(A;;0x100000;;;WD)",
        "open_event Local\\dup-sync 100000",
        "dup_self $E 2",
        "dup_self $E 100000",
    ]);
    assert!(lines[2].starts_with("dup value="), "{lines:?}");
    assert!(lines[5].starts_with("err 5 "), "{lines:?}");
    assert!(lines[6].starts_with("dup value="), "{lines:?}");
}

#[test]
fn a_section_handle_without_a_map_right_maps_nothing_and_nothing_asked_is_nothing_granted() {
    let broker = TestBroker::new();
    let mut creator = broker.spawn(&["create_sd Local\\\\open D:NO_ACCESS_CONTROL", "hold"]);
    creator.wait_for("holding");
    let lines = broker.run(&[
        "open Local\\\\open none",
        // A handle with SECTION_QUERY only, as Windows allows: it can be
        // held, queried and closed, but its fd maps nothing (O_PATH), so
        // neither the library nor the kernel lets it map the section.
        "open Local\\\\open query",
        "map read",
        "raw_map_write",
        "close",
        "open Local\\\\open read",
    ]);
    assert!(lines[0].starts_with("err 5 "), "no access asked: {lines:?}");
    assert_eq!(lines[1], "open", "{lines:?}");
    assert!(lines[2].starts_with("err 5 "), "no map right: {lines:?}");
    assert_eq!(lines[3], "raw_map_write refused errno=9", "{lines:?}");
    assert_eq!(lines[4], "close");
    assert_eq!(lines[5], "open");
    creator.release();
    creator.finish();
}

#[test]
fn a_private_namespace_holds_names_only_its_boundary_reaches() {
    let broker = TestBroker::new();
    let me = my_sid();
    let mut service = broker.spawn(&[
        &format!("ns_create svc-boundary svc {me}"),
        "create svc\\\\data 4096",
        "map all",
        "write 0 private",
        "hold",
        "ns_close destroy",
        "hold",
    ]);
    service.wait_for("holding");
    let lines = broker.run(&[
        // Without the namespace the name means nothing.
        "open svc\\\\data read",
        // A second namespace with that boundary cannot be made.
        &format!("ns_create svc-boundary other {me}"),
        // Opened under another alias: the same names.
        &format!("ns_open svc-boundary mine {me}"),
        "open mine\\\\data read",
        "map read",
        "read 0 7",
        // Everyone is not in this boundary's token test; a boundary whose
        // SID this process does not hold is refused.
        "ns_create foreign theirs S-1-22-1-4000000000",
    ]);
    assert!(lines[0].starts_with("err 3 "), "{lines:?}");
    assert!(lines[1].starts_with("err 183 "), "{lines:?}");
    assert_eq!(lines[2], "namespace");
    assert_eq!(lines[5], "read private", "{lines:?}");
    assert!(lines[6].starts_with("err 5 "), "{lines:?}");
    // Destroyed: no longer found, although the section lives on.
    service.release();
    service.wait_for("holding");
    let lines = broker.run(&[&format!("ns_open svc-boundary mine {me}")]);
    assert!(lines[0].starts_with("err 3 "), "{lines:?}");
    service.release();
    service.finish();
}

#[test]
fn a_namespace_descriptor_limits_what_openers_may_do() {
    let broker = TestBroker::new();
    let me = my_sid();
    // Everyone may traverse (use names) but not create names or destroy it.
    let mut service = broker.spawn(&[
        &format!("ns_create limited svc {me} D:(A;;0x20002;;;WD)"),
        "create svc\\\\data 4096",
        "hold",
    ]);
    assert_eq!(service.wait_for("namespace"), "namespace");
    service.wait_for("holding");
    let lines = broker.run(&[
        &format!("ns_open limited a {me}"),
        &format!("ns_open limited b {me}"),
        "open a\\\\data read",
        "create b\\\\squat 4096",
        // Closing one alias leaves the other open.
        "ns_close keep",
        "open a\\\\data read",
        "ns_close destroy",
    ]);
    assert_eq!(lines[2], "open", "{lines:?}");
    assert!(
        lines[3].starts_with("err 5 "),
        "no DIRECTORY_CREATE_OBJECT: {lines:?}"
    );
    assert_eq!(lines[4], "closed");
    assert_eq!(lines[5], "open", "{lines:?}");
    assert!(lines[6].starts_with("err 5 "), "no DELETE: {lines:?}");
    service.release();
    service.finish();
}

#[test]
fn changing_one_objects_descriptor_leaves_the_others_sharing_it_alone() {
    // Objects with their creator's default descriptor share one copy in the
    // broker; a change to one must not reach the others.
    let broker = TestBroker::new();
    let lines = broker.run(&[
        "event Local\\\\first manual 0",
        "event Local\\\\second manual 0",
        "set_sd $E 4 D:(A;;0x100000;;;WD)",
        "open_event Local\\\\first 2",
        "open_event Local\\\\second 2",
    ]);
    assert_eq!(lines[2], "sd D:(A;;0x100000;;;WD)", "{lines:?}");
    assert_eq!(
        lines[3], "opened",
        "the first keeps its descriptor: {lines:?}"
    );
    assert!(
        lines[4].starts_with("err 5 "),
        "the second has the new one: {lines:?}"
    );
}
