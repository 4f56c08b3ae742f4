//! Security descriptors, tokens and the access check, as Windows has them,
//! with the principals of a Linux machine as SIDs.
//!
//! - Users are `S-1-22-1-<uid>` and groups `S-1-22-2-<gid>` (the Unix
//!   mapping Samba and Wine use); root's user is `SYSTEM` (`S-1-5-18`).
//! - A process's [`Token`]: its user, its primary and supplementary groups,
//!   Everyone, Authenticated Users, and Administrators for root and for the
//!   members of the broker's administrators group.
//! - A [`SecurityDescriptor`]: owner, group, DACL (access-allowed and
//!   access-denied ACEs, evaluated in order as Windows does) and a SACL that
//!   is kept but not enforced. Written and read as SDDL ([`sddl`]).
//! - [`access_check`]: generic rights mapped per object type,
//!   `MAXIMUM_ALLOWED`, the owner's implicit `READ_CONTROL | WRITE_DAC`
//!   (unless an OWNER RIGHTS ACE says otherwise), a NULL DACL granting
//!   everything and an empty one nothing.
//!
//! # References
//! - <https://learn.microsoft.com/en-us/windows/win32/secauthz/how-dacls-control-access-to-an-object>
//! - <https://learn.microsoft.com/en-us/windows/win32/secauthz/security-descriptor-string-format>

pub mod binary;
pub mod sddl;

use crate::access::{
    ACCESS_SYSTEM_SECURITY, GENERIC_ALL, GENERIC_EXECUTE, GENERIC_READ, GENERIC_WRITE,
    GenericMapping, MAXIMUM_ALLOWED, READ_CONTROL, WRITE_DAC,
};
use std::fmt;

/// A security identifier. The revision is always 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    /// The identifier authority (48 bits).
    pub authority: u64,
    /// Up to 15 sub-authorities.
    pub sub_authorities: Vec<u32>,
}

/// Most sub-authorities a SID may have.
pub const SID_MAX_SUB_AUTHORITIES: usize = 15;

impl Sid {
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Sid {
        Sid {
            authority,
            sub_authorities: sub_authorities.to_vec(),
        }
    }

    /// Everyone (`WD`, `S-1-1-0`).
    pub fn everyone() -> Sid {
        Sid::new(1, &[0])
    }
    /// CREATOR OWNER (`CO`, `S-1-3-0`): stands for the owner in inheritable ACEs.
    pub fn creator_owner() -> Sid {
        Sid::new(3, &[0])
    }
    /// CREATOR GROUP (`CG`, `S-1-3-1`).
    pub fn creator_group() -> Sid {
        Sid::new(3, &[1])
    }
    /// OWNER RIGHTS (`OW`, `S-1-3-4`): an ACE for it replaces the owner's
    /// implicit rights.
    pub fn owner_rights() -> Sid {
        Sid::new(3, &[4])
    }
    /// Authenticated Users (`AU`, `S-1-5-11`).
    pub fn authenticated_users() -> Sid {
        Sid::new(5, &[11])
    }
    /// SYSTEM (`SY`, `S-1-5-18`): root.
    pub fn system() -> Sid {
        Sid::new(5, &[18])
    }
    /// BUILTIN\Administrators (`BA`, `S-1-5-32-544`).
    pub fn administrators() -> Sid {
        Sid::new(5, &[32, 544])
    }
    /// BUILTIN\Users (`BU`, `S-1-5-32-545`).
    pub fn users() -> Sid {
        Sid::new(5, &[32, 545])
    }
    /// The Linux user `uid` (`S-1-22-1-<uid>`); root is SYSTEM.
    pub fn unix_user(uid: u32) -> Sid {
        if uid == 0 {
            Sid::system()
        } else {
            Sid::new(22, &[1, uid])
        }
    }
    /// The Linux group `gid` (`S-1-22-2-<gid>`).
    pub fn unix_group(gid: u32) -> Sid {
        Sid::new(22, &[2, gid])
    }

