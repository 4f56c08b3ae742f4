//! Security: descriptors, ACLs and SIDs as Win32 code builds them by hand
//! (`InitializeSecurityDescriptor`, `SetSecurityDescriptorDacl`,
//! `InitializeAcl`, `AddAccessAllowedAce`, `AllocateAndInitializeSid`, ...),
//! SDDL conversions, `LocalAlloc`/`LocalFree` for what those return, and
//! `Get`/`SetKernelObjectSecurity`, `Get`/`SetSecurityInfo` on handles.
//! `SECURITY_ATTRIBUTES.lpSecurityDescriptor` is read with
//! [`descriptor_at`] by every `Create*`.
//!
//! Descriptors are read in both layouts: absolute (`SECURITY_DESCRIPTOR`,
//! with pointers) and self-relative (offsets; what the conversions return).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void};

use objmgr::security::binary::{
    self, ACL_HEADER_SIZE, ACL_REVISION, ACL_REVISION_DS, SE_DACL_DEFAULTED, SE_DACL_PRESENT,
    SE_GROUP_DEFAULTED, SE_OWNER_DEFAULTED, SE_SACL_PRESENT, SE_SELF_RELATIVE,
    SECURITY_DESCRIPTOR_REVISION,
};
use objmgr::security::{
    Ace, AceKind, Dacl, GROUP_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION, SecurityDescriptor,
    Sid,
};
use objmgr_proto::error::*;

use crate::api_heap;
use crate::api_sync::exports;
use crate::ffi::{self, ansi_exact, wide_exact};
use crate::last_error::{SetLastError, fail, guard};
use crate::table::{self, Entry};
use crate::types::*;

/// `SDDL_REVISION_1`.
const SDDL_REVISION_1: DWORD = 1;
/// `SE_KERNEL_OBJECT` of `SE_OBJECT_TYPE`.
const SE_KERNEL_OBJECT: DWORD = 6;
/// `ACL_INFORMATION_CLASS`.
const ACL_REVISION_INFORMATION: DWORD = 1;
const ACL_SIZE_INFORMATION: DWORD = 2;

/// The SID at `p`, if valid.
///
/// # Safety
/// `p` is NULL or points to readable memory holding a SID.
pub(crate) unsafe fn sid_at(p: *const c_void) -> Option<Sid> {
    // SAFETY: the first two bytes of a SID are readable per the contract.
    let head = unsafe { ffi::bytes(p.cast(), 2) }?;
    let len = binary::sid_length([head[0], head[1]])?;
    // SAFETY: a valid SID header says how long it is.
    Sid::from_bytes(unsafe { ffi::bytes(p.cast(), len) }?).map(|(sid, _)| sid)
}

/// The bytes of the ACL at `p` (its `AclSize`), if its header is valid.
///
/// # Safety
/// `p` is NULL or points to an ACL of `AclSize` readable bytes.
unsafe fn acl_bytes<'a>(p: *const c_void) -> Option<&'a [u8]> {
    // SAFETY: an ACL header is readable per the contract.
    let head = unsafe { ffi::bytes(p.cast(), 4) }?;
    let size = binary::acl_size(head)?;
    // SAFETY: `AclSize` bytes are the ACL's.
    unsafe { ffi::bytes(p.cast(), size) }
}

/// The ACEs of the ACL at `p`.
///
/// # Safety
/// As [`acl_bytes`].
unsafe fn acl_at(p: *const c_void) -> Option<Vec<Ace>> {
    // SAFETY: per this function's contract.
    binary::acl_from_bytes(unsafe { acl_bytes(p) }?)
}

/// The security descriptor at `p`, in either layout; `None` if invalid.
///
/// # Safety
/// `p` points to a security descriptor (absolute or self-relative) whose
/// parts are readable.
pub(crate) unsafe fn descriptor_at(p: *const c_void) -> Option<SecurityDescriptor> {
    // SAFETY: the 4-byte header is readable per the contract.
    let head = unsafe { ffi::bytes(p.cast(), 4) }?;
    let control = u16::from_le_bytes([head[2], head[3]]);
    if head[0] != SECURITY_DESCRIPTOR_REVISION {
        return None;
    }
    if control & SE_SELF_RELATIVE != 0 {
        // SAFETY: each part the header names is readable per the contract;
        // the read closure is only asked for those.
        let len = binary::self_relative_length(|at, len| unsafe {
            ffi::bytes(p.cast::<u8>().add(at), len)
        })?;
        // SAFETY: the descriptor spans `len` bytes.
        return binary::from_self_relative(unsafe { ffi::bytes(p.cast(), len) }?);
    }
    // SAFETY: an absolute descriptor is a SECURITY_DESCRIPTOR.
    let sd = unsafe { ffi::get(p.cast::<SECURITY_DESCRIPTOR>()) }?;
    // Its pointers are NULL or point to its parts, per the contract.
    let sid = |p: *mut c_void| -> Option<Option<Sid>> {
        if p.is_null() {
            return Some(None);
        }
        // SAFETY: a non-NULL part pointer points to a SID.
        Some(Some(unsafe { sid_at(p) }?))
    };
    let acl = |p: *mut c_void| -> Option<Option<Vec<Ace>>> {
        if p.is_null() {
            return Some(None);
        }
        // SAFETY: a non-NULL part pointer points to an ACL.
        Some(Some(unsafe { acl_at(p) }?))
    };
    let owner = sid(sd.Owner)?;
    let group = sid(sd.Group)?;
    let dacl = match (sd.Control & SE_DACL_PRESENT != 0, acl(sd.Dacl)?) {
        (false, _) => Dacl::NotPresent,
        (true, None) => Dacl::Null,
        (true, Some(aces)) => Dacl::Aces(aces),
    };
    let sacl = match (sd.Control & SE_SACL_PRESENT != 0, acl(sd.Sacl)?) {
        (false, _) => None,
        (true, aces) => Some(aces.unwrap_or_default()),
    };
    Some(SecurityDescriptor {
        owner,
        group,
        dacl,
        sacl,
    })
}

