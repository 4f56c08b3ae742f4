//! The process's environment and command line: `Get/SetEnvironmentVariable`,
//! `ExpandEnvironmentStrings`, `GetCommandLine`, and the `main` that runs a
//! `wmain` (`_tmain` in `UNICODE` builds; see `tchar.h`).
//!
//! The environment is the C library's (`getenv`/`setenv`), so Linux code in
//! the same process sees the same variables. Windows programs may set
//! variables while other threads read them; glibc's `setenv` is not safe
//! against a concurrent `getenv`, a risk these programs take as C programs do.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::sync::OnceLock;

use objmgr_proto::error::*;

use crate::api_sync::exports;
use crate::ffi::{self, ansi_exact, wide_exact};
use crate::last_error::{SetLastError, fail, guard};
use crate::types::*;

/// Text in the units of an A (`u8`, UTF-8) or W (`u16`) function.
pub(crate) trait Units: Copy + From<u8> + 'static {
    /// Whether these are UTF-16 units (the W functions).
    const WIDE: bool;
    fn encode(text: &str) -> Vec<Self>;
}
impl Units for u8 {
    const WIDE: bool = false;
    fn encode(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }
}
impl Units for u16 {
    const WIDE: bool = true;
    fn encode(text: &str) -> Vec<u16> {
        text.encode_utf16().collect()
    }
}

/// Stores `text` as Win32's "get a string" functions do: the length without
/// NUL when it fits in `size` units, else the size needed (NUL included)
/// and the buffer untouched.
///
/// # Safety
/// `buf` is NULL or writable for `size` units.
pub(crate) unsafe fn put_or_need<T: Units>(buf: *mut T, size: DWORD, text: &str) -> DWORD {
    let units = T::encode(text);
    SetLastError(0);
    // SAFETY: per the contract.
    match unsafe { ffi::put_string(buf, size as usize, &units) } {
        Some(n) => n as DWORD,
        None => (units.len() + 1) as DWORD,
    }
}

fn variable(name: &str) -> Option<String> {
    if name.is_empty() || name.contains('=') {
        return None;
    }
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

unsafe fn get_variable<T: Units>(
    name: Result<Option<String>, ()>,
    buf: *mut T,
    size: DWORD,
) -> DWORD {
    let Ok(Some(name)) = name else {
        return fail(ERROR_ENVVAR_NOT_FOUND, 0);
    };
    match variable(&name) {
        // SAFETY: `buf` holds `size` units per the Win32 contract.
        Some(value) => unsafe { put_or_need(buf, size, &value) },
        None => fail(ERROR_ENVVAR_NOT_FOUND, 0),
    }
}

fn set_variable(name: Result<Option<String>, ()>, value: Result<Option<String>, ()>) -> BOOL {
    let (Ok(Some(name)), Ok(value)) = (name, value) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    match value {
        // SAFETY: see the module's note on setenv and threads.
        Some(value) if !value.contains('\0') => unsafe { std::env::set_var(&name, value) },
        Some(_) => return fail(ERROR_INVALID_PARAMETER, FALSE),
        None => {
            if std::env::var_os(&name).is_none() {
                return fail(ERROR_ENVVAR_NOT_FOUND, FALSE);
            }
            // SAFETY: as above.
            unsafe { std::env::remove_var(&name) }
        }
    }
    TRUE
}

/// `%NAME%` replaced by the variable's value where it is set; left as
/// written where it is not, as Windows does.
fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => match variable(&after[..end]) {
                Some(value) => {
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push('%');
                    out.push_str(&after[..end]);
                    rest = &after[end..];
                }
            },
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `ExpandEnvironmentStrings`: the size in units, NUL included, whether it
/// fit or not.
unsafe fn expand_into<T: Units>(
    src: Result<Option<String>, ()>,
    buf: *mut T,
    size: DWORD,
) -> DWORD {
    let Ok(Some(src)) = src else {
        return fail(ERROR_INVALID_PARAMETER, 0);
    };
    let expanded = expand(&src);
    // SAFETY: `buf` holds `size` units per the Win32 contract.
    let stored = unsafe { put_or_need(buf, size, &expanded) };
    let needed = T::encode(&expanded).len() as DWORD + 1;
    if stored + 1 == needed {
        needed
    } else {
        fail(ERROR_INSUFFICIENT_BUFFER, needed)
    }
}

/// One argument quoted as Windows' command-line parser reads it back.
fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// The command line as one Windows string (arguments quoted as needed).
fn command_line() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    LINE.get_or_init(|| {
        let args: Vec<String> = match std::fs::read("/proc/self/cmdline") {
            // NUL-terminated arguments: the piece after the last NUL is
            // no argument, but empty ones before it are.
            Ok(raw) => raw
                .strip_suffix(&[0])
                .unwrap_or(&raw)
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            Err(_) => std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        };
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    })
}