    /// The uid this SID names, if it names a Linux user (SYSTEM is root).
    pub fn unix_uid(&self) -> Option<u32> {
        match (self.authority, self.sub_authorities.as_slice()) {
            (22, [1, uid]) => Some(*uid),
            (5, [18]) => Some(0),
            _ => None,
        }
    }

    /// The gid this SID names, if it names a Linux group.
    pub fn unix_gid(&self) -> Option<u32> {
        match (self.authority, self.sub_authorities.as_slice()) {
            (22, [2, gid]) => Some(*gid),
            _ => None,
        }
    }

    /// Parses `S-1-<authority>-<sub>...` (the authority in decimal, or in
    /// hex with `0x` as Windows writes authorities of 2^32 and above).
    pub fn parse(text: &str) -> Option<Sid> {
        let rest = text
            .strip_prefix("S-1-")
            .or_else(|| text.strip_prefix("s-1-"))?;
        let mut parts = rest.split('-');
        let authority = parts.next()?;
        let authority = match authority
            .strip_prefix("0x")
            .or(authority.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16).ok()?,
            None => authority.parse::<u64>().ok()?,
        };
        if authority >= 1 << 48 {
            return None;
        }
        let sub_authorities = parts
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<u32>>>()?;
        if sub_authorities.len() > SID_MAX_SUB_AUTHORITIES {
            return None;
        }
        Some(Sid {
            authority,
            sub_authorities,
        })
    }

    /// The binary form (`SID` structure): revision, count, 6-byte big-endian
    /// authority, little-endian sub-authorities.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.sub_authorities.len());
        out.push(1);
        out.push(self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in &self.sub_authorities {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    /// Reads a binary SID from the front of `bytes`; returns it and its length.
    pub fn from_bytes(bytes: &[u8]) -> Option<(Sid, usize)> {
        let (&revision, rest) = bytes.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let count = count as usize;
        if revision != 1 || count > SID_MAX_SUB_AUTHORITIES || rest.len() < 6 + 4 * count {
            return None;
        }
        let mut authority = [0u8; 8];
        authority[2..].copy_from_slice(&rest[..6]);
        let sub_authorities = rest[6..6 + 4 * count]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some((
            Sid {
                authority: u64::from_be_bytes(authority),
                sub_authorities,
            },
            8 + 4 * count,
        ))
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority >= 1 << 32 {
            write!(f, "S-1-{:#x}", self.authority)?;
        } else {
            write!(f, "S-1-{}", self.authority)?;
        }
        for sub in &self.sub_authorities {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

/// What an ACE does. Only allow and deny ACEs take part in access checks;
/// the SACL's kinds are kept and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AceKind {
    Allow,
    Deny,
    Audit,
    Alarm,
    MandatoryLabel,
}

/// The parts of a descriptor a `Get`/`Set...Security` call reads or writes.
pub const OWNER_SECURITY_INFORMATION: u32 = 0x1;
pub const GROUP_SECURITY_INFORMATION: u32 = 0x2;
pub const DACL_SECURITY_INFORMATION: u32 = 0x4;
pub const SACL_SECURITY_INFORMATION: u32 = 0x8;

/// ACE flags (`OBJECT_INHERIT_ACE`, ...), kept as given.
pub const OBJECT_INHERIT_ACE: u8 = 0x01;
pub const CONTAINER_INHERIT_ACE: u8 = 0x02;
pub const NO_PROPAGATE_INHERIT_ACE: u8 = 0x04;
/// An ACE that only its children inherit: it takes no part in access checks.
pub const INHERIT_ONLY_ACE: u8 = 0x08;
pub const INHERITED_ACE: u8 = 0x10;

/// An access-allowed or access-denied ACE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    pub kind: AceKind,
    pub flags: u8,
    pub mask: u32,
    pub sid: Sid,
}

impl Ace {
    pub fn allow(mask: u32, sid: Sid) -> Ace {
        Ace {
            kind: AceKind::Allow,
            flags: 0,
            mask,
            sid,
        }
    }

    pub fn deny(mask: u32, sid: Sid) -> Ace {
        Ace {
            kind: AceKind::Deny,
            flags: 0,
            mask,
            sid,
        }
    }
}

/// A security descriptor's DACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dacl {
    /// None given: the creator's default DACL applies when an object is made.
    NotPresent,
    /// A NULL DACL: everyone is granted everything.
    Null,
    /// ACEs, in order (an empty list grants nothing).
    Aces(Vec<Ace>),
}

/// Owner, group, DACL and SACL. Parts left `None` (or `Dacl::NotPresent`)
/// are filled in from the creator's token when an object is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    pub owner: Option<Sid>,
    pub group: Option<Sid>,
    pub dacl: Dacl,
    /// Kept and shown, not enforced (no auditing).
    pub sacl: Option<Vec<Ace>>,
}