/// `lpSecurityDescriptor` of optional security attributes: `Ok(None)` when
/// there is none, `ERROR_INVALID_SECURITY_DESCR` when it is not valid.
///
/// # Safety
/// `attributes` is NULL or a valid `SECURITY_ATTRIBUTES`.
pub(crate) unsafe fn requested_security(
    attributes: *const SECURITY_ATTRIBUTES,
) -> Result<Option<SecurityDescriptor>, Win32Error> {
    // SAFETY: per this function's contract.
    let Some(attrs) = (unsafe { attributes.as_ref() }) else {
        return Ok(None);
    };
    if attrs.lpSecurityDescriptor.is_null() {
        return Ok(None);
    }
    // SAFETY: a non-NULL lpSecurityDescriptor points to a descriptor.
    unsafe { descriptor_at(attrs.lpSecurityDescriptor) }
        .map(Some)
        .ok_or(ERROR_INVALID_SECURITY_DESCR)
}

/// The absolute descriptor at `p` for changing, or an error: a
/// self-relative one cannot be changed in place.
///
/// # Safety
/// `p` is NULL or points to a `SECURITY_DESCRIPTOR`.
unsafe fn absolute_mut<'a>(p: *mut c_void) -> Result<&'a mut SECURITY_DESCRIPTOR, Win32Error> {
    // SAFETY: per this function's contract.
    let sd = unsafe { p.cast::<SECURITY_DESCRIPTOR>().as_mut() }.ok_or(ERROR_INVALID_PARAMETER)?;
    if sd.Revision != SECURITY_DESCRIPTOR_REVISION {
        return Err(ERROR_UNKNOWN_REVISION);
    }
    if sd.Control & SE_SELF_RELATIVE != 0 {
        return Err(ERROR_INVALID_SECURITY_DESCR);
    }
    Ok(sd)
}

/// Where a part of the descriptor at `p` is: its pointer (absolute) or
/// base + offset (self-relative); `None` for NULL.
///
/// # Safety
/// `p` points to a valid security descriptor.
unsafe fn part(p: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: the header is readable per the contract.
    let control = unsafe { ffi::get(p.cast::<u16>().add(1)) }.unwrap_or(0);
    if control & SE_SELF_RELATIVE != 0 {
        // SAFETY: a self-relative header holds four offsets after 4 bytes.
        let offset = unsafe { ffi::get(p.cast::<u8>().add(4 + 4 * n).cast::<u32>()) }.unwrap_or(0);
        if offset == 0 {
            return std::ptr::null_mut();
        }
        // SAFETY: the offset is inside the descriptor.
        return unsafe { p.cast::<u8>().add(offset as usize) }
            .cast_mut()
            .cast();
    }
    // SAFETY: an absolute descriptor is a SECURITY_DESCRIPTOR.
    let sd = unsafe { ffi::get(p.cast::<SECURITY_DESCRIPTOR>()) };
    sd.map_or(std::ptr::null_mut(), |sd| match n {
        0 => sd.Owner,
        1 => sd.Group,
        2 => sd.Sacl,
        _ => sd.Dacl,
    })
}

fn ok_or_fail(result: Result<(), Win32Error>) -> BOOL {
    match result {
        Ok(()) => TRUE,
        Err(code) => fail(code, FALSE),
    }
}

unsafe fn initialize_descriptor(p: *mut c_void, revision: DWORD) -> BOOL {
    if revision != DWORD::from(SECURITY_DESCRIPTOR_REVISION) {
        return fail(ERROR_UNKNOWN_REVISION, FALSE);
    }
    let empty = SECURITY_DESCRIPTOR {
        Revision: SECURITY_DESCRIPTOR_REVISION,
        Sbz1: 0,
        Control: 0,
        Owner: std::ptr::null_mut(),
        Group: std::ptr::null_mut(),
        Sacl: std::ptr::null_mut(),
        Dacl: std::ptr::null_mut(),
    };
    // SAFETY: a SECURITY_DESCRIPTOR's worth of writable memory per Win32.
    if unsafe { ffi::put(p.cast::<SECURITY_DESCRIPTOR>(), empty) } {
        TRUE
    } else {
        fail(ERROR_INVALID_PARAMETER, FALSE)
    }
}

