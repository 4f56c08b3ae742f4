//! The security descriptor definition language (SDDL), as far as objmgr's
//! descriptors go: `O:owner`, `G:group`, `D:flags(ace)...` and
//! `S:flags(ace)...`, in any order, each at most once.
//!
//! - ACE types: `A` (allow) and `D` (deny) in a DACL; `AU` (audit), `AL`
//!   (alarm) and `ML` (mandatory label) in a SACL, kept but not enforced.
//!   Object ACEs (`OA`, `OD`, ...) and conditional ACEs are refused.
//! - ACE flags: `OI CI NP IO ID SA FA`.
//! - Rights: `0x` hex, decimal, or codes: generic `GA GR GW GX`, standard
//!   `RC SD WD WO`, file `FA FR FW FX`, key `KA KR KW KX`, directory `CC DC
//!   LC SW RP WP DT LO CR`.
//! - SIDs: `S-1-...` or the aliases `WD CO CG OW AN NU IU AU SY LS NS BA BU`.
//! - DACL flags `P`, `AI`, `AR` are accepted and not kept;
//!   `D:NO_ACCESS_CONTROL` is a NULL DACL; `D:` alone an empty one.
//!
//! # References
//! - <https://learn.microsoft.com/en-us/windows/win32/secauthz/security-descriptor-string-format>
//! - <https://learn.microsoft.com/en-us/windows/win32/secauthz/ace-strings>

use super::{
    Ace, AceKind, CONTAINER_INHERIT_ACE, Dacl, INHERIT_ONLY_ACE, INHERITED_ACE,
    NO_PROPAGATE_INHERIT_ACE, OBJECT_INHERIT_ACE, SecurityDescriptor, Sid,
};
use std::fmt;

/// Why a string is not SDDL objmgr takes (`ERROR_INVALID_PARAMETER`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SddlError(pub String);

impl fmt::Display for SddlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid SDDL: {}", self.0)
    }
}

impl std::error::Error for SddlError {}

fn error<T>(why: impl Into<String>) -> Result<T, SddlError> {
    Err(SddlError(why.into()))
}

const SID_ALIASES: &[(&str, &str)] = &[
    ("WD", "S-1-1-0"),
    ("CO", "S-1-3-0"),
    ("CG", "S-1-3-1"),
    ("OW", "S-1-3-4"),
    ("NU", "S-1-5-2"),
    ("IU", "S-1-5-4"),
    ("AN", "S-1-5-7"),
    ("AU", "S-1-5-11"),
    ("SY", "S-1-5-18"),
    ("LS", "S-1-5-19"),
    ("NS", "S-1-5-20"),
    ("BA", "S-1-5-32-544"),
    ("BU", "S-1-5-32-545"),
];

const RIGHTS: &[(&str, u32)] = &[
    ("GA", 0x1000_0000),
    ("GR", 0x8000_0000),
    ("GW", 0x4000_0000),
    ("GX", 0x2000_0000),
    ("SD", 0x0001_0000),
    ("RC", 0x0002_0000),
    ("WD", 0x0004_0000),
    ("WO", 0x0008_0000),
    ("FA", 0x001F_01FF),
    ("FR", 0x0012_0089),
    ("FW", 0x0012_0116),
    ("FX", 0x0012_00A0),
    ("KA", 0x000F_003F),
    ("KR", 0x0002_0019),
    ("KW", 0x0002_0006),
    ("KX", 0x0002_0019),
    ("CC", 0x0000_0001),
    ("DC", 0x0000_0002),
    ("LC", 0x0000_0004),
    ("SW", 0x0000_0008),
    ("RP", 0x0000_0010),
    ("WP", 0x0000_0020),
    ("DT", 0x0000_0040),
    ("LO", 0x0000_0080),
    ("CR", 0x0000_0100),
];

const ACE_FLAGS: &[(&str, u8)] = &[
    ("OI", OBJECT_INHERIT_ACE),
    ("CI", CONTAINER_INHERIT_ACE),
    ("NP", NO_PROPAGATE_INHERIT_ACE),
    ("IO", INHERIT_ONLY_ACE),
    ("ID", INHERITED_ACE),
    ("SA", 0x40),
    ("FA", 0x80),
];

fn parse_sid(text: &str) -> Result<Sid, SddlError> {
    let text = text.trim();
    if let Some((_, sid)) = SID_ALIASES.iter().find(|(alias, _)| *alias == text) {
        return Ok(Sid::parse(sid).expect("aliases are valid SIDs"));
    }
    match Sid::parse(text) {
        Some(sid) => Ok(sid),
        None => error(format!("{text:?} is not a SID")),
    }
}

