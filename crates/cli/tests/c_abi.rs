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

/// A directory in the broker's holding the library under its link name and
/// its SONAME (`libobjmgr_win32.so.0`), as an install lays them out.
fn soname_dir(broker: &TestBroker) -> PathBuf {
    let dir = broker.dir.join("lib");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["libobjmgr_win32.so", "libobjmgr_win32.so.0"] {
            std::os::unix::fs::symlink(lib_dir().join("libobjmgr_win32.so"), dir.join(name))
                .unwrap();
        }
    }
    dir
}

/// How a test program links the library.
#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// The language a test program is compiled as.
#[derive(Clone, Copy, PartialEq)]
enum Language {
    C,
    Cxx,
}

/// The compiler command for `source` (in `crates/win32/tests/c`) with the
/// flags `pkg-config --cflags objmgr-win32` gives (WCHAR is a 2-byte
/// wchar_t), writing `out`.
fn compiler(source: &str, language: Language, out: &Path) -> Command {
    let mut cc = Command::new(if language == Language::Cxx {
        "c++"
    } else {
        "cc"
    });
    if language == Language::Cxx {
        cc.args(["-x", "c++"]);
    }
    cc.arg(win32_dir().join("tests/c").join(source))
        .args(["-x", "none", "-I"])
        .arg(win32_dir().join("include"))
        .arg("-fshort-wchar")
        .arg("-o")
        .arg(out);
    cc
}

/// Compiles `source` (in `crates/win32/tests/c`) into the broker's directory,
/// naming the library file itself so that no other copy can be picked up.
fn compile(broker: &TestBroker, source: &str, strict: bool, link: Link) -> PathBuf {
    compile_as(broker, source, strict, link, Language::C)
}

fn compile_as(
    broker: &TestBroker,
    source: &str,
    strict: bool,
    link: Link,
    language: Language,
) -> PathBuf {
    let suffix = if language == Language::Cxx {
        "-cxx"
    } else {
        ""
    };
    let out = broker
        .dir
        .join(format!("{}{suffix}", source.trim_end_matches(".c")));
    let mut cc = compiler(source, language, &out);
    match link {
        // Found at run time by its SONAME through an rpath, as an installed
        // library is.
        Link::Shared => cc
            .arg(format!("-L{}", soname_dir(broker).display()))
            .arg(format!("-Wl,-rpath,{}", soname_dir(broker).display()))
            .arg("-lobjmgr_win32"),
        Link::Static => cc
            .arg(lib_dir().join("libobjmgr_win32.a"))
            .args(["-ldl", "-lm"]),
    };
    cc.arg("-lpthread");
    if strict {
        if language == Language::C {
            cc.arg("-std=gnu11");
        }
        cc.args(["-Wall", "-Werror"]);
    } else {
        // Microsoft's sample as published: MSVC-isms (`#pragma comment`,
        // `%d` for a DWORD) draw warnings, not errors.
        cc.arg("-w");
    }
    let status = cc.status().expect("run cc");
    assert!(status.success(), "compiling {source} failed");
    out
}

/// Runs a program built from `check.h` checks (with `args`) and asserts
/// that every check passed; returns its stdout.
fn run_checks(broker: &TestBroker, program: &Path, args: &[&str]) -> String {
    let out = run(broker, program).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("all checks passed"), "{stdout}");
    stdout
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
    run_checks(&broker, &program, &[]);
}