/// `Set...Owner/Group/Dacl/Sacl` of an absolute descriptor.
unsafe fn set_part(
    p: *mut c_void,
    n: usize,
    value: *mut c_void,
    present: bool,
    defaulted: bool,
) -> BOOL {
    // SAFETY: per the Win32 contract of the setters.
    ok_or_fail(unsafe { absolute_mut(p) }.map(|sd| {
        let (present_bit, defaulted_bit) = match n {
            0 => (0, SE_OWNER_DEFAULTED),
            1 => (0, SE_GROUP_DEFAULTED),
            2 => (SE_SACL_PRESENT, 0x0020),
            _ => (SE_DACL_PRESENT, SE_DACL_DEFAULTED),
        };
        let value = if present || present_bit == 0 {
            value
        } else {
            std::ptr::null_mut()
        };
        match n {
            0 => sd.Owner = value,
            1 => sd.Group = value,
            2 => sd.Sacl = value,
            _ => sd.Dacl = value,
        }
        sd.Control &= !(present_bit | defaulted_bit);
        if present {
            sd.Control |= present_bit;
        }
        if defaulted {
            sd.Control |= defaulted_bit;
        }
    }))
}

/// `Get...Owner/Group` (`present` NULL) and `Get...Dacl/Sacl`.
unsafe fn get_part(
    p: *const c_void,
    n: usize,
    present: *mut BOOL,
    value: *mut *mut c_void,
    defaulted: *mut BOOL,
) -> BOOL {
    // SAFETY: per the Win32 contract of the getters.
    unsafe {
        let Some(control) = ffi::get(p.cast::<u16>().add(1)) else {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        };
        if ffi::get(p.cast::<u8>()) != Some(SECURITY_DESCRIPTOR_REVISION) {
            return fail(ERROR_UNKNOWN_REVISION, FALSE);
        }
        let (present_bit, defaulted_bit) = match n {
            0 => (0, SE_OWNER_DEFAULTED),
            1 => (0, SE_GROUP_DEFAULTED),
            2 => (SE_SACL_PRESENT, 0x0020),
            _ => (SE_DACL_PRESENT, SE_DACL_DEFAULTED),
        };
        let is_present = present_bit == 0 || control & present_bit != 0;
        ffi::put(present, BOOL::from(is_present));
        if is_present && !ffi::put(value, part(p, n)) {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        }
        ffi::put(defaulted, BOOL::from(control & defaulted_bit != 0));
    }
    TRUE
}