/// A SID as SDDL writes it: its alias if it has one (`SY`, `WD`, ...).
pub fn format_sid(sid: &Sid) -> String {
    let text = sid.to_string();
    match SID_ALIASES.iter().find(|(_, s)| *s == text) {
        Some((alias, _)) => (*alias).to_owned(),
        None => text,
    }
}

/// Splits `text` into two-letter codes.
fn codes(text: &str) -> Result<Vec<&str>, SddlError> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return error(format!("{text:?} is not a list of two-letter codes"));
    }
    Ok((0..text.len())
        .step_by(2)
        .map(|i| &text[i..i + 2])
        .collect())
}

fn parse_rights(text: &str) -> Result<u32, SddlError> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).or(error(format!("bad rights {text:?}")));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().or(error(format!("bad rights {text:?}")));
    }
    let mut mask = 0;
    for code in codes(text)? {
        match RIGHTS.iter().find(|(c, _)| *c == code) {
            Some((_, bits)) => mask |= bits,
            None => return error(format!("unknown right {code:?}")),
        }
    }
    Ok(mask)
}

/// Codes when the mask is made only of generic and standard rights (as
/// Windows writes them), else hex.
fn format_rights(mask: u32) -> String {
    let simple = &RIGHTS[..8];
    let covered: u32 = simple.iter().map(|(_, b)| b).fold(0, |a, b| a | b);
    if mask != 0 && mask & !covered == 0 {
        return simple
            .iter()
            .filter(|(_, bits)| mask & bits != 0)
            .map(|(code, _)| *code)
            .collect();
    }
    format!("{mask:#x}")
}

fn parse_ace(text: &str, in_dacl: bool) -> Result<Ace, SddlError> {
    let fields: Vec<&str> = text.split(';').collect();
    if fields.len() != 6 {
        return error(format!("ACE ({text}) does not have six fields"));
    }
    let kind = match (fields[0].trim(), in_dacl) {
        ("A", true) => AceKind::Allow,
        ("D", true) => AceKind::Deny,
        ("AU", false) => AceKind::Audit,
        ("AL", false) => AceKind::Alarm,
        ("ML", false) => AceKind::MandatoryLabel,
        (other, _) => {
            return error(format!(
                "ACE type {other:?} is not supported in a {}",
                if in_dacl { "DACL" } else { "SACL" }
            ));
        }
    };
    let mut flags = 0u8;
    for code in codes(fields[1].trim())? {
        match ACE_FLAGS.iter().find(|(c, _)| *c == code) {
            Some((_, bit)) => flags |= bit,
            None => return error(format!("unknown ACE flag {code:?}")),
        }
    }
    if !fields[3].trim().is_empty() || !fields[4].trim().is_empty() {
        return error("object ACEs (with GUIDs) are not supported");
    }
    Ok(Ace {
        kind,
        flags,
        mask: parse_rights(fields[2])?,
        sid: parse_sid(fields[5])?,
    })
}

fn format_ace(ace: &Ace) -> String {
    let kind = match ace.kind {
        AceKind::Allow => "A",
        AceKind::Deny => "D",
        AceKind::Audit => "AU",
        AceKind::Alarm => "AL",
        AceKind::MandatoryLabel => "ML",
    };
    let flags: String = ACE_FLAGS
        .iter()
        .filter(|(_, bit)| ace.flags & bit != 0)
        .map(|(code, _)| *code)
        .collect();
    format!(
        "({kind};{flags};{};;;{})",
        format_rights(ace.mask),
        format_sid(&ace.sid)
    )
}

/// An ACL's text after `D:` or `S:`: flags, then ACEs. `None` for
/// `NO_ACCESS_CONTROL` (a NULL ACL).
fn parse_acl(text: &str, in_dacl: bool) -> Result<Option<Vec<Ace>>, SddlError> {
    let (flags, mut rest) = text.split_at(text.find('(').unwrap_or(text.len()));
    let mut null = false;
    let mut flags = flags.trim();
    while !flags.is_empty() {
        if let Some(after) = flags.strip_prefix("NO_ACCESS_CONTROL") {
            null = true;
            flags = after;
        } else if let Some(after) = flags.strip_prefix("AI").or(flags.strip_prefix("AR")) {
            flags = after;
        } else if let Some(after) = flags.strip_prefix('P') {
            flags = after;
        } else {
            return error(format!("unknown ACL flags {flags:?}"));
        }
    }
    let mut aces = Vec::new();
    while let Some(open) = rest.strip_prefix('(') {
        let Some(close) = open.find(')') else {
            return error("an ACE is not closed");
        };
        aces.push(parse_ace(&open[..close], in_dacl)?);
        rest = open[close + 1..].trim_start();
    }
    if !rest.is_empty() {
        return error(format!("unexpected {rest:?} after the ACEs"));
    }
    if null && !aces.is_empty() {
        return error("NO_ACCESS_CONTROL with ACEs");
    }
    Ok((!null).then_some(aces))
}

