//! Text: `FormatMessage` (objmgr's system messages, message strings with
//! inserts) and the `lstr*` string functions.
//!
//! `FormatMessage` takes its inserts from an array (`ARGUMENT_ARRAY`); the
//! `va_list` form is turned into one by `windows.h` before the call, since
//! a `va_list` cannot cross into Rust. An insert is `%1`..`%99` with an
//! optional printf format between `!` (`%1!d!`; `!s!` when none is given),
//! and each takes one pointer-sized argument, as on Windows.
//!
//! `lstrcmp`/`lstrcmpi` compare by code point (`lstrcmpi` folding ASCII
//! case): Windows sorts by the user's locale, which agrees on equality but
//! may order punctuation differently.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void};

use objmgr_proto::error::*;

use crate::api_env::Units;
use crate::api_heap;
use crate::api_sync::exports;
use crate::ffi;
use crate::last_error::{SetLastError, fail, guard};
use crate::types::*;

const FORMAT_MESSAGE_ALLOCATE_BUFFER: DWORD = 0x100;
const FORMAT_MESSAGE_IGNORE_INSERTS: DWORD = 0x200;
const FORMAT_MESSAGE_FROM_STRING: DWORD = 0x400;
const FORMAT_MESSAGE_FROM_HMODULE: DWORD = 0x800;
const FORMAT_MESSAGE_FROM_SYSTEM: DWORD = 0x1000;
const FORMAT_MESSAGE_ARGUMENT_ARRAY: DWORD = 0x2000;
const FORMAT_MESSAGE_MAX_WIDTH_MASK: DWORD = 0xFF;

/// A string of the function's kind (A or W) at `p`.
trait Text: Units {
    /// # Safety
    /// `p` is NULL or a NUL-terminated string of these units.
    unsafe fn read(p: *const c_void) -> Option<String>;
}
impl Text for u8 {
    unsafe fn read(p: *const c_void) -> Option<String> {
        // SAFETY: per the contract.
        unsafe { ffi::ansi(p.cast()) }
    }
}
impl Text for u16 {
    unsafe fn read(p: *const c_void) -> Option<String> {
        // SAFETY: per the contract.
        unsafe { ffi::wide(p.cast()) }
    }
}

