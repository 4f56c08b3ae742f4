//! Who this process is, in Windows' terms: `OpenProcessToken`,
//! `GetCurrentProcessToken`, `GetTokenInformation` (`TokenUser`,
//! `TokenGroups`, `TokenOwner`, `TokenPrimaryGroup`), and account names for
//! SIDs and back (`LookupAccountSid`, `LookupAccountName`) from the
//! machine's `/etc/passwd` and `/etc/group` (accounts only a directory
//! service knows are not found: `ERROR_NONE_MAPPED`).
//!
//! The token is built as the broker builds the one it checks access with:
//! the user (`S-1-22-1-<uid>`, root as SYSTEM), the primary and
//! supplementary groups (`S-1-22-2-<gid>`), Everyone, Authenticated Users,
//! Users, and Administrators for root. It is read from this process (real
//! uid and gid, `getgroups`), so it does not show Administrators for a
//! member of the broker's `--admin-group`, which the broker's own token for
//! the process does.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void};

use objmgr::security::{Sid, Token};
use objmgr_proto::error::*;

use crate::api_sync::exports;
use crate::ffi::{self, ansi_exact, wide_exact};
use crate::last_error::{fail, guard};
use crate::types::*;

/// `TOKEN_INFORMATION_CLASS` values answered.
const TOKEN_USER: DWORD = 1;
const TOKEN_GROUPS: DWORD = 2;
const TOKEN_OWNER: DWORD = 4;
const TOKEN_PRIMARY_GROUP: DWORD = 5;
/// `SE_GROUP_MANDATORY | SE_GROUP_ENABLED_BY_DEFAULT | SE_GROUP_ENABLED`.
const GROUP_ENABLED: DWORD = 0x7;
/// `SID_NAME_USE` values.
const SID_TYPE_USER: DWORD = 1;
const SID_TYPE_GROUP: DWORD = 2;
const SID_TYPE_ALIAS: DWORD = 4;
const SID_TYPE_WELL_KNOWN_GROUP: DWORD = 5;

/// This process's token.
fn current_token() -> Token {
    let groups: Vec<u32> = rustix::process::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Token::for_unix(
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
        &groups,
        None,
    )
}

fn is_this_process(process: HANDLE) -> bool {
    process == CURRENT_PROCESS
        || crate::table::object(process).is_ok_and(|entry| match &*entry {
            crate::table::Entry::Object(objmgr::handle::Object::Process(p)) => {
                p.pid() == std::process::id()
            }
            _ => false,
        })
}

unsafe fn open_process_token(process: HANDLE, out: *mut HANDLE) -> BOOL {
    if !is_this_process(process) {
        // Another process's token would need its credentials from the
        // broker; not offered.
        return fail(ERROR_NOT_SUPPORTED, FALSE);
    }
    // SAFETY: `out` is writable per the Win32 contract.
    if unsafe { ffi::put(out, CURRENT_PROCESS_TOKEN) } {
        TRUE
    } else {
        fail(ERROR_INVALID_PARAMETER, FALSE)
    }
}

/// One `GetTokenInformation` answer before it is placed: the SIDs, the
/// structure's size, where the pointer to each SID goes (offset, SID index)
/// and the DWORDs in it (offset, value).
struct Answer {
    sids: Vec<Sid>,
    head: usize,
    pointers: Vec<(usize, usize)>,
    words: Vec<(usize, u32)>,
}

/// A structure of pointers to SIDs followed by the SIDs, as
/// `GetTokenInformation` returns it: `head` is the structure's size, and
/// `pointer_at[i]` where the pointer to SID `i` goes in it.
fn layout(head: usize, sids: &[Sid]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = vec![0u8; head];
    let mut offsets = Vec::with_capacity(sids.len());
    for sid in sids {
        offsets.push(bytes.len());
        bytes.extend_from_slice(&sid.to_bytes());
    }
    (bytes, offsets)
}