/// Parses an SDDL string.
pub fn parse(text: &str) -> Result<SecurityDescriptor, SddlError> {
    let mut sd = SecurityDescriptor::default();
    let mut seen = [false; 4];
    let text = text.trim();
    // Components start at "O:", "G:", "D:" or "S:" outside parentheses.
    let mut starts = Vec::new();
    let mut depth = 0;
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'O' | b'G' | b'D' | b'S' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                starts.push(i)
            }
            _ => {}
        }
    }
    if starts.first().copied().unwrap_or(text.len()) != 0 && !text.is_empty() {
        return error(format!("{text:?} does not start with O:, G:, D: or S:"));
    }
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let body = &text[start + 2..end];
        let which = "OGDS".find(bytes[start] as char).expect("one of OGDS");
        if std::mem::replace(&mut seen[which], true) {
            return error(format!("{}: given twice", bytes[start] as char));
        }
        match bytes[start] {
            b'O' => sd.owner = Some(parse_sid(body)?),
            b'G' => sd.group = Some(parse_sid(body)?),
            b'D' => {
                sd.dacl = match parse_acl(body, true)? {
                    Some(aces) => Dacl::Aces(aces),
                    None => Dacl::Null,
                }
            }
            _ => sd.sacl = parse_acl(body, false)?,
        }
    }
    Ok(sd)
}

/// Writes a descriptor as SDDL (parts it does not have are left out).
pub fn format(sd: &SecurityDescriptor) -> String {
    let mut out = String::new();
    if let Some(owner) = &sd.owner {
        out.push_str(&format!("O:{}", format_sid(owner)));
    }
    if let Some(group) = &sd.group {
        out.push_str(&format!("G:{}", format_sid(group)));
    }
    match &sd.dacl {
        Dacl::NotPresent => {}
        Dacl::Null => out.push_str("D:NO_ACCESS_CONTROL"),
        Dacl::Aces(aces) => {
            out.push_str("D:");
            aces.iter().for_each(|ace| out.push_str(&format_ace(ace)));
        }
    }
    if let Some(aces) = &sd.sacl {
        out.push_str("S:");
        aces.iter().for_each(|ace| out.push_str(&format_ace(ace)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_form_round_trips() {
        for text in [
            "O:SYG:BAD:(A;;GA;;;SY)(A;;GA;;;BA)",
            "O:S-1-22-1-1000G:S-1-22-2-1000D:(A;;GRGW;;;S-1-22-1-1000)(D;;GW;;;WD)",
            "D:NO_ACCESS_CONTROL",
            "D:",
            "O:BAD:(A;OICI;0x1f0003;;;AU)(A;IOID;SDRCWDWO;;;CO)(D;NP;0x2;;;OW)",
            "S:(AU;SAFA;GA;;;WD)(ML;;0x1;;;S-1-16-4096)",
            "G:BU",
        ] {
            let sd = parse(text).unwrap();
            assert_eq!(format(&sd), text);
            assert_eq!(parse(&format(&sd)).unwrap(), sd);
        }
    }

    #[test]
    fn codes_and_numbers_mean_the_same_rights() {
        let by_code = parse("D:(A;;FA;;;WD)").unwrap();
        let by_hex = parse("D:(A;;0x1F01FF;;;WD)").unwrap();
        let by_decimal = parse("D:(A;;2032127;;;WD)").unwrap();
        assert_eq!(by_code, by_hex);
        assert_eq!(by_code, by_decimal);
        // Order of components does not matter; flags are accepted.
        let a = parse("D:PAI(A;;GA;;;WD)O:SY").unwrap();
        assert_eq!(format(&a), "O:SYD:(A;;GA;;;WD)");
    }

    #[test]
    fn what_is_not_sddl_is_refused() {
        for bad in [
            "X:SY",
            "O:",
            "O:XX",
            "O:SYO:SY",
            "D:(A;;GA;;WD)",
            "D:(Q;;GA;;;WD)",
            "D:(OA;;GA;;;WD)",
            "D:(A;ZZ;GA;;;WD)",
            "D:(A;;QQ;;;WD)",
            "D:(A;;GA;11111111-1111-1111-1111-111111111111;;WD)",
            "D:(A;;GA;;;WD",
            "D:(A;;GA;;;WD)junk",
            "D:NO_ACCESS_CONTROL(A;;GA;;;WD)",
            "S:(A;;GA;;;WD)",
            "junk",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