/// One insert's value, formatted with its printf-style `spec` (flags,
/// width, precision, size and conversion, e.g. `-8.3s`, `08x`, `I64d`).
///
/// # Safety
/// For string conversions `arg` is NULL or points to such a string.
unsafe fn format_insert<T: Text>(spec: &str, arg: usize) -> Option<String> {
    let conv = spec.chars().last()?;
    let body = &spec[..spec.len() - conv.len_utf8()];
    let left = body.contains('-');
    let zero = body.starts_with('0') || body.contains("-0") || body.contains("+0");
    let plus = body.contains('+');
    let digits: String = body
        .trim_start_matches(['-', '+', ' ', '#', '0'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    // Bounded as the C runtime bounds them: a width is never an allocation.
    const MAX_WIDTH: usize = 1 << 20;
    let (width, precision) = match digits.split_once('.') {
        Some((w, p)) => (w.parse().unwrap_or(0), p.parse().ok()),
        None => (digits.parse().unwrap_or(0), None),
    };
    let width: usize = usize::min(width, MAX_WIDTH);
    let precision: Option<usize> = precision.map(|p: usize| p.min(MAX_WIDTH));
    let wide_size = body.contains("I64") || body.contains("ll");
    let narrow = body.contains('h');
    let long = body.contains('l') || body.contains('w');
    // An insert is one pointer-sized argument; 32 bits of it unless I64/ll.
    let unsigned = if wide_size {
        arg as u64
    } else {
        u64::from(arg as u32)
    };
    let value = match conv {
        'd' | 'i' => {
            let v = if wide_size {
                arg as i64
            } else {
                arg as u32 as i32 as i64
            };
            if plus && v >= 0 {
                format!("+{v}")
            } else {
                v.to_string()
            }
        }
        'u' => unsigned.to_string(),
        'x' => format!("{unsigned:x}"),
        'X' => format!("{unsigned:X}"),
        'o' => format!("{unsigned:o}"),
        'p' => format!("{arg:016X}"),
        'c' | 'C' => {
            // %c: the function's own kind; %C, %hc and %lc choose.
            let wide = !narrow && (long || (conv == 'c') == T::WIDE);
            let code = if wide {
                u32::from(arg as u16)
            } else {
                u32::from(arg as u8)
            };
            char::from_u32(code).unwrap_or('\u{FFFD}').to_string()
        }
        's' | 'S' => {
            // %s: the function's own kind; %S, %hs and %ls choose.
            let wide = !narrow && (long || (conv == 's') == T::WIDE);
            let p = arg as *const c_void;
            // SAFETY: a string argument per the contract.
            let text = unsafe { if wide { u16::read(p) } else { u8::read(p) } }
                .unwrap_or_else(|| "(null)".to_owned());
            match precision {
                Some(n) => text.chars().take(n).collect(),
                None => text,
            }
        }
        _ => return None,
    };
    let len = value.chars().count();
    if len >= width {
        return Some(value);
    }
    let pad = width - len;
    Some(if left {
        value + &" ".repeat(pad)
    } else if zero && !matches!(conv, 's' | 'S' | 'c' | 'C') {
        let (sign, digits) = value.split_at(usize::from(value.starts_with(['-', '+'])));
        format!("{sign}{}{digits}", "0".repeat(pad))
    } else {
        " ".repeat(pad) + &value
    })
}

/// Expands a message template: inserts from `args` (or left as written
/// with `IGNORE_INSERTS`), escapes, and line handling by `width`.
///
/// # Safety
/// `args` is NULL or holds as many pointer-sized values as the template's
/// highest insert number; string inserts point to strings.
unsafe fn expand<T: Text>(
    template: &str,
    args: *const usize,
    ignore_inserts: bool,
    width: DWORD,
) -> Result<String, Win32Error> {
    let mut out = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\r' | '\n' if width == FORMAT_MESSAGE_MAX_WIDTH_MASK => {
                if c == '\r' && chars.peek().map(|&(_, n)| n) == Some('\n') {
                    chars.next();
                }
                out.push(' ');
            }
            '%' => match chars.next() {
                None => out.push('%'),
                Some((_, '0')) => return Ok(out),
                Some((_, 'n')) => out.push_str("\r\n"),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, d)) if d.is_ascii_digit() => {
                    let mut number = d.to_digit(10).unwrap_or(0) as usize;
                    if let Some(&(_, d2)) = chars.peek()
                        && d2.is_ascii_digit()
                    {
                        number = number * 10 + d2.to_digit(10).unwrap_or(0) as usize;
                        chars.next();
                    }
                    let mut spec = String::from("s");
                    let mut raw_end = at + 1 + if number >= 10 { 2 } else { 1 };
                    if chars.peek().map(|&(_, n)| n) == Some('!') {
                        let start = chars.next().map_or(0, |(i, _)| i + 1);
                        let Some(end) = template[start..].find('!') else {
                            return Err(ERROR_INVALID_PARAMETER);
                        };
                        spec = template[start..start + end].to_owned();
                        while chars.peek().is_some_and(|&(i, _)| i <= start + end) {
                            chars.next();
                        }
                        raw_end = start + end + 1;
                    }
                    if ignore_inserts {
                        out.push_str(&template[at..raw_end]);
                        continue;
                    }
                    if args.is_null() || number == 0 {
                        return Err(ERROR_INVALID_PARAMETER);
                    }
                    // SAFETY: the caller passed at least `number` arguments.
                    let arg = unsafe { args.add(number - 1).read() };
                    // SAFETY: as above, for string arguments.
                    match unsafe { format_insert::<T>(&spec, arg) } {
                        Some(value) => out.push_str(&value),
                        None => return Err(ERROR_INVALID_PARAMETER),
                    }
                }
                Some((_, other)) => out.push(other), // %%, %., %!, "% "
            },
            _ => out.push(c),
        }
    }
    if width != 0 && width != FORMAT_MESSAGE_MAX_WIDTH_MASK {
        out = wrap(&out, width as usize);
    }
    Ok(out)
}