#[test]
fn microsofts_named_shared_memory_example_builds_and_runs() {
    let broker = TestBroker::new();
    // As a user builds it: installed, then nothing but pkg-config's flags.
    let prefix = installed_prefix(&broker);
    let [first, second] = ["ms_first.c", "ms_second.c"].map(|source| {
        let out = broker.dir.join(source.trim_end_matches(".c"));
        // Microsoft's source as published: MSVC-isms draw warnings only.
        build_with_pkg_config(
            &prefix,
            &win32_dir().join("tests/c").join(source),
            &out,
            &["-w"],
        );
        out
    });
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

/// The broker is killed while a C program holds objects and a thread of
/// it waits: a new broker takes its handles back, another process finds
/// them by name and ends the wait.
#[test]
fn a_lost_broker_from_c() {
    use std::io::BufRead;
    let broker = TestBroker::new();
    let program = compile(&broker, "broker_loss.c", true, Link::Shared);
    let mut child = run(&broker, &program)
        .arg(broker.dir.join("c-lost.log"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "holding");
    let first = broker.kill_broker();
    // The C program's handles go to a new broker, where another process
    // finds them by name.
    broker.new_broker(first);
    let lines = broker.run(&[
        "open Local\\c-lost-memory write",
        "map write",
        "read 0 4",
        "write 0 back",
        "open_event Local\\c-lost",
        "set 0",
    ]);
    assert_eq!(lines[2], "read kept", "{lines:?}");
    assert_eq!(lines[5], "set", "{lines:?}");
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        out.status.success() && rest.contains("all checks passed"),
        "{rest}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn files_memory_threads_and_processes_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "files_processes.c", true, Link::Shared);
    run_checks(&broker, &program, &[]);
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
    run_checks(&broker, &program, &[]);
}

#[test]
fn job_objects_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "jobs.c", true, Link::Shared);
    run_checks(&broker, &program, &[]);
}

#[test]
fn files_shared_between_processes_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "files_shared.c", true, Link::Shared);
    run_checks(&broker, &program, &[]);
}

#[test]
fn pipes_standard_handles_and_file_facts_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "pipes.c", true, Link::Shared);
    run_checks(&broker, &program, &[]);
}

#[test]
fn windows_runtime_locks_environment_modules_and_messages_from_c_and_cxx() {
    let broker = TestBroker::new();
    for language in [Language::C, Language::Cxx] {
        let program = compile_as(&broker, "runtime.c", true, Link::Shared, language);
        let stdout = run_checks(&broker, &program, &["h\u{e9}llo"]);
        // wprintf writes UTF-8.
        assert!(
            stdout.contains("wide out: h\u{e9}llo w\u{f6}rld"),
            "{stdout}"
        );
    }
}

#[test]
fn corners_where_windows_is_specific_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "semantics.c", true, Link::Shared);
    run_checks(&broker, &program, &[]);
}

#[test]
fn wide_code_without_a_two_byte_wchar_t_does_not_compile() {
    let broker = TestBroker::new();
    let dir = &broker.dir;
    let build = |name: &str, code: &str| {
        let source = dir.join(name);
        std::fs::write(&source, code).unwrap();
        // Without -fshort-wchar: wchar_t is 4 bytes.
        Command::new("cc")
            .args(["-c", "-o"])
            .arg(dir.join("out.o"))
            .arg("-I")
            .arg(win32_dir().join("include"))
            .arg(&source)
            .output()
            .unwrap()
    };
    let narrow = build(
        "narrow.c",
        "#include <windows.h>\nint main(void) { return CreateMutexA(NULL, FALSE, \"x\") == NULL; }\n",
    );
    assert!(
        narrow.status.success(),
        "{}",
        String::from_utf8_lossy(&narrow.stderr)
    );
    let wide = build(
        "wide.c",
        "#include <windows.h>\nint main(void) { return CreateMutexW(NULL, FALSE, NULL) == NULL; }\n",
    );
    assert!(!wide.status.success());
    assert!(String::from_utf8_lossy(&wide.stderr).contains("-fshort-wchar"));
    let unicode = build(
        "unicode.c",
        "#define UNICODE\n#include <windows.h>\nint main(void) { return 0; }\n",
    );
    assert!(!unicode.status.success());
    assert!(String::from_utf8_lossy(&unicode.stderr).contains("-fshort-wchar"));
}

#[test]
fn suspended_threads_and_processes_and_apcs_from_c() {
    let broker = TestBroker::new();
    let program = compile(&broker, "threads.c", true, Link::Shared);
    run_checks(&broker, &program, &[]);
}

