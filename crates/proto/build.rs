//! Fixes the path of the broker program at build time, so that a client
//! never has to look for it in places that others may write to (beside the
//! running program, the current directory).
//!
//! `OBJMGR_BROKER_PATH` at build time names it (an install sets it to where
//! it puts `objmgrd`); otherwise it is the `objmgrd` that cargo builds into
//! this build's profile directory (`target/<profile>/objmgrd`), which is
//! where tests, examples and benches of this workspace find it.

fn main() {
    println!("cargo:rerun-if-env-changed=OBJMGR_BROKER_PATH");
    let path = match std::env::var("OBJMGR_BROKER_PATH") {
        Ok(path) if !path.is_empty() => path,
        _ => {
            // OUT_DIR is <profile dir>/build/<crate>-<hash>/out.
            let out =
                std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
            match out.ancestors().nth(3) {
                Some(profile_dir) => profile_dir.join("objmgrd").display().to_string(),
                None => String::new(),
            }
        }
    };
    println!("cargo:rustc-env=OBJMGR_BUILT_IN_BROKER={path}");
}
