//! Modules: `LoadLibrary`, `GetModuleHandle`, `GetProcAddress`,
//! `FreeLibrary` over the dynamic loader (`dlopen`/`dlsym`).
//!
//! A module name is tried as written, then, for `name.dll` or a bare
//! `name`, as `libname.so` and `name.so`. The names of the Windows system
//! libraries this crate stands in for (`kernel32.dll`, `advapi32.dll`, ...)
//! name this library itself, so the common "is this API there?" probe
//! `GetProcAddress(GetModuleHandle("kernel32.dll"), "...")` finds objmgr's
//! functions (in a statically linked program, only those the executable
//! exports, e.g. with `-rdynamic`). Ordinals are not supported.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{CString, c_char, c_void};

use objmgr_proto::error::*;

use crate::api_sync::exports;
use crate::ffi::{ansi_exact, wide_exact};
use crate::last_error::{fail, guard};
use crate::types::*;

/// The Windows libraries whose functions this library provides.
const SYSTEM_MODULES: &[&str] = &[
    "kernel32",
    "kernelbase",
    "advapi32",
    "user32",
    "ntdll",
    "msvcrt",
    "ucrtbase",
];

fn is_system_module(name: &str) -> bool {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let stem = base.strip_suffix(".dll").unwrap_or(&base);
    SYSTEM_MODULES.contains(&stem)
}

/// The file names tried for a module name, in order.
fn candidates(name: &str) -> Vec<String> {
    let mut names = vec![name.to_owned()];
    if name.contains('/') {
        return names;
    }
    let lower = name.to_ascii_lowercase();
    let stem = if lower.ends_with(".dll") {
        Some(&name[..name.len() - 4])
    } else if !name.contains('.') {
        Some(name)
    } else {
        None
    };
    if let Some(stem) = stem {
        names.push(format!("lib{stem}.so"));
        names.push(format!("{stem}.so"));
    }
    names
}

/// The loader's handle of this library (or of the program, when it is
/// linked in statically).
fn this_library(flags: i32) -> *mut c_void {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let here = this_library as *const c_void;
    // SAFETY: dladdr fills `info` for an address inside a loaded object.
    let found = unsafe { libc::dladdr(here, info.as_mut_ptr()) } != 0;
    // SAFETY: initialized by dladdr when `found` (zeroed otherwise).
    let info = unsafe { info.assume_init() };
    let path = if found {
        info.dli_fname
    } else {
        std::ptr::null()
    };
    // SAFETY: `path` is dladdr's NUL-terminated file name or NULL (the program).
    let handle = unsafe { libc::dlopen(path, flags) };
    if handle.is_null() {
        // SAFETY: NULL opens the program and its global scope.
        unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) }
    } else {
        handle
    }
}

fn open(name: Result<Option<String>, ()>, flags: i32) -> HANDLE {
    let name = match name {
        Ok(Some(name)) if !name.is_empty() => name,
        Ok(None) if flags & libc::RTLD_NOLOAD != 0 => {
            // SAFETY: NULL opens the program itself.
            return unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) };
        }
        _ => return fail(ERROR_INVALID_PARAMETER, std::ptr::null_mut()),
    };
    if is_system_module(&name) {
        return this_library(libc::RTLD_LAZY);
    }
    for candidate in candidates(&name) {
        let Ok(path) = CString::new(candidate) else {
            return fail(ERROR_INVALID_NAME, std::ptr::null_mut());
        };
        // SAFETY: a NUL-terminated path; dlopen reports failure with NULL.
        let handle = unsafe { libc::dlopen(path.as_ptr(), flags) };
        if !handle.is_null() {
            if flags & libc::RTLD_NOLOAD != 0 {
                // GetModuleHandle takes no reference (the module stays
                // loaded by whoever loaded it).
                // SAFETY: the reference dlopen just took.
                unsafe { libc::dlclose(handle) };
            }
            return handle;
        }
    }
    fail(ERROR_MOD_NOT_FOUND, std::ptr::null_mut())
}

unsafe fn proc_address(module: HANDLE, name: *const c_char) -> *mut c_void {
    if (name as usize) < 0x10000 {
        // NULL, or an ordinal (MAKEINTRESOURCE): Linux modules have none.
        return fail(ERROR_PROC_NOT_FOUND, std::ptr::null_mut());
    }
    let module = if module.is_null() {
        // SAFETY: NULL opens the program itself.
        unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) }
    } else {
        module
    };
    // SAFETY: `module` is a loader handle (from LoadLibrary/GetModuleHandle
    // per the Win32 contract) and `name` a NUL-terminated string.
    let symbol = unsafe { libc::dlsym(module, name) };
    if symbol.is_null() {
        return fail(ERROR_PROC_NOT_FOUND, std::ptr::null_mut());
    }
    symbol
}

unsafe fn free_library(module: HANDLE) -> BOOL {
    if module.is_null() {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    }
    // SAFETY: a loader handle per the Win32 contract.
    if unsafe { libc::dlclose(module) } != 0 {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    }
    TRUE
}

const LOAD: i32 = libc::RTLD_NOW | libc::RTLD_LOCAL;
const ALREADY_LOADED: i32 = libc::RTLD_LAZY | libc::RTLD_NOLOAD;
const NULL: HANDLE = std::ptr::null_mut();

exports! {
    fn LoadLibraryA(name: *const c_char) -> HANDLE = NULL => open(ansi_exact(name), LOAD);
    fn LoadLibraryW(name: *const WCHAR) -> HANDLE = NULL => open(wide_exact(name), LOAD);
    fn GetModuleHandleA(name: *const c_char) -> HANDLE = NULL => open(ansi_exact(name), ALREADY_LOADED);
    fn GetModuleHandleW(name: *const WCHAR) -> HANDLE = NULL => open(wide_exact(name), ALREADY_LOADED);
    fn GetProcAddress(module: HANDLE, name: *const c_char) -> *mut c_void = NULL => proc_address(module, name);
    fn FreeLibrary(module: HANDLE) -> BOOL = FALSE => free_library(module);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_map_to_linux_file_names() {
        assert_eq!(candidates("foo.dll"), ["foo.dll", "libfoo.so", "foo.so"]);
        assert_eq!(candidates("m"), ["m", "libm.so", "m.so"]);
        assert_eq!(candidates("libm.so.6"), ["libm.so.6"]);
        assert_eq!(candidates("/x/y.dll"), ["/x/y.dll"]);
        assert!(is_system_module("KERNEL32.DLL"));
        assert!(is_system_module("advapi32"));
        assert!(!is_system_module("kernel33.dll"));
    }
}