/// Breaks lines longer than `width` at their last space before it.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut length = 0;
        for (j, word) in line.split(' ').enumerate() {
            let n = word.chars().count();
            if j > 0 {
                if length + 1 + n > width && length > 0 {
                    out.push_str("\r\n");
                    length = 0;
                } else {
                    out.push(' ');
                    length += 1;
                }
            }
            out.push_str(word);
            length += n;
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
unsafe fn format_message<T: Text>(
    flags: DWORD,
    source: *const c_void,
    id: DWORD,
    language: DWORD,
    buf: *mut T,
    size: DWORD,
    args: *const usize,
) -> DWORD {
    let _ = language; // objmgr's messages are in English only.
    let template = if flags & FORMAT_MESSAGE_FROM_STRING != 0 {
        // SAFETY: the message string per the Win32 contract.
        match unsafe { T::read(source) } {
            Some(text) => text,
            None => return fail(ERROR_INVALID_PARAMETER, 0),
        }
    } else if flags & FORMAT_MESSAGE_FROM_SYSTEM != 0 {
        let code = Win32Error(id);
        if code.name().is_none() {
            return fail(ERROR_MR_MID_NOT_FOUND, 0);
        }
        format!("{}\r\n", code.message())
    } else if flags & FORMAT_MESSAGE_FROM_HMODULE != 0 {
        // Linux modules carry no message tables.
        return fail(ERROR_RESOURCE_TYPE_NOT_FOUND, 0);
    } else {
        return fail(ERROR_INVALID_PARAMETER, 0);
    };
    let ignore = flags & FORMAT_MESSAGE_IGNORE_INSERTS != 0;
    let args = if flags & FORMAT_MESSAGE_ARGUMENT_ARRAY != 0 {
        args
    } else {
        std::ptr::null()
    };
    // SAFETY: `args` holds the inserts per the Win32 contract.
    let text = match unsafe {
        expand::<T>(
            &template,
            args,
            ignore,
            flags & FORMAT_MESSAGE_MAX_WIDTH_MASK,
        )
    } {
        Ok(text) => text,
        Err(e) => return fail(e, 0),
    };
    let units = T::encode(&text);
    if flags & FORMAT_MESSAGE_ALLOCATE_BUFFER != 0 {
        let out = buf.cast::<*mut T>();
        if out.is_null() {
            return fail(ERROR_INVALID_PARAMETER, 0);
        }
        let count = (units.len() + 1).max(size as usize);
        let p = api_heap::alloc(count * std::mem::size_of::<T>(), true).cast::<T>();
        if p.is_null() {
            return 0;
        }
        // SAFETY: `p` holds `count > units.len()` units; `out` is writable.
        unsafe {
            ffi::put_string(p, count, &units);
            out.write(p);
        }
        SetLastError(0);
        return units.len() as DWORD;
    }
    // SAFETY: `buf` holds `size` units per the Win32 contract.
    match unsafe { ffi::put_string(buf, size as usize, &units) } {
        Some(n) => {
            SetLastError(0);
            n as DWORD
        }
        None => fail(ERROR_INSUFFICIENT_BUFFER, 0),
    }
}

/// The length of a NUL-terminated string of `T` (0 for NULL).
///
/// # Safety
/// `s` is NULL or NUL-terminated.
unsafe fn length<T: Copy + Default + PartialEq>(s: *const T) -> usize {
    if s.is_null() {
        return 0;
    }
    let mut n = 0;
    // SAFETY: reading up to the NUL, per the contract.
    while unsafe { *s.add(n) } != T::default() {
        n += 1;
    }
    n
}

/// The length of `s`, looking at no more than `max` units.
///
/// # Safety
/// `s` is readable up to its NUL or `max` units, whichever comes first.
unsafe fn length_up_to<T: Copy + Default + PartialEq>(s: *const T, max: usize) -> usize {
    let mut n = 0;
    // SAFETY: per the contract.
    while n < max && unsafe { *s.add(n) } != T::default() {
        n += 1;
    }
    n
}

/// Copies at most `max` units of `src` and a NUL to `dst`; returns `dst`.
///
/// # Safety
/// `src` is NUL-terminated; `dst` has room for the copy and its NUL.
unsafe fn copy<T: Copy + Default + PartialEq>(dst: *mut T, src: *const T, max: usize) -> *mut T {
    if dst.is_null() || src.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: per the contract; never read past `max` units.
    let n = unsafe { length_up_to(src, max) };
    // SAFETY: per the contract; `ptr::copy` allows overlap.
    unsafe {
        std::ptr::copy(src, dst, n);
        dst.add(n).write(T::default());
    }
    dst
}

/// Compares two NUL-terminated strings by unit (ASCII case folded when
/// `fold`): -1, 0 or 1. NULL sorts before every string.
///
/// # Safety
/// Both are NULL or NUL-terminated.
unsafe fn compare<T: Copy + Default + PartialEq + Into<u32>>(
    a: *const T,
    b: *const T,
    fold: bool,
) -> i32 {
    let key = |c: u32| {
        if fold && (u32::from(b'A')..=u32::from(b'Z')).contains(&c) {
            c + 32
        } else {
            c
        }
    };
    match (a.is_null(), b.is_null()) {
        (true, true) => return 0,
        (true, false) => return -1,
        (false, true) => return 1,
        _ => {}
    }
    let mut i = 0;
    loop {
        // SAFETY: both are read up to their NUL, per the contract.
        let (x, y) = unsafe { (key((*a.add(i)).into()), key((*b.add(i)).into())) };
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        if x == 0 {
            return 0;
        }
        i += 1;
    }
}

exports! {
    fn FormatMessageA(flags: DWORD, source: *const c_void, id: DWORD, language: DWORD, buf: *mut c_char, size: DWORD, args: *const usize) -> DWORD = 0
        => format_message::<u8>(flags, source, id, language, buf.cast(), size, args);
    fn FormatMessageW(flags: DWORD, source: *const c_void, id: DWORD, language: DWORD, buf: *mut WCHAR, size: DWORD, args: *const usize) -> DWORD = 0
        => format_message::<u16>(flags, source, id, language, buf, size, args);

    fn lstrlenA(s: *const c_char) -> i32 = 0 => length(s.cast::<u8>()) as i32;
    fn lstrlenW(s: *const WCHAR) -> i32 = 0 => length(s) as i32;
    fn lstrcpyA(dst: *mut c_char, src: *const c_char) -> *mut c_char = std::ptr::null_mut()
        => copy(dst.cast::<u8>(), src.cast(), usize::MAX).cast();
    fn lstrcpyW(dst: *mut WCHAR, src: *const WCHAR) -> *mut WCHAR = std::ptr::null_mut() => copy(dst, src, usize::MAX);
    fn lstrcpynA(dst: *mut c_char, src: *const c_char, n: i32) -> *mut c_char = std::ptr::null_mut()
        => if n <= 0 { dst } else { copy(dst.cast::<u8>(), src.cast(), n as usize - 1).cast() };
    fn lstrcpynW(dst: *mut WCHAR, src: *const WCHAR, n: i32) -> *mut WCHAR = std::ptr::null_mut()
        => if n <= 0 { dst } else { copy(dst, src, n as usize - 1) };
    fn lstrcatA(dst: *mut c_char, src: *const c_char) -> *mut c_char = std::ptr::null_mut()
        => if dst.is_null() { dst } else { copy(dst.cast::<u8>().add(length(dst.cast::<u8>())), src.cast(), usize::MAX); dst };
    fn lstrcatW(dst: *mut WCHAR, src: *const WCHAR) -> *mut WCHAR = std::ptr::null_mut()
        => if dst.is_null() { dst } else { copy(dst.add(length(dst)), src, usize::MAX); dst };
    fn lstrcmpA(a: *const c_char, b: *const c_char) -> i32 = 0 => compare(a.cast::<u8>(), b.cast(), false);
    fn lstrcmpW(a: *const WCHAR, b: *const WCHAR) -> i32 = 0 => compare(a, b, false);
    fn lstrcmpiA(a: *const c_char, b: *const c_char) -> i32 = 0 => compare(a.cast::<u8>(), b.cast(), true);
    fn lstrcmpiW(a: *const WCHAR, b: *const WCHAR) -> i32 = 0 => compare(a, b, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_a(template: &str, args: &[usize]) -> Result<String, Win32Error> {
        // SAFETY: `args` covers the inserts the templates below use.
        unsafe { expand::<u8>(template, args.as_ptr(), false, 0) }
    }

    #[test]
    fn inserts_escapes_and_formats() {
        let name = c"objmgr";
        assert_eq!(
            expand_a("%1 has %2!d! items%%%n", &[name.as_ptr() as usize, 42]).unwrap(),
            "objmgr has 42 items%\r\n"
        );
        assert_eq!(
            expand_a("[%1!5d!][%1!-5d!][%1!05d!][%2!x!]", &[7, 255]).unwrap(),
            "[    7][7    ][00007][ff]"
        );
        assert_eq!(
            expand_a("%1!d! %0 and more", &[(-3i32) as u32 as usize]).unwrap(),
            "-3 "
        );
        assert_eq!(
            expand_a("%1!.3s!", &[name.as_ptr() as usize]).unwrap(),
            "obj"
        );
        // SAFETY: no inserts are read with IGNORE_INSERTS.
        let kept = unsafe { expand::<u8>("%1 and %2!d!", std::ptr::null(), true, 0) };
        assert_eq!(kept.unwrap(), "%1 and %2!d!");
        // SAFETY: a missing argument array is refused before any read.
        let missing = unsafe { expand::<u8>("%1", std::ptr::null(), false, 0) };
        assert_eq!(missing, Err(ERROR_INVALID_PARAMETER));
    }

    #[test]
    fn long_lines_wrap_at_spaces() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\r\nccc");
    }
}
