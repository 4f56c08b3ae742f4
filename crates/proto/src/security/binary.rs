//! The binary forms Win32 code builds by hand: ACLs, ACEs and
//! self-relative security descriptors, as `winnt.h` lays them out.
//!
//! - ACL: `AclRevision u8, Sbz1 u8, AclSize u16, AceCount u16, Sbz2 u16`,
//!   then the ACEs.
//! - ACE: `AceType u8, AceFlags u8, AceSize u16, Mask u32, Sid`.
//! - Self-relative descriptor: `Revision u8 (1), Sbz1 u8, Control u16,
//!   OffsetOwner u32, OffsetGroup u32, OffsetSacl u32, OffsetDacl u32`,
//!   then the parts at those offsets (0: none).
//!
//! All little-endian. Pure functions over bytes; the C ABI reads and writes
//! the memory.

use super::{Ace, AceKind, Dacl, SecurityDescriptor, Sid};

pub const ACL_REVISION: u8 = 2;
pub const ACL_REVISION_DS: u8 = 4;
pub const ACL_HEADER_SIZE: usize = 8;
pub const SECURITY_DESCRIPTOR_REVISION: u8 = 1;
/// The size of the self-relative header.
pub const RELATIVE_HEADER_SIZE: usize = 20;

pub const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
pub const ACCESS_DENIED_ACE_TYPE: u8 = 1;
pub const SYSTEM_AUDIT_ACE_TYPE: u8 = 2;
pub const SYSTEM_ALARM_ACE_TYPE: u8 = 3;
pub const SYSTEM_MANDATORY_LABEL_ACE_TYPE: u8 = 0x11;

/// `SECURITY_DESCRIPTOR_CONTROL` bits.
pub const SE_OWNER_DEFAULTED: u16 = 0x0001;
pub const SE_GROUP_DEFAULTED: u16 = 0x0002;
pub const SE_DACL_PRESENT: u16 = 0x0004;
pub const SE_DACL_DEFAULTED: u16 = 0x0008;
pub const SE_SACL_PRESENT: u16 = 0x0010;
pub const SE_SACL_DEFAULTED: u16 = 0x0020;
pub const SE_DACL_PROTECTED: u16 = 0x1000;
pub const SE_SELF_RELATIVE: u16 = 0x8000;

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The length of the SID whose first two bytes are `head`, if valid.
pub fn sid_length(head: [u8; 2]) -> Option<usize> {
    (head[0] == 1 && head[1] as usize <= super::SID_MAX_SUB_AUTHORITIES)
        .then(|| 8 + 4 * head[1] as usize)
}

fn ace_type(kind: AceKind) -> u8 {
    match kind {
        AceKind::Allow => ACCESS_ALLOWED_ACE_TYPE,
        AceKind::Deny => ACCESS_DENIED_ACE_TYPE,
        AceKind::Audit => SYSTEM_AUDIT_ACE_TYPE,
        AceKind::Alarm => SYSTEM_ALARM_ACE_TYPE,
        AceKind::MandatoryLabel => SYSTEM_MANDATORY_LABEL_ACE_TYPE,
    }
}

/// One ACE's bytes.
pub fn ace_to_bytes(ace: &Ace) -> Vec<u8> {
    let sid = ace.sid.to_bytes();
    let size = 8 + sid.len();
    let mut out = Vec::with_capacity(size);
    out.push(ace_type(ace.kind));
    out.push(ace.flags);
    out.extend_from_slice(&(size as u16).to_le_bytes());
    out.extend_from_slice(&ace.mask.to_le_bytes());
    out.extend_from_slice(&sid);
    out
}

/// The ACE at the front of `bytes` and its size; `None` if it is not one
/// objmgr knows (object ACEs, callback ACEs) or is cut short.
pub fn ace_from_bytes(bytes: &[u8]) -> Option<(Ace, usize)> {
    let kind = match *bytes.first()? {
        ACCESS_ALLOWED_ACE_TYPE => AceKind::Allow,
        ACCESS_DENIED_ACE_TYPE => AceKind::Deny,
        SYSTEM_AUDIT_ACE_TYPE => AceKind::Audit,
        SYSTEM_ALARM_ACE_TYPE => AceKind::Alarm,
        SYSTEM_MANDATORY_LABEL_ACE_TYPE => AceKind::MandatoryLabel,
        _ => return None,
    };
    let flags = *bytes.get(1)?;
    let size = u16_at(bytes, 2)? as usize;
    let mask = u32_at(bytes, 4)?;
    let (sid, sid_len) = Sid::from_bytes(bytes.get(8..size)?)?;
    if 8 + sid_len > size {
        return None;
    }
    Some((
        Ace {
            kind,
            flags,
            mask,
            sid,
        },
        size,
    ))
}

