//! The Win32 C ABI from C: programs in `crates/win32/tests/c` are compiled
//! against `include/windows.h` and `libobjmgr_win32` (built by cargo as a
//! dependency of these tests) and run against an isolated broker.

mod common;
#[path = "common/script.rs"]
mod script;

use common::TestBroker;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Entry point for child processes (see `sections.rs`).
#[test]
fn child_process_entry() {
    if let Ok(script) = std::env::var(common::CHILD_ROLE_ENV) {
        script::run_script(&script);
    }
}

fn win32_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../win32")
}

/// Where cargo put `libobjmgr_win32.{so,a}` as a dependency of these tests:
/// beside the test executable (`target/<profile>/deps`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

/// How a test program links the library.
#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// Compiles `source` (in `crates/win32/tests/c`) into the broker's directory,
/// naming the library file itself so that no other copy can be picked up.
fn compile(broker: &TestBroker, source: &str, strict: bool, link: Link) -> PathBuf {
    let out = broker.dir.join(source.trim_end_matches(".c"));
    let mut cc = Command::new("cc");
    cc.arg(win32_dir().join("tests/c").join(source))
        .arg("-I")
        .arg(win32_dir().join("include"))
        // As `pkg-config --cflags objmgr-win32` gives: WCHAR is wchar_t.
        .arg("-fshort-wchar");
    match link {
        Link::Shared => cc.arg(lib_dir().join("libobjmgr_win32.so")),
        Link::Static => cc
            .arg(lib_dir().join("libobjmgr_win32.a"))
            .args(["-ldl", "-lm"]),
    };
    cc.args(["-lpthread", "-o"]).arg(&out);
    if strict {
        cc.args(["-std=gnu11", "-Wall", "-Werror"]);
    } else {
        // Microsoft's sample as published: MSVC-isms (`#pragma comment`,
        // `%d` for a DWORD) draw warnings, not errors.
        cc.arg("-w");
    }
    let status = cc.status().expect("run cc");
    assert!(status.success(), "compiling {source} failed");
    out
}

fn run(broker: &TestBroker, program: &Path) -> Command {
    let mut cmd = Command::new(program);
    // cargo's library path may hold an older copy of the library.
    cmd.env_remove("LD_LIBRARY_PATH")
        .env("OBJMGR_SOCKET", &broker.socket)
        .env("OBJMGR_BROKER", env!("CARGO_BIN_EXE_objmgrd"))
        .env("OBJMGR_IDLE_TIMEOUT_MS", "60000");
    cmd
}

#[test]
fn the_c_api_behaves_as_documented() {
    let broker = TestBroker::new();
    let program = compile(&broker, "api.c", true, Link::Static);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn microsofts_named_shared_memory_example_builds_and_runs() {
    let broker = TestBroker::new();
    let first = compile(&broker, "ms_first.c", false, Link::Shared);
    let second = compile(&broker, "ms_second.c", false, Link::Shared);
    let mut writer = run(&broker, &first)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    TestBroker::eventually("the first process created the mapping", || {
        broker
            .objmgr(&["stat", "Global\\MyFileMappingObject"])
            .status
            .success()
    });
    let reader = run(&broker, &second).output().unwrap();
    assert!(reader.status.success());
    // MessageBox writes "caption: text" to stderr.
    assert_eq!(
        String::from_utf8_lossy(&reader.stderr).trim(),
        "Process2: Message from first process."
    );
    // The first process waits for a key (_getch), then cleans up.
    writer.stdin.take().unwrap().write_all(b"x").unwrap();
    assert!(writer.wait().unwrap().success());
    assert!(
        !broker
            .objmgr(&["stat", "Global\\MyFileMappingObject"])
            .status
            .success()
    );
}

#[test]
fn files_memory_threads_and_processes_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "files_processes.c", true, Link::Shared);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn rust_and_c_processes_share_a_mapping_and_an_event() {
    let broker = TestBroker::new();
    let program = compile(&broker, "interop.c", true, Link::Shared);
    let mut rust_side = broker.spawn(&[
        "create Local\\\\rust-and-c 4096",
        "map all",
        "write 0 from-rust",
        "event Local\\\\rust-and-c-ready auto 0",
        "hold",
        "wait 0 20000",
        "read 100 6",
    ]);
    rust_side.wait_for("holding");
    let out = run(&broker, &program).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rust_side.release();
    let lines = rust_side.finish();
    assert_eq!(lines[lines.len() - 2..], ["wait object 0", "read from-c"]);
}

#[test]
fn wide_and_ex_variants_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "wide.c", true, Link::Static);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Wide: wide text"), "MessageBoxW: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn security_descriptors_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "security.c", true, Link::Shared);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn job_objects_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "jobs.c", true, Link::Shared);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn files_shared_between_processes_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "files_shared.c", true, Link::Shared);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn pipes_standard_handles_and_file_facts_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "pipes.c", true, Link::Shared);
    let out = run(&broker, &program).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}
