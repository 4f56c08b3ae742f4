//! Object names: the `Global\`, `Local\` and unprefixed forms that the
//! `Create*`/`Open*` functions take, turned into paths in the object namespace.
//!
//! | name given            | path in the namespace                  |
//! |-----------------------|----------------------------------------|
//! | `Global\Foo`          | `\BaseNamedObjects\Foo`                |
//! | `Local\Foo`, `Foo`    | `\Sessions\<n>\BaseNamedObjects\Foo`   |
//!
//! Names are case-sensitive, including the prefix (as on Windows, where
//! `global\Foo` names a directory that does not exist).

use crate::error::*;
use crate::section::MAX_PATH;
use std::fmt;

/// Which `BaseNamedObjects` directory a name lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `Global\`: shared by every session.
    Global,
    /// `Local\` or no prefix: the caller's session.
    Local,
}

/// A validated object name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName {
    pub scope: Scope,
    /// The leaf name inside the scope's directory (never empty, no `\`).
    pub leaf: String,
}

impl ObjectName {
    /// Parses a name as given to `CreateFileMapping`/`OpenFileMapping`.
    ///
    /// Returns `Ok(None)` for the empty string, which `Create*` treats as "no
    /// name" (and `Open*` rejects with `ERROR_INVALID_HANDLE`, since it names
    /// the directory itself). Errors, as Windows reports them: a name of
    /// `MAX_PATH` or more UTF-16 units: `ERROR_FILENAME_EXCED_RANGE`; a prefix
    /// with nothing after it or a NUL character: `ERROR_INVALID_NAME`; an
    /// unknown `Prefix\` or a `\` inside the leaf: `ERROR_PATH_NOT_FOUND`.
    pub fn parse(name: &str) -> Result<Option<ObjectName>, Win32Error> {
        if name.is_empty() {
            return Ok(None);
        }
        if name.encode_utf16().count() >= MAX_PATH {
            return Err(ERROR_FILENAME_EXCED_RANGE);
        }
        if name.contains('\0') {
            return Err(ERROR_INVALID_NAME);
        }
        let (scope, leaf) = if let Some(rest) = name.strip_prefix("Global\\") {
            (Scope::Global, rest)
        } else if let Some(rest) = name.strip_prefix("Local\\") {
            (Scope::Local, rest)
        } else {
            (Scope::Local, name)
        };
        if leaf.is_empty() {
            return Err(ERROR_INVALID_NAME);
        }
        if leaf.contains('\\') {
            return Err(ERROR_PATH_NOT_FOUND);
        }
        Ok(Some(ObjectName {
            scope,
            leaf: leaf.to_owned(),
        }))
    }

    /// The full path in the namespace, for session `session`.
    pub fn path(&self, session: u32) -> String {
        match self.scope {
            Scope::Global => format!("\\BaseNamedObjects\\{}", self.leaf),
            Scope::Local => format!("\\Sessions\\{session}\\BaseNamedObjects\\{}", self.leaf),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Scope::Global => write!(f, "Global\\{}", self.leaf),
            Scope::Local => write!(f, "Local\\{}", self.leaf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<Option<String>, Win32Error> {
        ObjectName::parse(name).map(|n| n.map(|n| n.path(1)))
    }

    #[test]
    fn prefixes_choose_the_directory() {
        assert_eq!(
            parse("Global\\MyFileMappingObject").unwrap().unwrap(),
            "\\BaseNamedObjects\\MyFileMappingObject"
        );
        assert_eq!(
            parse("Local\\x").unwrap().unwrap(),
            "\\Sessions\\1\\BaseNamedObjects\\x"
        );
        assert_eq!(parse("x").unwrap(), parse("Local\\x").unwrap());
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn bad_names_get_windows_errors() {
        assert_eq!(parse("Global\\"), Err(ERROR_INVALID_NAME));
        assert_eq!(parse("Local\\"), Err(ERROR_INVALID_NAME));
        assert_eq!(parse("Foo\\bar"), Err(ERROR_PATH_NOT_FOUND));
        assert_eq!(parse("global\\lower"), Err(ERROR_PATH_NOT_FOUND));
        assert_eq!(parse("Local\\a\\b"), Err(ERROR_PATH_NOT_FOUND));
        assert_eq!(parse("a\0b"), Err(ERROR_INVALID_NAME));
        assert!(parse(&"b".repeat(259)).unwrap().is_some());
        assert_eq!(parse(&"b".repeat(260)), Err(ERROR_FILENAME_EXCED_RANGE));
        // Length counts UTF-16 units, as the W functions do.
        assert_eq!(
            parse(&"\u{1F600}".repeat(130)),
            Err(ERROR_FILENAME_EXCED_RANGE)
        );
    }
}
