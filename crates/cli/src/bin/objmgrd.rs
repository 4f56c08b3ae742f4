//! The objmgr broker. See `objmgrd --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    objmgr_server::main()
}
