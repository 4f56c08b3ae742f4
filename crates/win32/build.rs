//! The shared library's SONAME: `libobjmgr_win32.so.0` (the ABI version; the
//! install step adds the usual symlinks).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libobjmgr_win32.so.0");
}