fn command_line_ansi() -> *const c_char {
    static LINE: OnceLock<CString> = OnceLock::new();
    LINE.get_or_init(|| CString::new(command_line()).unwrap_or_default())
        .as_ptr()
}

fn command_line_wide() -> *const WCHAR {
    static LINE: OnceLock<Vec<u16>> = OnceLock::new();
    LINE.get_or_init(|| command_line().encode_utf16().chain([0]).collect())
        .as_ptr()
}

type WideMain = unsafe extern "C" fn(c_int, *mut *mut WCHAR) -> c_int;
type PlainMain = unsafe extern "C" fn() -> c_int;

/// The `main` of a `UNICODE` program: its arguments as UTF-16 (kept for
/// the life of the process, as `argv` is), then its `wmain`.
///
/// # Safety
/// `argv` holds `argc` NUL-terminated strings, as `main` receives them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn objmgr_run_wmain(
    argc: c_int,
    argv: *const *const c_char,
    with_args: Option<WideMain>,
    without_args: Option<PlainMain>,
) -> c_int {
    let mut args: Vec<*mut WCHAR> = (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: `argv[i]` is one of the `argc` strings per the contract.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            let units: Vec<u16> = String::from_utf8_lossy(arg.to_bytes())
                .encode_utf16()
                .chain([0])
                .collect();
            Box::leak(units.into_boxed_slice()).as_mut_ptr()
        })
        .collect();
    args.push(std::ptr::null_mut());
    let wide_argv = Box::leak(args.into_boxed_slice()).as_mut_ptr();
    match (with_args, without_args) {
        // SAFETY: the program's own wmain, called as Windows calls it.
        (Some(main), _) => unsafe { main(argc, wide_argv) },
        // SAFETY: as above, for a wmain that takes no arguments.
        (None, Some(main)) => unsafe { main() },
        (None, None) => {
            eprintln!("objmgr: this UNICODE program defines no wmain/_tmain");
            127
        }
    }
}

exports! {
    fn GetEnvironmentVariableA(name: *const c_char, buf: *mut c_char, size: DWORD) -> DWORD = 0
        => get_variable(ansi_exact(name), buf.cast::<u8>(), size);
    fn GetEnvironmentVariableW(name: *const WCHAR, buf: *mut WCHAR, size: DWORD) -> DWORD = 0
        => get_variable(wide_exact(name), buf, size);
    fn SetEnvironmentVariableA(name: *const c_char, value: *const c_char) -> BOOL = FALSE
        => set_variable(ansi_exact(name), ansi_exact(value));
    fn SetEnvironmentVariableW(name: *const WCHAR, value: *const WCHAR) -> BOOL = FALSE
        => set_variable(wide_exact(name), wide_exact(value));
    fn ExpandEnvironmentStringsA(src: *const c_char, buf: *mut c_char, size: DWORD) -> DWORD = 0
        => expand_into(ansi_exact(src), buf.cast::<u8>(), size);
    fn ExpandEnvironmentStringsW(src: *const WCHAR, buf: *mut WCHAR, size: DWORD) -> DWORD = 0
        => expand_into(wide_exact(src), buf, size);
    fn GetCommandLineA() -> *const c_char = std::ptr::null() => command_line_ansi();
    fn GetCommandLineW() -> *const WCHAR = std::ptr::null() => command_line_wide();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_as_windows_parses_them() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote(r"dir\ x\"), r#""dir\ x\\""#);
    }

    #[test]
    fn unset_variables_stay_as_written() {
        assert_eq!(expand("%OBJMGR_SURELY_UNSET%/x"), "%OBJMGR_SURELY_UNSET%/x");
        assert_eq!(expand("100% sure"), "100% sure");
        assert_eq!(expand("%%"), "%%");
    }
}