impl Default for SecurityDescriptor {
    fn default() -> SecurityDescriptor {
        SecurityDescriptor {
            owner: None,
            group: None,
            dacl: Dacl::NotPresent,
            sacl: None,
        }
    }
}

impl SecurityDescriptor {
    /// Parses SDDL (see [`sddl`]).
    pub fn from_sddl(text: &str) -> Result<SecurityDescriptor, sddl::SddlError> {
        sddl::parse(text)
    }

    /// Writes SDDL (see [`sddl`]).
    pub fn to_sddl(&self) -> String {
        sddl::format(self)
    }

    /// Only the parts `which` (`*_SECURITY_INFORMATION` bits) of it.
    pub fn parts(&self, which: u32) -> SecurityDescriptor {
        SecurityDescriptor {
            owner: self
                .owner
                .clone()
                .filter(|_| which & OWNER_SECURITY_INFORMATION != 0),
            group: self
                .group
                .clone()
                .filter(|_| which & GROUP_SECURITY_INFORMATION != 0),
            dacl: if which & DACL_SECURITY_INFORMATION != 0 {
                self.dacl.clone()
            } else {
                Dacl::NotPresent
            },
            sacl: self
                .sacl
                .clone()
                .filter(|_| which & SACL_SECURITY_INFORMATION != 0),
        }
    }

    /// The descriptor an object made by `token` gets: what `requested`
    /// gives, the rest from the token as Windows does (owner: the user;
    /// group: the primary group; DACL: the token's default, full access for
    /// the user, SYSTEM and Administrators).
    pub fn for_new_object(requested: Option<&SecurityDescriptor>, token: &Token) -> Self {
        let requested = requested.cloned().unwrap_or_default();
        let dacl = match requested.dacl {
            Dacl::NotPresent => Dacl::Aces(vec![
                Ace::allow(GENERIC_ALL, token.user.clone()),
                Ace::allow(GENERIC_ALL, Sid::system()),
                Ace::allow(GENERIC_ALL, Sid::administrators()),
            ]),
            given => given,
        };
        SecurityDescriptor {
            owner: Some(requested.owner.unwrap_or_else(|| token.user.clone())),
            group: Some(
                requested
                    .group
                    .unwrap_or_else(|| token.primary_group.clone()),
            ),
            dacl,
            sacl: requested.sacl,
        }
    }
}

/// Who a process is: its user and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub user: Sid,
    pub primary_group: Sid,
    /// Every group SID the token holds (the primary group among them).
    pub groups: Vec<Sid>,
}

impl Token {
    /// The token of a Linux process: uid, gid and supplementary gids;
    /// `admin_gid` is the group whose members count as Administrators
    /// (root always does).
    pub fn for_unix(uid: u32, gid: u32, supplementary: &[u32], admin_gid: Option<u32>) -> Token {
        let mut groups = vec![
            Sid::unix_group(gid),
            Sid::everyone(),
            Sid::authenticated_users(),
            Sid::users(),
        ];
        for &g in supplementary {
            let sid = Sid::unix_group(g);
            if !groups.contains(&sid) {
                groups.push(sid);
            }
        }
        let admin = uid == 0 || admin_gid.is_some_and(|a| a == gid || supplementary.contains(&a));
        if admin {
            groups.push(Sid::administrators());
        }
        Token {
            user: Sid::unix_user(uid),
            primary_group: Sid::unix_group(gid),
            groups,
        }
    }