unsafe fn token_information(
    token: HANDLE,
    class: DWORD,
    out: *mut c_void,
    size: DWORD,
    needed: *mut DWORD,
) -> BOOL {
    if token != CURRENT_PROCESS_TOKEN {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    }
    let token = current_token();
    let ptr = size_of::<*const c_void>();
    // Each answer: the structure (pointers and attributes), then the SIDs.
    // (pointer field offset, SID index) pairs say what points where.
    let one = |sid: Sid, head: usize| Answer {
        sids: vec![sid],
        head,
        pointers: vec![(0, 0)],
        words: vec![],
    };
    let answer = match class {
        TOKEN_USER => one(token.user.clone(), 2 * ptr),
        TOKEN_OWNER => one(token.user.clone(), ptr),
        TOKEN_PRIMARY_GROUP => one(token.primary_group.clone(), ptr),
        TOKEN_GROUPS => {
            let n = token.groups.len();
            // DWORD GroupCount (padded), then { PSID Sid; DWORD Attributes } each.
            let mut words = vec![(0, n as u32)];
            words.extend((0..n).map(|i| (ptr + i * 2 * ptr + ptr, GROUP_ENABLED)));
            Answer {
                sids: token.groups.clone(),
                head: ptr + n * 2 * ptr,
                pointers: (0..n).map(|i| (ptr + i * 2 * ptr, i)).collect(),
                words,
            }
        }
        _ => return fail(ERROR_INVALID_PARAMETER, FALSE),
    };
    let Answer {
        sids,
        head,
        pointers,
        words,
    } = answer;
    let (mut bytes, offsets) = layout(head, &sids);
    for (at, value) in words {
        bytes[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    }
    // SAFETY: `needed` is writable per the Win32 contract.
    unsafe { ffi::put(needed, bytes.len() as DWORD) };
    if (size as usize) < bytes.len() || out.is_null() {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    for (at, sid) in pointers {
        // The SID's address once the bytes are in `out`.
        let address = out as usize + offsets[sid];
        bytes[at..at + ptr].copy_from_slice(&address.to_ne_bytes());
    }
    // SAFETY: `out` has `size >= bytes.len()` writable bytes per Win32.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len()) };
    TRUE
}

/// The name of the user this process runs as (`GetUserName`): from
/// `/etc/passwd`, else the number.
pub(crate) fn current_user_name() -> String {
    let uid = rustix::process::geteuid().as_raw();
    accounts("/etc/passwd")
        .into_iter()
        .find(|&(_, id)| id == uid)
        .map_or_else(|| uid.to_string(), |(name, _)| name)
}

/// The entries of `/etc/passwd` or `/etc/group`: (name, id).
fn accounts(file: &str) -> Vec<(String, u32)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_owned();
            let id = fields.nth(1)?.parse().ok()?;
            Some((name, id))
        })
        .collect()
}

