//! A short run of each fuzz target (fixed seeds).

use std::process::Command;

fn driver(args: &[&str]) -> std::process::Output {
    let crashes =
        std::env::temp_dir().join(format!("omtest-fuzz-{}-{}", args[0], std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_objmgr-fuzz"))
        .args(args)
        .arg("--crashes")
        .arg(&crashes)
        .output()
        .expect("run objmgr-fuzz");
    let _ = std::fs::remove_dir_all(&crashes);
    output
}

fn assert_clean(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_wire_decoder_survives_random_and_mutated_messages() {
    let output = driver(&["wire", "--cases", "200000", "--seed", "1"]);
    assert_clean(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("200000 cases"));
}

#[test]
fn the_broker_survives_random_request_sequences() {
    let output = driver(&["broker", "--cases", "2000", "--seed", "1"]);
    assert_clean(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("2000 cases"));
}

#[test]
fn a_broker_process_survives_hostile_clients_on_its_socket() {
    let output = driver(&["socket", "--cases", "2000", "--seed", "1"]);
    assert_clean(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("2000 cases"));
}