    /// Whether the token holds `sid` (as its user or a group).
    pub fn has(&self, sid: &Sid) -> bool {
        self.user == *sid || self.groups.contains(sid)
    }

    /// Whether the token may make `sid` an object's owner: its own user, or
    /// Administrators when it is one (the groups Windows marks
    /// `SE_GROUP_OWNER`); SYSTEM (root) may name anyone, as with
    /// `SeRestorePrivilege`. Not Everyone or another shared group: that
    /// would give all its members the owner's `WRITE_DAC`.
    pub fn may_own_as(&self, sid: &Sid) -> bool {
        self.user == Sid::system()
            || self.user == *sid
            || (*sid == Sid::administrators() && self.has(sid))
    }

    /// Whether the token may make `sid` an object's primary group: any
    /// group it holds (root: any).
    pub fn may_group_as(&self, sid: &Sid) -> bool {
        self.user == Sid::system() || self.has(sid)
    }

    /// Whether this is root's token.
    pub fn is_system(&self) -> bool {
        self.user == Sid::system()
    }
}

/// Maps the generic rights in `mask` through `mapping`; specific and
/// standard rights pass unchanged.
pub fn map_generic(mask: u32, mapping: &GenericMapping) -> u32 {
    let mut mapped = mask & !(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL);
    if mask & GENERIC_READ != 0 {
        mapped |= mapping.read;
    }
    if mask & GENERIC_WRITE != 0 {
        mapped |= mapping.write;
    }
    if mask & GENERIC_EXECUTE != 0 {
        mapped |= mapping.execute;
    }
    if mask & GENERIC_ALL != 0 {
        mapped |= mapping.all;
    }
    mapped
}