/// A prefix made by `install.sh` from this build's library, broker and CLI
/// (`OBJMGR_FROM`): what a user gets, so that a program builds with nothing
/// but `pkg-config --cflags --libs objmgr-win32` and runs without
/// `LD_LIBRARY_PATH`.
fn installed_prefix(broker: &TestBroker) -> PathBuf {
    let prefix = broker.dir.join("prefix");
    let built = broker.dir.join("built");
    std::fs::create_dir_all(&built).unwrap();
    for (from, name) in [
        (lib_dir().join("libobjmgr_win32.so"), "libobjmgr_win32.so"),
        (lib_dir().join("libobjmgr_win32.a"), "libobjmgr_win32.a"),
        (PathBuf::from(env!("CARGO_BIN_EXE_objmgrd")), "objmgrd"),
        (PathBuf::from(env!("CARGO_BIN_EXE_objmgr")), "objmgr"),
    ] {
        std::fs::copy(from, built.join(name)).unwrap();
    }
    let out = Command::new(win32_dir().join("install.sh"))
        .arg(&prefix)
        .env("OBJMGR_FROM", &built)
        .output()
        .expect("run install.sh");
    assert!(
        out.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prefix
}

/// `cc`/`c++` `source` with the flags pkg-config gives for `prefix`.
fn build_with_pkg_config(prefix: &Path, source: &Path, out: &Path, extra: &[&str]) {
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "objmgr-win32"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("run pkg-config");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let cpp = source.extension().is_some_and(|e| e == "cpp");
    let built = Command::new(if cpp { "c++" } else { "cc" })
        .arg(source)
        .args(flags.split_whitespace())
        .args(extra)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "building {}: {}",
        source.display(),
        String::from_utf8_lossy(&built.stderr)
    );
}

/// Builds a program of `crates/win32/tests/programs` against an installed
/// prefix with the flags pkg-config gives, and runs it.
fn build_and_run_program(source: &str) -> String {
    let broker = TestBroker::new();
    let prefix = installed_prefix(&broker);
    let out = broker.dir.join(source.replace('.', "-"));
    build_with_pkg_config(
        &prefix,
        &win32_dir().join("tests/programs").join(source),
        &out,
        &["-Wall", "-Werror"],
    );
    let ran = run(&broker, &out).output().unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
    assert!(
        ran.status.success(),
        "{source}: {stdout}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    stdout
}

#[test]
fn a_cxx_producer_and_consumer_share_a_ring_buffer() {
    let stdout = build_and_run_program("ring_buffer.cpp");
    assert!(stdout.contains("checksum 20100: OK"), "{stdout}");
}

#[test]
fn a_supervisor_runs_workers_in_a_job() {
    let stdout = build_and_run_program("job_workers.c");
    assert!(stdout.contains("total 3000 in 3 processes: OK"), "{stdout}");
}

#[test]
fn two_processes_share_a_journal_file_through_a_mapping() {
    let stdout = build_and_run_program("file_journal.c");
    assert!(stdout.contains("read: record 15: even\u{e9}"), "{stdout}");
    assert!(stdout.contains("reader exit code 0"), "{stdout}");
}

#[test]
fn the_installed_library_has_its_soname_symlinks_and_no_debug_info() {
    let broker = TestBroker::new();
    let prefix = installed_prefix(&broker);
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        std::fs::read_link(lib.join("libobjmgr_win32.so")).unwrap(),
        Path::new("libobjmgr_win32.so.0")
    );
    assert_eq!(
        std::fs::read_link(lib.join("libobjmgr_win32.so.0")).unwrap(),
        Path::new(&format!("libobjmgr_win32.so.{version}"))
    );
    let dynamic = Command::new("objdump")
        .arg("-p")
        .arg(lib.join(format!("libobjmgr_win32.so.{version}")))
        .output()
        .expect("run objdump");
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic
            .lines()
            .any(|l| l.split_whitespace().eq(["SONAME", "libobjmgr_win32.so.0"])),
        "{dynamic}"
    );
    let sections = Command::new("objdump")
        .arg("-h")
        .arg(lib.join("libobjmgr_win32.so.0"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&sections.stdout).contains(".debug_info"));
    let installed = std::fs::metadata(lib.join("libobjmgr_win32.so.0"))
        .unwrap()
        .len();
    let built = std::fs::metadata(lib_dir().join("libobjmgr_win32.so"))
        .unwrap()
        .len();
    assert!(
        installed < built,
        "stripped: {installed} bytes, built: {built}"
    );
}