/// An ACL's bytes (revision 2); `None` if it would not fit the 16-bit
/// `AclSize` and `AceCount` of the layout.
pub fn acl_to_bytes(aces: &[Ace]) -> Option<Vec<u8>> {
    let body: Vec<u8> = aces.iter().flat_map(ace_to_bytes).collect();
    let size = ACL_HEADER_SIZE + body.len();
    if size > usize::from(u16::MAX) || aces.len() > usize::from(u16::MAX) {
        return None;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[ACL_REVISION, 0]);
    out.extend_from_slice(&(size as u16).to_le_bytes());
    out.extend_from_slice(&(aces.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&body);
    Some(out)
}

/// The `AclSize` of the ACL whose header is `head` (at least 4 bytes), if
/// its revision is valid.
pub fn acl_size(head: &[u8]) -> Option<usize> {
    matches!(*head.first()?, ACL_REVISION | ACL_REVISION_DS)
        .then(|| u16_at(head, 2).map(usize::from))
        .flatten()
        .filter(|&size| size >= ACL_HEADER_SIZE)
}

/// Where the ACEs of an ACL end, and how many there are.
pub fn acl_used(bytes: &[u8]) -> Option<(usize, usize)> {
    let size = acl_size(bytes)?.min(bytes.len());
    let count = u16_at(bytes, 4)? as usize;
    let mut at = ACL_HEADER_SIZE;
    for _ in 0..count {
        let ace_size = u16_at(bytes, at + 2)? as usize;
        if ace_size < 8 || at + ace_size > size {
            return None;
        }
        at += ace_size;
    }
    Some((at, count))
}

/// The ACEs of the ACL in `bytes`.
pub fn acl_from_bytes(bytes: &[u8]) -> Option<Vec<Ace>> {
    let size = acl_size(bytes)?;
    let bytes = bytes.get(..size)?;
    let count = u16_at(bytes, 4)? as usize;
    let mut aces = Vec::with_capacity(count.min(64));
    let mut at = ACL_HEADER_SIZE;
    for _ in 0..count {
        let (ace, used) = ace_from_bytes(bytes.get(at..)?)?;
        aces.push(ace);
        at += used;
    }
    Some(aces)
}

/// A self-relative descriptor's bytes: owner, group, SACL, DACL, in that
/// order after the header; `None` if an ACL is too large for the layout.
pub fn to_self_relative(sd: &SecurityDescriptor) -> Option<Vec<u8>> {
    let mut control = SE_SELF_RELATIVE;
    let mut body = Vec::new();
    let mut place = |part: Option<Vec<u8>>| -> u32 {
        match part {
            Some(bytes) => {
                let offset = (RELATIVE_HEADER_SIZE + body.len()) as u32;
                body.extend_from_slice(&bytes);
                offset
            }
            None => 0,
        }
    };
    let owner = place(sd.owner.as_ref().map(Sid::to_bytes));
    let group = place(sd.group.as_ref().map(Sid::to_bytes));
    if sd.sacl.is_some() {
        control |= SE_SACL_PRESENT;
    }
    let sacl_bytes = match sd.sacl.as_deref() {
        Some(aces) => Some(acl_to_bytes(aces)?),
        None => None,
    };
    let dacl_bytes = match &sd.dacl {
        Dacl::Aces(aces) => Some(acl_to_bytes(aces)?),
        _ => None,
    };
    let sacl = place(sacl_bytes);
    let dacl = match &sd.dacl {
        Dacl::NotPresent => 0,
        Dacl::Null => {
            control |= SE_DACL_PRESENT;
            0
        }
        Dacl::Aces(_) => {
            control |= SE_DACL_PRESENT;
            place(dacl_bytes)
        }
    };
    let mut out = Vec::with_capacity(RELATIVE_HEADER_SIZE + body.len());
    out.extend_from_slice(&[SECURITY_DESCRIPTOR_REVISION, 0]);
    out.extend_from_slice(&control.to_le_bytes());
    for offset in [owner, group, sacl, dacl] {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.extend_from_slice(&body);
    Some(out)
}

/// How many bytes the self-relative descriptor at the front of `bytes`
/// spans, reading only what it must: the header, then each part's own
/// length. `read(at, len)` gives the bytes at `at` (or `None`).
pub fn self_relative_length<'a>(read: impl Fn(usize, usize) -> Option<&'a [u8]>) -> Option<usize> {
    let head = read(0, RELATIVE_HEADER_SIZE)?;
    let mut end = RELATIVE_HEADER_SIZE;
    for (n, is_acl) in [(0, false), (1, false), (2, true), (3, true)] {
        let offset = u32_at(head, 4 + 4 * n)? as usize;
        if offset == 0 {
            continue;
        }
        let len = if is_acl {
            acl_size(read(offset, 4)?)?
        } else {
            sid_length(read(offset, 2)?.try_into().ok()?)?
        };
        end = end.max(offset + len);
    }
    Some(end)
}

/// Reads a self-relative descriptor.
pub fn from_self_relative(bytes: &[u8]) -> Option<SecurityDescriptor> {
    if *bytes.first()? != SECURITY_DESCRIPTOR_REVISION {
        return None;
    }
    let control = u16_at(bytes, 2)?;
    if control & SE_SELF_RELATIVE == 0 {
        return None;
    }
    let offset = |n: usize| u32_at(bytes, 4 + 4 * n).map(|o| o as usize);
    let sid_at = |at: usize| -> Option<Option<Sid>> {
        if at == 0 {
            return Some(None);
        }
        Some(Some(Sid::from_bytes(bytes.get(at..)?)?.0))
    };
    let acl_at = |at: usize| -> Option<Option<Vec<Ace>>> {
        if at == 0 {
            return Some(None);
        }
        Some(Some(acl_from_bytes(bytes.get(at..)?)?))
    };
    let owner = sid_at(offset(0)?)?;
    let group = sid_at(offset(1)?)?;
    let sacl = if control & SE_SACL_PRESENT != 0 {
        Some(acl_at(offset(2)?)?.unwrap_or_default())
    } else {
        None
    };
    let dacl = if control & SE_DACL_PRESENT == 0 {
        Dacl::NotPresent
    } else {
        match acl_at(offset(3)?)? {
            None => Dacl::Null,
            Some(aces) => Dacl::Aces(aces),
        }
    };
    Some(SecurityDescriptor {
        owner,
        group,
        dacl,
        sacl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_through_bytes() {
        for text in [
            "O:SYG:BAD:(A;;GA;;;SY)(D;OICI;0x2;;;WD)",
            "D:NO_ACCESS_CONTROL",
            "D:",
            "O:S-1-22-1-1000",
            "G:BUS:(AU;SA;GA;;;WD)D:(A;;GR;;;AU)",
            "",
        ] {
            let sd = SecurityDescriptor::from_sddl(text).unwrap();
            let bytes = to_self_relative(&sd).unwrap();
            assert_eq!(from_self_relative(&bytes).as_ref(), Some(&sd), "{text}");
            let length = self_relative_length(|at, len| bytes.get(at..at + len));
            assert_eq!(length, Some(bytes.len()), "{text}");
        }
    }

    #[test]
    fn broken_bytes_are_refused() {
        let sd = SecurityDescriptor::from_sddl("O:SYD:(A;;GA;;;WD)").unwrap();
        let bytes = to_self_relative(&sd).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(from_self_relative(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut bad_revision = bytes.clone();
        bad_revision[0] = 2;
        assert_eq!(from_self_relative(&bad_revision), None);
        let acl = acl_to_bytes(&[Ace::allow(1, Sid::everyone())]).unwrap();
        assert_eq!(acl_used(&acl), Some((acl.len(), 1)));
        let mut object_ace = acl.clone();
        object_ace[ACL_HEADER_SIZE] = 5; // ACCESS_ALLOWED_OBJECT_ACE_TYPE
        assert_eq!(acl_from_bytes(&object_ace), None);
        // Too many ACEs for 16 bits is refused, not wrapped around.
        let many = vec![Ace::allow(1, Sid::everyone()); 5000];
        assert_eq!(acl_to_bytes(&many), None);
    }
}