/// The access check: the rights `token` is granted on an object with
/// descriptor `sd` when it asks for `desired` (generic rights mapped with
/// `mapping`; `MAXIMUM_ALLOWED` asks for all it may have), or `None` when
/// any right asked for is not granted (`ERROR_ACCESS_DENIED`).
pub fn access_check(
    sd: &SecurityDescriptor,
    token: &Token,
    desired: u32,
    mapping: &GenericMapping,
) -> Option<u32> {
    let maximum = desired & MAXIMUM_ALLOWED != 0;
    // Bits the type does not define are dropped, as the handle could not
    // use them anyway.
    let valid = mapping.all | ACCESS_SYSTEM_SECURITY;
    let desired = map_generic(desired & !MAXIMUM_ALLOWED, mapping) & valid;
    // Asking for nothing is refused, as Windows' access check refuses it.
    if desired == 0 && !maximum {
        return None;
    }
    // Auditing rights come from a privilege only root has, not the DACL.
    let privileged = if desired & ACCESS_SYSTEM_SECURITY != 0 {
        if !token.is_system() {
            return None;
        }
        ACCESS_SYSTEM_SECURITY
    } else {
        0
    };
    let desired_by_dacl = desired & !privileged;
    let aces = match &sd.dacl {
        Dacl::Null | Dacl::NotPresent => {
            return Some(if maximum {
                mapping.all | desired
            } else {
                desired
            });
        }
        Dacl::Aces(aces) => aces,
    };
    let is_owner = sd.owner.as_ref().is_some_and(|o| token.has(o));
    let owner_rights_ace = aces
        .iter()
        .any(|a| a.sid == Sid::owner_rights() && a.flags & INHERIT_ONLY_ACE == 0);
    let applies = |ace: &Ace| {
        ace.flags & INHERIT_ONLY_ACE == 0
            && (token.has(&ace.sid) || (is_owner && ace.sid == Sid::owner_rights()))
    };
    let implicit = if is_owner && !owner_rights_ace {
        READ_CONTROL | WRITE_DAC
    } else {
        0
    };
    if maximum {
        // Everything allowed before it is denied, in ACE order.
        let (mut allowed, mut denied) = (implicit, 0u32);
        for ace in aces.iter().filter(|a| applies(a)) {
            let mask = map_generic(ace.mask, mapping) & valid;
            match ace.kind {
                AceKind::Allow => allowed |= mask & !denied,
                AceKind::Deny => denied |= mask & !allowed,
                _ => {}
            }
        }
        let allowed = allowed | privileged;
        return (desired & !allowed == 0).then_some(allowed | desired);
    }
    let mut remaining = desired_by_dacl & !implicit;
    for ace in aces.iter().filter(|a| applies(a)) {
        if remaining == 0 {
            break;
        }
        let mask = map_generic(ace.mask, mapping);
        match ace.kind {
            AceKind::Deny if mask & remaining != 0 => return None,
            AceKind::Allow => remaining &= !mask,
            _ => {}
        }
    }
    (remaining == 0).then_some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{
        EVENT_ALL_ACCESS, EVENT_MODIFY_STATE, ObjectType, SECTION_MAP_READ, SECTION_MAP_WRITE,
        SYNCHRONIZE,
    };

    fn section() -> GenericMapping {
        ObjectType::Section.generic_mapping()
    }

    fn user(uid: u32) -> Token {
        Token::for_unix(uid, 100, &[200], None)
    }

    fn sd(text: &str) -> SecurityDescriptor {
        SecurityDescriptor::from_sddl(text).unwrap()
    }

    #[test]
    fn sids_print_parse_and_encode() {
        for text in [
            "S-1-1-0",
            "S-1-5-32-544",
            "S-1-22-1-1000",
            "S-1-0x100000000-1",
        ] {
            let sid = Sid::parse(text).unwrap();
            assert_eq!(sid.to_string(), text);
            let bytes = sid.to_bytes();
            assert_eq!(Sid::from_bytes(&bytes), Some((sid, bytes.len())));
        }
        assert_eq!(Sid::unix_user(0), Sid::system());
        assert_eq!(Sid::unix_user(1000).unix_uid(), Some(1000));
        for bad in [
            "S-2-1-0",
            "S-1-x",
            "S-1-5-",
            "1-5-18",
            "S-1-281474976710656",
        ] {
            assert_eq!(Sid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_descriptor_serves_its_creator_and_nobody_else() {
        let owner = user(1000);
        let sd = SecurityDescriptor::for_new_object(None, &owner);
        assert_eq!(sd.owner, Some(Sid::unix_user(1000)));
        assert_eq!(sd.group, Some(Sid::unix_group(100)));
        let all = section().all;
        assert_eq!(
            access_check(&sd, &owner, GENERIC_ALL, &section()),
            Some(all)
        );
        assert_eq!(
            access_check(&sd, &user(1001), SECTION_MAP_READ, &section()),
            None
        );
        let root = Token::for_unix(0, 0, &[], None);
        assert_eq!(
            access_check(&sd, &root, MAXIMUM_ALLOWED, &section()),
            Some(all)
        );
    }

    #[test]
    fn aces_are_evaluated_in_order() {
        let read_write = SECTION_MAP_READ | SECTION_MAP_WRITE;
        // Deny first: the write is refused even though a later ACE allows it.
        let deny_first = sd("O:S-1-22-1-5D:(D;;GW;;;WD)(A;;GA;;;WD)");
        assert_eq!(
            access_check(&deny_first, &user(1000), read_write, &section()),
            None
        );
        assert_eq!(
            access_check(&deny_first, &user(1000), SECTION_MAP_READ, &section()),
            Some(SECTION_MAP_READ)
        );
        // Allow first: what it granted is not taken back by a later deny.
        let allow_first = sd("O:S-1-22-1-5D:(A;;GA;;;WD)(D;;GW;;;WD)");
        assert_eq!(
            access_check(&allow_first, &user(1000), read_write, &section()),
            Some(read_write)
        );
        // Groups match too (supplementary gid 200).
        let by_group = sd("O:S-1-22-1-5D:(A;;0x4;;;S-1-22-2-200)");
        assert_eq!(
            access_check(&by_group, &user(1000), SECTION_MAP_READ, &section()),
            Some(SECTION_MAP_READ)
        );
        assert_eq!(
            access_check(
                &by_group,
                &Token::for_unix(1000, 100, &[], None),
                SECTION_MAP_READ,
                &section()
            ),
            None
        );
    }

    #[test]
    fn null_empty_and_owner_rights() {
        let null = sd("D:NO_ACCESS_CONTROL");
        assert_eq!(
            access_check(&null, &user(1), GENERIC_ALL, &section()),
            Some(section().all)
        );
        let empty = sd("O:S-1-22-1-1000D:");
        let owner = user(1000);
        assert_eq!(
            access_check(&empty, &owner, SECTION_MAP_READ, &section()),
            None
        );
        assert_eq!(
            access_check(&empty, &owner, READ_CONTROL | WRITE_DAC, &section()),
            Some(READ_CONTROL | WRITE_DAC)
        );
        assert_eq!(
            access_check(&empty, &owner, MAXIMUM_ALLOWED, &section()),
            Some(READ_CONTROL | WRITE_DAC)
        );
        assert_eq!(
            access_check(&empty, &user(7), READ_CONTROL, &section()),
            None
        );
        // An OWNER RIGHTS ACE replaces the implicit rights.
        let owner_rights = sd("O:S-1-22-1-1000D:(A;;0x4;;;OW)");
        assert_eq!(
            access_check(&owner_rights, &owner, READ_CONTROL, &section()),
            None
        );
        assert_eq!(
            access_check(&owner_rights, &owner, SECTION_MAP_READ, &section()),
            Some(SECTION_MAP_READ)
        );
    }

    #[test]
    fn nothing_asked_for_is_refused_and_auditing_is_roots() {
        let open = sd("D:NO_ACCESS_CONTROL");
        assert_eq!(access_check(&open, &user(1), 0, &section()), None);
        // Bits the type does not define count as nothing.
        assert_eq!(access_check(&open, &user(1), 0x0080_0000, &section()), None);
        let all = sd("O:S-1-22-1-1D:(A;;GA;;;WD)");
        let root = Token::for_unix(0, 0, &[], None);
        assert_eq!(
            access_check(&all, &user(1), ACCESS_SYSTEM_SECURITY, &section()),
            None
        );
        assert_eq!(
            access_check(&all, &root, ACCESS_SYSTEM_SECURITY, &section()),
            Some(ACCESS_SYSTEM_SECURITY)
        );
        // An inherit-only OWNER RIGHTS ACE leaves the implicit rights alone.
        let inherit_only = sd("O:S-1-22-1-1000D:(A;IO;0x4;;;OW)");
        assert_eq!(
            access_check(&inherit_only, &user(1000), READ_CONTROL, &section()),
            Some(READ_CONTROL)
        );
        // Only the user itself (or Administrators, for one) may be named owner.
        let u = user(1000);
        assert!(u.may_own_as(&Sid::unix_user(1000)));
        assert!(!u.may_own_as(&Sid::everyone()) && !u.may_own_as(&Sid::unix_group(100)));
        assert!(u.may_group_as(&Sid::unix_group(100)));
    }

    #[test]
    fn maximum_allowed_takes_what_comes_before_a_deny() {
        let event = ObjectType::Event.generic_mapping();
        let d = sd("O:SYD:(A;;0x100000;;;WD)(D;;0x2;;;WD)(A;;GA;;;WD)");
        let granted = access_check(&d, &user(1000), MAXIMUM_ALLOWED, &event).unwrap();
        assert_eq!(granted & EVENT_MODIFY_STATE, 0);
        assert_eq!(granted & SYNCHRONIZE, SYNCHRONIZE);
        assert_eq!(granted, EVENT_ALL_ACCESS & !EVENT_MODIFY_STATE);
        assert_eq!(
            access_check(
                &d,
                &user(1000),
                MAXIMUM_ALLOWED | EVENT_MODIFY_STATE,
                &event
            ),
            None
        );
        // Inherit-only ACEs take no part.
        let inherit_only = sd("O:SYD:(A;IO;GA;;;WD)");
        assert_eq!(
            access_check(&inherit_only, &user(1), SYNCHRONIZE, &event),
            None
        );
    }
}