unsafe fn initialize_acl(p: *mut c_void, len: DWORD, revision: DWORD) -> BOOL {
    if revision != DWORD::from(ACL_REVISION) && revision != DWORD::from(ACL_REVISION_DS) {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    if (len as usize) < ACL_HEADER_SIZE || len > 0xFFFC {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    let header = ACL {
        AclRevision: revision as u8,
        Sbz1: 0,
        AclSize: len as u16,
        AceCount: 0,
        Sbz2: 0,
    };
    // SAFETY: `len` writable bytes per the Win32 contract, at least a header.
    if unsafe { ffi::put(p.cast::<ACL>(), header) } {
        TRUE
    } else {
        fail(ERROR_INVALID_PARAMETER, FALSE)
    }
}

unsafe fn add_ace(
    p: *mut c_void,
    revision: DWORD,
    flags: DWORD,
    mask: DWORD,
    sid: *const c_void,
    kind: AceKind,
) -> BOOL {
    if revision != DWORD::from(ACL_REVISION) && revision != DWORD::from(ACL_REVISION_DS) {
        return fail(ERROR_REVISION_MISMATCH, FALSE);
    }
    // SAFETY: per the Win32 contract, a SID.
    let Some(sid) = (unsafe { sid_at(sid) }) else {
        return fail(ERROR_INVALID_SID, FALSE);
    };
    // SAFETY: per the Win32 contract, an initialized ACL of AclSize bytes.
    let Some(acl) = (unsafe { acl_bytes(p) }) else {
        return fail(ERROR_INVALID_ACL, FALSE);
    };
    let Some((used, count)) = binary::acl_used(acl) else {
        return fail(ERROR_INVALID_ACL, FALSE);
    };
    let ace = binary::ace_to_bytes(&Ace {
        kind,
        flags: flags as u8,
        mask,
        sid,
    });
    if used + ace.len() > acl.len() {
        return fail(ERROR_ALLOTTED_SPACE_EXCEEDED, FALSE);
    }
    // SAFETY: the ACL's AclSize bytes are writable and `used + ace.len()`
    // fits within them (checked above).
    unsafe {
        let base = p.cast::<u8>();
        std::ptr::copy_nonoverlapping(ace.as_ptr(), base.add(used), ace.len());
        let header = &mut *p.cast::<ACL>();
        header.AceCount = (count + 1) as u16;
        header.AclRevision = header.AclRevision.max(revision as u8);
    }
    TRUE
}

unsafe fn get_ace(p: *const c_void, index: DWORD, out: *mut *mut c_void) -> BOOL {
    // SAFETY: per the Win32 contract, an ACL.
    let Some(acl) = (unsafe { acl_bytes(p) }) else {
        return fail(ERROR_INVALID_ACL, FALSE);
    };
    let count = u16::from_le_bytes([acl[4], acl[5]]) as usize;
    let mut at = ACL_HEADER_SIZE;
    for i in 0..count {
        let Some(size) = acl.get(at + 2..at + 4) else {
            break;
        };
        if i == index as usize {
            // SAFETY: `at` is inside the ACL.
            let ace = unsafe { p.cast::<u8>().add(at) }.cast_mut().cast();
            // SAFETY: `out` is writable per the Win32 contract.
            return if unsafe { ffi::put(out, ace) } {
                TRUE
            } else {
                fail(ERROR_INVALID_PARAMETER, FALSE)
            };
        }
        at += u16::from_le_bytes([size[0], size[1]]) as usize;
    }
    fail(ERROR_INVALID_PARAMETER, FALSE)
}

unsafe fn acl_information(p: *const c_void, info: *mut c_void, len: DWORD, class: DWORD) -> BOOL {
    // SAFETY: per the Win32 contract, an ACL.
    let Some(acl) = (unsafe { acl_bytes(p) }) else {
        return fail(ERROR_INVALID_ACL, FALSE);
    };
    let Some((used, count)) = binary::acl_used(acl) else {
        return fail(ERROR_INVALID_ACL, FALSE);
    };
    match class {
        ACL_REVISION_INFORMATION if len as usize >= 4 => {
            // SAFETY: `info` has `len >= 4` writable bytes per Win32.
            unsafe { ffi::put(info.cast::<DWORD>(), DWORD::from(acl[0])) };
        }
        ACL_SIZE_INFORMATION if len as usize >= 12 => {
            let words = [count as DWORD, used as DWORD, (acl.len() - used) as DWORD];
            // SAFETY: `info` has `len >= 12` writable bytes per Win32.
            unsafe { ffi::put(info.cast::<[DWORD; 3]>(), words) };
        }
        ACL_REVISION_INFORMATION | ACL_SIZE_INFORMATION => {
            return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
        }
        _ => return fail(ERROR_INVALID_PARAMETER, FALSE),
    }
    TRUE
}

unsafe fn allocate_sid(
    authority: *const [u8; 6],
    count: u8,
    subs: [DWORD; 8],
    out: *mut *mut c_void,
) -> BOOL {
    // SAFETY: a SID_IDENTIFIER_AUTHORITY per the Win32 contract.
    let Some(authority) = (unsafe { ffi::get(authority) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    if count == 0 || count > 8 {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let mut wide = [0u8; 8];
    wide[2..].copy_from_slice(&authority);
    let sid = Sid::new(u64::from_be_bytes(wide), &subs[..count as usize]);
    give_new(&sid.to_bytes(), out)
}

/// Puts a `LocalAlloc` copy of `bytes` through `out`.
fn give_new(bytes: &[u8], out: *mut *mut c_void) -> BOOL {
    if out.is_null() {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    let p = api_heap::copy(bytes);
    if p.is_null() {
        return FALSE;
    }
    // SAFETY: `out` is non-NULL and writable per the Win32 contract.
    unsafe { ffi::put(out, p) };
    TRUE
}

/// The SIDs `CreateWellKnownSid` knows (`WELL_KNOWN_SID_TYPE`).
fn well_known(kind: DWORD) -> Option<Sid> {
    Some(match kind {
        0 => Sid::new(0, &[0]),           // WinNullSid
        1 => Sid::everyone(),             // WinWorldSid
        2 => Sid::new(2, &[0]),           // WinLocalSid
        3 => Sid::creator_owner(),        // WinCreatorOwnerSid
        4 => Sid::creator_group(),        // WinCreatorGroupSid
        13 => Sid::new(5, &[4]),          // WinInteractiveSid
        17 => Sid::authenticated_users(), // WinAuthenticatedUserSid
        22 => Sid::system(),              // WinLocalSystemSid
        23 => Sid::new(5, &[19]),         // WinLocalServiceSid
        24 => Sid::new(5, &[20]),         // WinNetworkServiceSid
        26 => Sid::administrators(),      // WinBuiltinAdministratorsSid
        27 => Sid::users(),               // WinBuiltinUsersSid
        71 => Sid::owner_rights(),        // WinCreatorOwnerRightsSid
        _ => return None,
    })
}

unsafe fn create_well_known_sid(kind: DWORD, out: *mut c_void, size: *mut DWORD) -> BOOL {
    let Some(sid) = well_known(kind) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    copy_out(&sid.to_bytes(), out, size)
}

/// Copies `bytes` to `out` if `*size` allows; else `*size` = what it needs
/// and `ERROR_INSUFFICIENT_BUFFER`.
fn copy_out(bytes: &[u8], out: *mut c_void, size: *mut DWORD) -> BOOL {
    // SAFETY: `size` is NULL or a readable and writable DWORD per Win32.
    let Some(room) = (unsafe { ffi::get(size) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    // SAFETY: as above.
    unsafe { ffi::put(size, bytes.len() as DWORD) };
    if (room as usize) < bytes.len() || out.is_null() {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    // SAFETY: `out` has `room >= bytes.len()` writable bytes per Win32.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len()) };
    TRUE
}

unsafe fn equal_sid(a: *const c_void, b: *const c_void) -> BOOL {
    // SAFETY: two SIDs per the Win32 contract.
    match unsafe { (sid_at(a), sid_at(b)) } {
        (Some(a), Some(b)) => {
            SetLastError(0);
            BOOL::from(a == b)
        }
        _ => fail(ERROR_INVALID_SID, FALSE),
    }
}

unsafe fn sid_length(p: *const c_void) -> DWORD {
    // SAFETY: a SID per the Win32 contract.
    unsafe { sid_at(p) }.map_or(0, |sid| sid.to_bytes().len() as DWORD)
}

unsafe fn copy_sid(size: DWORD, out: *mut c_void, from: *const c_void) -> BOOL {
    // SAFETY: a SID per the Win32 contract.
    let Some(sid) = (unsafe { sid_at(from) }) else {
        return fail(ERROR_INVALID_SID, FALSE);
    };
    let bytes = sid.to_bytes();
    if (size as usize) < bytes.len() || out.is_null() {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    // SAFETY: `out` has `size` writable bytes per the Win32 contract.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len()) };
    TRUE
}

fn string_to_descriptor(
    text: Result<Option<String>, ()>,
    revision: DWORD,
    out: *mut *mut c_void,
    len: *mut ULONG,
) -> BOOL {
    if revision != SDDL_REVISION_1 {
        return fail(ERROR_UNKNOWN_REVISION, FALSE);
    }
    let Ok(Some(text)) = text else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let Ok(sd) = SecurityDescriptor::from_sddl(&text) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let Some(bytes) = binary::to_self_relative(&sd) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    if give_new(&bytes, out) == FALSE {
        return FALSE;
    }
    // SAFETY: `len` is NULL or writable per the Win32 contract.
    unsafe { ffi::put(len, bytes.len() as ULONG) };
    TRUE
}

/// A string in `LocalAlloc` memory, NUL-terminated, in `units`.
fn give_string<T: Copy + Default>(units: Vec<T>, out: *mut *mut T, len: *mut ULONG) -> BOOL {
    let mut units = units;
    units.push(T::default());
    let size = units.len() * size_of::<T>();
    // SAFETY: a byte view of `units` for copying.
    let bytes = unsafe { std::slice::from_raw_parts(units.as_ptr().cast::<u8>(), size) };
    if give_new(bytes, out.cast()) == FALSE {
        return FALSE;
    }
    // SAFETY: `len` is NULL or writable per the Win32 contract.
    unsafe { ffi::put(len, units.len() as ULONG) };
    TRUE
}

unsafe fn descriptor_to_string<T: Copy + Default>(
    p: *const c_void,
    revision: DWORD,
    which: DWORD,
    units: impl Fn(&str) -> Vec<T>,
    out: *mut *mut T,
    len: *mut ULONG,
) -> BOOL {
    if revision != SDDL_REVISION_1 {
        return fail(ERROR_UNKNOWN_REVISION, FALSE);
    }
    // SAFETY: a security descriptor per the Win32 contract.
    let Some(sd) = (unsafe { descriptor_at(p) }) else {
        return fail(ERROR_INVALID_SECURITY_DESCR, FALSE);
    };
    give_string(units(&sd.parts(which).to_sddl()), out, len)
}

fn string_to_sid(text: Result<Option<String>, ()>, out: *mut *mut c_void) -> BOOL {
    match text.ok().flatten().as_deref().and_then(Sid::parse) {
        Some(sid) => give_new(&sid.to_bytes(), out),
        None => fail(ERROR_INVALID_SID, FALSE),
    }
}

unsafe fn sid_to_string<T: Copy + Default>(
    p: *const c_void,
    units: impl Fn(&str) -> Vec<T>,
    out: *mut *mut T,
) -> BOOL {
    // SAFETY: a SID per the Win32 contract.
    match unsafe { sid_at(p) } {
        Some(sid) => give_string(units(&sid.to_string()), out, std::ptr::null_mut()),
        None => fail(ERROR_INVALID_SID, FALSE),
    }
}

/// The broker's handle value of an objmgr object handle.
fn object_value(h: HANDLE) -> Result<u32, Win32Error> {
    let entry = table::object(h)?;
    match &*entry {
        Entry::Object(object) => Ok(object.handle_value()),
        Entry::File(_) => Err(ERROR_INVALID_HANDLE),
    }
}

/// What the broker says the descriptor of `h` is (the parts `which`).
fn object_descriptor(h: HANDLE, which: DWORD) -> Result<SecurityDescriptor, Win32Error> {
    objmgr::handle::object_security(object_value(h)?, which).map_err(|e| e.code())
}

unsafe fn get_kernel_object_security(
    h: HANDLE,
    which: DWORD,
    out: *mut c_void,
    size: DWORD,
    needed: *mut DWORD,
) -> BOOL {
    let sd = match object_descriptor(h, which) {
        Ok(sd) => sd,
        Err(code) => return fail(code, FALSE),
    };
    let Some(bytes) = binary::to_self_relative(&sd) else {
        return fail(ERROR_INVALID_ACL, FALSE);
    };
    // SAFETY: `needed` is writable per the Win32 contract.
    unsafe { ffi::put(needed, bytes.len() as DWORD) };
    if (size as usize) < bytes.len() || out.is_null() {
        return fail(ERROR_INSUFFICIENT_BUFFER, FALSE);
    }
    // SAFETY: `out` has `size` writable bytes per the Win32 contract.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len()) };
    TRUE
}

fn set_object_descriptor(
    h: HANDLE,
    which: DWORD,
    sd: &SecurityDescriptor,
) -> Result<(), Win32Error> {
    objmgr::handle::set_object_security(object_value(h)?, which, sd)
        .map(|_| ())
        .map_err(|e| e.code())
}

unsafe fn set_kernel_object_security(h: HANDLE, which: DWORD, p: *const c_void) -> BOOL {
    // SAFETY: a security descriptor per the Win32 contract.
    let Some(sd) = (unsafe { descriptor_at(p) }) else {
        return fail(ERROR_INVALID_SECURITY_DESCR, FALSE);
    };
    ok_or_fail(set_object_descriptor(h, which, &sd))
}

/// `GetSecurityInfo`: returns an error code (not through `GetLastError`).
#[allow(clippy::too_many_arguments)]
unsafe fn get_security_info(
    h: HANDLE,
    kind: DWORD,
    which: DWORD,
    owner: *mut *mut c_void,
    group: *mut *mut c_void,
    dacl: *mut *mut c_void,
    sacl: *mut *mut c_void,
    descriptor: *mut *mut c_void,
) -> DWORD {
    if kind != SE_KERNEL_OBJECT {
        return ERROR_INVALID_PARAMETER.code();
    }
    // The parts point into the descriptor, which the caller frees: without
    // a place for it they could only dangle.
    let wants_part = [owner, group, dacl, sacl].iter().any(|p| !p.is_null());
    if wants_part && descriptor.is_null() {
        return ERROR_INVALID_PARAMETER.code();
    }
    let sd = match object_descriptor(h, which) {
        Ok(sd) => sd,
        Err(code) => return code.code(),
    };
    let Some(bytes) = binary::to_self_relative(&sd) else {
        return ERROR_INVALID_ACL.code();
    };
    let p = api_heap::copy(&bytes);
    if p.is_null() {
        return ERROR_NOT_ENOUGH_MEMORY.code();
    }
    // SAFETY: `p` is a self-relative descriptor just made; each out pointer
    // is NULL or writable per the Win32 contract.
    unsafe {
        ffi::put(owner, part(p, 0));
        ffi::put(group, part(p, 1));
        ffi::put(sacl, part(p, 2));
        ffi::put(dacl, part(p, 3));
        if !ffi::put(descriptor, p) {
            // Nothing points into it (checked above): nobody needs it.
            api_heap::free(p);
        }
    }
    0
}

/// `SetSecurityInfo`: returns an error code.
unsafe fn set_security_info(
    h: HANDLE,
    kind: DWORD,
    which: DWORD,
    owner: *const c_void,
    group: *const c_void,
    dacl: *const c_void,
    sacl: *const c_void,
) -> DWORD {
    if kind != SE_KERNEL_OBJECT {
        return ERROR_INVALID_PARAMETER.code();
    }
    // Each pointer is NULL or what its name says, per Win32.
    let read_sid = |p: *const c_void| -> Option<Sid> {
        // SAFETY: a non-NULL pointer here points to a SID.
        (!p.is_null()).then(|| unsafe { sid_at(p) }).flatten()
    };
    let read_acl = |p: *const c_void| -> Result<Option<Vec<Ace>>, Win32Error> {
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-NULL pointer here points to an ACL.
        unsafe { acl_at(p) }.map(Some).ok_or(ERROR_INVALID_ACL)
    };
    let sd = SecurityDescriptor {
        owner: read_sid(owner),
        group: read_sid(group),
        dacl: match read_acl(dacl) {
            Ok(Some(aces)) => Dacl::Aces(aces),
            Ok(None) => Dacl::Null,
            Err(code) => return code.code(),
        },
        sacl: match read_acl(sacl) {
            Ok(aces) => aces,
            Err(code) => return code.code(),
        },
    };
    if which & OWNER_SECURITY_INFORMATION != 0 && sd.owner.is_none()
        || which & GROUP_SECURITY_INFORMATION != 0 && sd.group.is_none()
    {
        return ERROR_INVALID_PARAMETER.code();
    }
    match set_object_descriptor(h, which, &sd) {
        Ok(()) => 0,
        Err(code) => code.code(),
    }
}

/// The length of a descriptor as `GetSecurityDescriptorLength` gives it:
/// the self-relative size, or for an absolute one the structure plus its
/// parts.
unsafe fn descriptor_length(p: *const c_void) -> DWORD {
    // SAFETY: a security descriptor per the Win32 contract.
    let Some(sd) = (unsafe { descriptor_at(p) }) else {
        return 0;
    };
    let Some(relative) = binary::to_self_relative(&sd).map(|b| b.len()) else {
        return 0;
    };
    // SAFETY: as above; the control word is readable.
    let control = unsafe { ffi::get(p.cast::<u16>().add(1)) }.unwrap_or(0);
    if control & SE_SELF_RELATIVE != 0 {
        relative as DWORD
    } else {
        (relative - binary::RELATIVE_HEADER_SIZE + size_of::<SECURITY_DESCRIPTOR>()) as DWORD
    }
}

unsafe fn make_self_relative(p: *const c_void, out: *mut c_void, size: *mut DWORD) -> BOOL {
    // SAFETY: a security descriptor per the Win32 contract.
    match unsafe { descriptor_at(p) } {
        Some(sd) => match binary::to_self_relative(&sd) {
            Some(bytes) => copy_out(&bytes, out, size),
            None => fail(ERROR_INVALID_ACL, FALSE),
        },
        None => fail(ERROR_INVALID_SECURITY_DESCR, FALSE),
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn utf8(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

const NULLP: *mut c_void = std::ptr::null_mut();

exports! {

    fn InitializeSecurityDescriptor(p: *mut c_void, revision: DWORD) -> BOOL = FALSE
        => initialize_descriptor(p, revision);
    fn IsValidSecurityDescriptor(p: *const c_void) -> BOOL = FALSE
        => BOOL::from(descriptor_at(p).is_some());
    fn GetSecurityDescriptorLength(p: *const c_void) -> DWORD = 0 => descriptor_length(p);
    fn GetSecurityDescriptorControl(p: *const c_void, control: *mut u16, revision: *mut DWORD) -> BOOL = FALSE
        => match (ffi::get(p.cast::<u8>()), ffi::get(p.cast::<u16>().add(1))) {
            (Some(rev), Some(bits)) => {
                ffi::put(control, bits);
                ffi::put(revision, DWORD::from(rev));
                TRUE
            }
            _ => fail(ERROR_INVALID_PARAMETER, FALSE),
        };
    fn SetSecurityDescriptorOwner(p: *mut c_void, owner: *mut c_void, defaulted: BOOL) -> BOOL = FALSE
        => set_part(p, 0, owner, !owner.is_null(), defaulted != 0);
    fn SetSecurityDescriptorGroup(p: *mut c_void, group: *mut c_void, defaulted: BOOL) -> BOOL = FALSE
        => set_part(p, 1, group, !group.is_null(), defaulted != 0);
    fn SetSecurityDescriptorSacl(p: *mut c_void, present: BOOL, sacl: *mut c_void, defaulted: BOOL) -> BOOL = FALSE
        => set_part(p, 2, sacl, present != 0, defaulted != 0);
    fn SetSecurityDescriptorDacl(p: *mut c_void, present: BOOL, dacl: *mut c_void, defaulted: BOOL) -> BOOL = FALSE
        => set_part(p, 3, dacl, present != 0, defaulted != 0);
    fn GetSecurityDescriptorOwner(p: *const c_void, owner: *mut *mut c_void, defaulted: *mut BOOL) -> BOOL = FALSE
        => get_part(p, 0, std::ptr::null_mut(), owner, defaulted);
    fn GetSecurityDescriptorGroup(p: *const c_void, group: *mut *mut c_void, defaulted: *mut BOOL) -> BOOL = FALSE
        => get_part(p, 1, std::ptr::null_mut(), group, defaulted);
    fn GetSecurityDescriptorSacl(p: *const c_void, present: *mut BOOL, sacl: *mut *mut c_void, defaulted: *mut BOOL) -> BOOL = FALSE
        => get_part(p, 2, present, sacl, defaulted);
    fn GetSecurityDescriptorDacl(p: *const c_void, present: *mut BOOL, dacl: *mut *mut c_void, defaulted: *mut BOOL) -> BOOL = FALSE
        => get_part(p, 3, present, dacl, defaulted);
    fn MakeSelfRelativeSD(p: *const c_void, out: *mut c_void, size: *mut DWORD) -> BOOL = FALSE
        => make_self_relative(p, out, size);

    fn InitializeAcl(p: *mut c_void, len: DWORD, revision: DWORD) -> BOOL = FALSE
        => initialize_acl(p, len, revision);
    fn IsValidAcl(p: *const c_void) -> BOOL = FALSE
        => BOOL::from(acl_bytes(p).and_then(binary::acl_from_bytes).is_some());
    fn AddAccessAllowedAce(p: *mut c_void, revision: DWORD, mask: DWORD, sid: *const c_void) -> BOOL = FALSE
        => add_ace(p, revision, 0, mask, sid, AceKind::Allow);
    fn AddAccessAllowedAceEx(p: *mut c_void, revision: DWORD, flags: DWORD, mask: DWORD, sid: *const c_void) -> BOOL = FALSE
        => add_ace(p, revision, flags, mask, sid, AceKind::Allow);
    fn AddAccessDeniedAce(p: *mut c_void, revision: DWORD, mask: DWORD, sid: *const c_void) -> BOOL = FALSE
        => add_ace(p, revision, 0, mask, sid, AceKind::Deny);
    fn AddAccessDeniedAceEx(p: *mut c_void, revision: DWORD, flags: DWORD, mask: DWORD, sid: *const c_void) -> BOOL = FALSE
        => add_ace(p, revision, flags, mask, sid, AceKind::Deny);
    fn GetAce(p: *const c_void, index: DWORD, ace: *mut *mut c_void) -> BOOL = FALSE
        => get_ace(p, index, ace);
    fn GetAclInformation(p: *const c_void, info: *mut c_void, len: DWORD, class: DWORD) -> BOOL = FALSE
        => acl_information(p, info, len, class);

    fn AllocateAndInitializeSid(authority: *const [u8; 6], count: u8, s0: DWORD, s1: DWORD, s2: DWORD, s3: DWORD, s4: DWORD, s5: DWORD, s6: DWORD, s7: DWORD, sid: *mut *mut c_void) -> BOOL = FALSE
        => allocate_sid(authority, count, [s0, s1, s2, s3, s4, s5, s6, s7], sid);
    fn FreeSid(p: *mut c_void) -> *mut c_void = NULLP => { api_heap::free(p); NULLP };
    fn CreateWellKnownSid(kind: DWORD, domain: *const c_void, sid: *mut c_void, size: *mut DWORD) -> BOOL = FALSE
        => { let _ = domain; create_well_known_sid(kind, sid, size) };
    fn EqualSid(a: *const c_void, b: *const c_void) -> BOOL = FALSE => equal_sid(a, b);
    fn GetLengthSid(p: *const c_void) -> DWORD = 0 => sid_length(p);
    fn IsValidSid(p: *const c_void) -> BOOL = FALSE => BOOL::from(sid_at(p).is_some());
    fn CopySid(size: DWORD, out: *mut c_void, from: *const c_void) -> BOOL = FALSE
        => copy_sid(size, out, from);

    fn ConvertStringSecurityDescriptorToSecurityDescriptorA(text: *const c_char, revision: DWORD, out: *mut *mut c_void, len: *mut ULONG) -> BOOL = FALSE
        => string_to_descriptor(ansi_exact(text), revision, out, len);
    fn ConvertStringSecurityDescriptorToSecurityDescriptorW(text: *const WCHAR, revision: DWORD, out: *mut *mut c_void, len: *mut ULONG) -> BOOL = FALSE
        => string_to_descriptor(wide_exact(text), revision, out, len);
    fn ConvertSecurityDescriptorToStringSecurityDescriptorA(p: *const c_void, revision: DWORD, which: DWORD, out: *mut *mut c_char, len: *mut ULONG) -> BOOL = FALSE
        => descriptor_to_string(p, revision, which, utf8, out.cast::<*mut u8>(), len);
    fn ConvertSecurityDescriptorToStringSecurityDescriptorW(p: *const c_void, revision: DWORD, which: DWORD, out: *mut *mut WCHAR, len: *mut ULONG) -> BOOL = FALSE
        => descriptor_to_string(p, revision, which, utf16, out, len);
    fn ConvertStringSidToSidA(text: *const c_char, sid: *mut *mut c_void) -> BOOL = FALSE
        => string_to_sid(ansi_exact(text), sid);
    fn ConvertStringSidToSidW(text: *const WCHAR, sid: *mut *mut c_void) -> BOOL = FALSE
        => string_to_sid(wide_exact(text), sid);
    fn ConvertSidToStringSidA(sid: *const c_void, out: *mut *mut c_char) -> BOOL = FALSE
        => sid_to_string(sid, utf8, out.cast::<*mut u8>());
    fn ConvertSidToStringSidW(sid: *const c_void, out: *mut *mut WCHAR) -> BOOL = FALSE
        => sid_to_string(sid, utf16, out);

    fn GetKernelObjectSecurity(h: HANDLE, which: DWORD, p: *mut c_void, size: DWORD, needed: *mut DWORD) -> BOOL = FALSE
        => get_kernel_object_security(h, which, p, size, needed);
    fn SetKernelObjectSecurity(h: HANDLE, which: DWORD, p: *const c_void) -> BOOL = FALSE
        => set_kernel_object_security(h, which, p);
    fn GetSecurityInfo(h: HANDLE, kind: DWORD, which: DWORD, owner: *mut *mut c_void, group: *mut *mut c_void, dacl: *mut *mut c_void, sacl: *mut *mut c_void, sd: *mut *mut c_void) -> DWORD = ERROR_INTERNAL_ERROR.code()
        => get_security_info(h, kind, which, owner, group, dacl, sacl, sd);
    fn SetSecurityInfo(h: HANDLE, kind: DWORD, which: DWORD, owner: *const c_void, group: *const c_void, dacl: *const c_void, sacl: *const c_void) -> DWORD = ERROR_INTERNAL_ERROR.code()
        => set_security_info(h, kind, which, owner, group, dacl, sacl);
}