/// A SID's account: (name, domain, `SID_NAME_USE`).
fn account_of(sid: &Sid) -> Option<(String, String, DWORD)> {
    let well_known = [
        (Sid::everyone(), "Everyone", "", SID_TYPE_WELL_KNOWN_GROUP),
        (
            Sid::creator_owner(),
            "CREATOR OWNER",
            "",
            SID_TYPE_WELL_KNOWN_GROUP,
        ),
        (
            Sid::creator_group(),
            "CREATOR GROUP",
            "",
            SID_TYPE_WELL_KNOWN_GROUP,
        ),
        (
            Sid::owner_rights(),
            "OWNER RIGHTS",
            "",
            SID_TYPE_WELL_KNOWN_GROUP,
        ),
        (
            Sid::authenticated_users(),
            "Authenticated Users",
            "NT AUTHORITY",
            SID_TYPE_WELL_KNOWN_GROUP,
        ),
        (
            Sid::system(),
            "SYSTEM",
            "NT AUTHORITY",
            SID_TYPE_WELL_KNOWN_GROUP,
        ),
        (
            Sid::administrators(),
            "Administrators",
            "BUILTIN",
            SID_TYPE_ALIAS,
        ),
        (Sid::users(), "Users", "BUILTIN", SID_TYPE_ALIAS),
    ];
    if let Some((_, name, domain, kind)) = well_known.iter().find(|(s, ..)| s == sid) {
        return Some(((*name).to_owned(), (*domain).to_owned(), *kind));
    }
    if let Some(uid) = sid.unix_uid() {
        let (name, _) = accounts("/etc/passwd")
            .into_iter()
            .find(|(_, id)| *id == uid)?;
        return Some((name, "Unix User".to_owned(), SID_TYPE_USER));
    }
    let gid = sid.unix_gid()?;
    let (name, _) = accounts("/etc/group")
        .into_iter()
        .find(|(_, id)| *id == gid)?;
    Some((name, "Unix Group".to_owned(), SID_TYPE_GROUP))
}

/// The SID of an account name (`name`, or `DOMAIN\name`).
fn sid_of(full: &str) -> Option<(Sid, String, DWORD)> {
    let (domain, name) = full.rsplit_once('\\').unwrap_or(("", full));
    let matches = |candidate: &Sid| {
        account_of(candidate).filter(|(n, d, _)| {
            n.eq_ignore_ascii_case(name) && (domain.is_empty() || d.eq_ignore_ascii_case(domain))
        })
    };
    let well_known = [
        Sid::everyone(),
        Sid::creator_owner(),
        Sid::creator_group(),
        Sid::owner_rights(),
        Sid::authenticated_users(),
        Sid::system(),
        Sid::administrators(),
        Sid::users(),
    ];
    let users = accounts("/etc/passwd")
        .into_iter()
        .map(|(_, uid)| Sid::unix_user(uid));
    let groups = accounts("/etc/group")
        .into_iter()
        .map(|(_, gid)| Sid::unix_group(gid));
    well_known
        .into_iter()
        .chain(users)
        .chain(groups)
        .find_map(|sid| {
            let (_, d, kind) = matches(&sid)?;
            Some((sid, d, kind))
        })
}

