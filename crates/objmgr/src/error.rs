//! The one error type of the Rust API: a Win32 error code plus context.

use std::fmt;

pub use objmgr_proto::error::*;

/// A failed objmgr operation: the Win32 error code Windows gives for the same
/// failure (what `GetLastError` returns through the C ABI), and what was being
/// done.
///
/// One pointer wide, so that the `Result` of a wait or a signal comes back
/// in registers: on the hot path a 32-byte result written to and read back
/// from the stack costs a measurable part of an uncontended operation.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Detail>);

#[derive(Clone, PartialEq, Eq)]
struct Detail {
    code: Win32Error,
    context: String,
}

/// `Result` with objmgr's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a description of what failed.
    #[cold]
    pub fn new(code: Win32Error, context: impl Into<String>) -> Error {
        Error(Box::new(Detail {
            code,
            context: context.into(),
        }))
    }

    /// The Win32 error code.
    pub fn code(&self) -> Win32Error {
        self.0.code
    }

    /// What was being done, with any detail the broker added.
    pub fn context(&self) -> &str {
        &self.0.context
    }

    /// The same error, its context prefixed with what the caller was doing.
    pub(crate) fn within(self, what: &str) -> Error {
        Error::new(self.code(), format!("{what}: {}", self.context()))
    }

    pub(crate) fn from_errno(e: rustix::io::Errno, context: impl Into<String>) -> Error {
        Error::new(Win32Error::from_errno(e.raw_os_error()), context)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {:?})", self.code(), self.context())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context(), self.code())
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::other(e)
    }
}
