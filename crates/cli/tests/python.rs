//! The Python package (`python/`), with real processes: its pytest tests run
//! against this build's library and a private broker.

mod common;

use common::TestBroker;
use std::path::Path;
use std::process::Command;

#[test]
fn the_python_package_shares_memory_and_synchronizes_between_processes() {
    let broker = TestBroker::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let library = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("libobjmgr_win32.so");
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(format!(
            "--basetemp={}",
            broker.dir.join("pytest").display()
        ))
        .arg(repo.join("python/tests"))
        .env("OBJMGR_WIN32_LIB", &library)
        .env("OBJMGR_SOCKET", &broker.socket)
        .env("OBJMGR_BROKER", env!("CARGO_BIN_EXE_objmgrd"))
        .env("OBJMGR_IDLE_TIMEOUT_MS", "60000")
        .env_remove("PYTHONPATH")
        .output()
        .expect("run python3 -m pytest (python3 with pytest and numpy: see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 passed"), "{stdout}");
}

#[test]
fn the_python_package_installs_with_pip() {
    let broker = TestBroker::new();
    let source = broker.dir.join("python-src");
    let target = broker.dir.join("site");
    // A copy: building leaves build/ and *.egg-info beside the sources.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&repo)
        .arg(&source)
        .status()
        .unwrap();
    assert!(copied.success());
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--target"])
        .arg(&target)
        .arg(&source)
        // pip's build directories go with the test's.
        .env("TMPDIR", &broker.dir)
        .output()
        .expect("run pip");
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    assert!(target.join("objmgr/__init__.py").exists());
    assert!(target.join("objmgr/py.typed").exists());
}