/// Writes `text` into a buffer of `*count` units, or sets `*count` to what
/// is needed (with the NUL) and says the buffer is short.
///
/// # Safety
/// `buf` has `*count` writable units; `count` is readable and writable.
unsafe fn put_name<T: Copy + From<u8>>(text: &[T], buf: *mut T, count: *mut DWORD) -> bool {
    // SAFETY: per this function's contract.
    unsafe {
        let room = ffi::get(count).unwrap_or(0) as usize;
        match ffi::put_string(buf, room, text) {
            Some(written) => {
                ffi::put(count, written as DWORD);
                true
            }
            None => {
                ffi::put(count, (text.len() + 1) as DWORD);
                false
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn lookup_sid<T: Copy + From<u8>>(
    sid: *const c_void,
    units: impl Fn(&str) -> Vec<T>,
    name: *mut T,
    name_count: *mut DWORD,
    domain: *mut T,
    domain_count: *mut DWORD,
    kind: *mut DWORD,
) -> BOOL {
    // SAFETY: a SID per the Win32 contract.
    let Some(sid) = (unsafe { crate::api_security::sid_at(sid) }) else {
        return fail(ERROR_INVALID_SID, FALSE);
    };
    let Some((n, d, k)) = account_of(&sid) else {
        return fail(ERROR_NONE_MAPPED, FALSE);
    };
    let (n, d) = (units(&n), units(&d));
    // SAFETY: the buffers and counts per the Win32 contract. When either is
    // short, neither is written and both counts say what they need (with
    // the NUL), so one retry with both sizes succeeds.
    let fits = unsafe {
        let short = |text: &[T], count: *mut DWORD| {
            (ffi::get(count).unwrap_or(0) as usize) < text.len() + 1
        };
        if short(&n, name_count) || short(&d, domain_count) {
            ffi::put(name_count, (n.len() + 1) as DWORD);
            ffi::put(domain_count, (d.len() + 1) as DWORD);
            false
        } else {
            put_name(&n, name, name_count) && put_name(&d, domain, domain_count)
        }
    };
    if !fits {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    // SAFETY: `kind` is writable per the Win32 contract.
    unsafe { ffi::put(kind, k) };
    TRUE
}

#[allow(clippy::too_many_arguments)]
unsafe fn lookup_name<T: Copy + From<u8>>(
    account: Result<Option<String>, ()>,
    units: impl Fn(&str) -> Vec<T>,
    sid: *mut c_void,
    sid_size: *mut DWORD,
    domain: *mut T,
    domain_count: *mut DWORD,
    kind: *mut DWORD,
) -> BOOL {
    let Ok(Some(account)) = account else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let Some((found, d, k)) = sid_of(&account) else {
        return fail(ERROR_NONE_MAPPED, FALSE);
    };
    let bytes = found.to_bytes();
    // SAFETY: the buffers and sizes per the Win32 contract.
    let fits = unsafe {
        let room = ffi::get(sid_size).unwrap_or(0) as usize;
        ffi::put(sid_size, bytes.len() as DWORD);
        let sid_fits = room >= bytes.len() && !sid.is_null();
        if sid_fits {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), sid.cast::<u8>(), bytes.len());
        }
        let domain_fits = put_name(&units(&d), domain, domain_count);
        sid_fits && domain_fits
    };
    if !fits {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    // SAFETY: `kind` is writable per the Win32 contract.
    unsafe { ffi::put(kind, k) };
    TRUE
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn utf8(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

exports! {
    fn OpenProcessToken(process: HANDLE, access: DWORD, token: *mut HANDLE) -> BOOL = FALSE
        => { let _ = access; open_process_token(process, token) };
    fn GetCurrentProcessToken() -> HANDLE = CURRENT_PROCESS_TOKEN => CURRENT_PROCESS_TOKEN;
    fn GetTokenInformation(token: HANDLE, class: DWORD, out: *mut c_void, size: DWORD, needed: *mut DWORD) -> BOOL = FALSE
        => token_information(token, class, out, size, needed);
    fn LookupAccountSidA(system: *const c_char, sid: *const c_void, name: *mut c_char, name_count: *mut DWORD, domain: *mut c_char, domain_count: *mut DWORD, kind: *mut DWORD) -> BOOL = FALSE
        => { let _ = system; lookup_sid(sid, utf8, name.cast::<u8>(), name_count, domain.cast::<u8>(), domain_count, kind) };
    fn LookupAccountSidW(system: *const WCHAR, sid: *const c_void, name: *mut WCHAR, name_count: *mut DWORD, domain: *mut WCHAR, domain_count: *mut DWORD, kind: *mut DWORD) -> BOOL = FALSE
        => { let _ = system; lookup_sid(sid, utf16, name, name_count, domain, domain_count, kind) };
    fn LookupAccountNameA(system: *const c_char, account: *const c_char, sid: *mut c_void, sid_size: *mut DWORD, domain: *mut c_char, domain_count: *mut DWORD, kind: *mut DWORD) -> BOOL = FALSE
        => { let _ = system; lookup_name(ansi_exact(account), utf8, sid, sid_size, domain.cast::<u8>(), domain_count, kind) };
    fn LookupAccountNameW(system: *const WCHAR, account: *const WCHAR, sid: *mut c_void, sid_size: *mut DWORD, domain: *mut WCHAR, domain_count: *mut DWORD, kind: *mut DWORD) -> BOOL = FALSE
        => { let _ = system; lookup_name(wide_exact(account), utf16, sid, sid_size, domain, domain_count, kind) };
}
