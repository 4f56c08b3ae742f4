//! Win32 error codes: the one currency of failure across objmgr.
//!
//! Every failure that reaches a user — through the Rust API, the C ABI's
//! `GetLastError`, or the CLI's stderr — is a [`Win32Error`] code from
//! Microsoft's "System Error Codes" list, so that ported code sees exactly the
//! values it checks for on Windows.

use std::fmt;

/// A Win32 error code (`DWORD` as returned by `GetLastError`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Win32Error(pub u32);

macro_rules! win32_errors {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        $(
            #[doc = $text]
            pub const $name: Win32Error = Win32Error($value);
        )*

        impl Win32Error {
            /// The symbolic name (`"ERROR_FILE_NOT_FOUND"`), if the code is one objmgr knows.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The system message text Windows gives for the code.
            pub fn message(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => "Unknown error.",
                }
            }
        }
    };
}

win32_errors! {
    ERROR_SUCCESS = 0, "The operation completed successfully.";
    ERROR_INVALID_FUNCTION = 1, "Incorrect function.";
    ERROR_FILE_NOT_FOUND = 2, "The system cannot find the file specified.";
    ERROR_PATH_NOT_FOUND = 3, "The system cannot find the path specified.";
    ERROR_TOO_MANY_OPEN_FILES = 4, "The system cannot open the file.";
    ERROR_ACCESS_DENIED = 5, "Access is denied.";
    ERROR_INVALID_HANDLE = 6, "The handle is invalid.";
    ERROR_NOT_ENOUGH_MEMORY = 8, "Not enough memory resources are available to process this command.";
    ERROR_INVALID_DATA = 13, "The data is invalid.";
    ERROR_OUTOFMEMORY = 14, "Not enough memory resources are available to complete this operation.";
    ERROR_NOT_SUPPORTED = 50, "The request is not supported.";
    ERROR_LOCK_VIOLATION = 33, "The process cannot access the file because another process has locked a portion of the file.";
    ERROR_NOT_LOCKED = 158, "The segment is already unlocked.";
    ERROR_INVALID_LOCK_RANGE = 307, "A requested file lock operation cannot be processed due to an invalid byte range.";
    ERROR_NOT_SAME_DEVICE = 17, "The system cannot move the file to a different disk drive.";
    ERROR_GEN_FAILURE = 31, "A device attached to the system is not functioning.";
    ERROR_DIR_NOT_EMPTY = 145, "The directory is not empty.";
    ERROR_DIRECTORY = 267, "The directory name is invalid.";
    ERROR_MOD_NOT_FOUND = 126, "The specified module could not be found.";
    ERROR_PROC_NOT_FOUND = 127, "The specified procedure could not be found.";
    ERROR_ENVVAR_NOT_FOUND = 203, "The system could not find the environment option that was entered.";
    ERROR_TIMEOUT = 1460, "This operation returned because the timeout period expired.";
    ERROR_RESOURCE_TYPE_NOT_FOUND = 1813, "The specified resource type cannot be found in the image file.";
    ERROR_MR_MID_NOT_FOUND = 317, "The system cannot find message text for message number 0x%1 in the message file for %2.";
    ERROR_USER_MAPPED_FILE = 1224, "The requested operation cannot be performed on a file with a user-mapped section open.";
    ERROR_BAD_LENGTH = 24, "The program issued a command but the command length is incorrect.";
    ERROR_MORE_DATA = 234, "More data is available.";
    ERROR_SHARING_VIOLATION = 32, "The process cannot access the file because it is being used by another process.";
    ERROR_HANDLE_EOF = 38, "Reached the end of the file.";
    ERROR_FILE_EXISTS = 80, "The file exists.";
    ERROR_DUP_NAME = 52, "You were not connected because a duplicate name exists on the network.";
    ERROR_INVALID_PARAMETER = 87, "The parameter is incorrect.";
    ERROR_NEGATIVE_SEEK = 131, "An attempt was made to move the file pointer before the beginning of the file.";
    ERROR_BROKEN_PIPE = 109, "The pipe has been ended.";
    ERROR_BUFFER_OVERFLOW = 111, "The file name is too long.";
    ERROR_INSUFFICIENT_BUFFER = 122, "The data area passed to a system call is too small.";
    ERROR_INVALID_NAME = 123, "The filename, directory name, or volume label syntax is incorrect.";
    ERROR_SIGNAL_REFCOUNT_EXCEEDED = 156, "The recipient process has refused the signal.";
    ERROR_ALREADY_EXISTS = 183, "Cannot create a file when that file already exists.";
    ERROR_BAD_EXE_FORMAT = 193, "The specified image file is not a valid application.";
    ERROR_FILENAME_EXCED_RANGE = 206, "The filename or extension is too long.";
    ERROR_PIPE_NOT_CONNECTED = 233, "No process is on the other end of the pipe.";
    ERROR_NOT_OWNER = 288, "Attempt to release mutex not owned by caller.";
    ERROR_TOO_MANY_POSTS = 298, "Too many posts were made to a semaphore.";
    ERROR_NOACCESS = 998, "Invalid access to memory location.";
    ERROR_INVALID_ADDRESS = 487, "Attempt to access invalid address.";
    ERROR_FILE_INVALID = 1006, "The volume for a file has been externally altered so that the opened file is no longer valid.";
    ERROR_RETRY = 1237, "The operation could not be completed. A retry should be performed.";
    ERROR_SERVICE_NOT_ACTIVE = 1062, "The service has not been started.";
    ERROR_MAPPED_ALIGNMENT = 1132, "The base address or the file offset specified does not have the proper alignment.";
    ERROR_INTERNAL_ERROR = 1359, "An internal error occurred.";
    ERROR_PRIVILEGE_NOT_HELD = 1314, "A required privilege is not held by the client.";
    ERROR_NO_SYSTEM_RESOURCES = 1450, "Insufficient system resources exist to complete the requested service.";
    ERROR_COMMITMENT_LIMIT = 1455, "The paging file is too small for this operation to complete.";
    ERROR_UNKNOWN_REVISION = 1305, "The revision level is unknown.";
    ERROR_REVISION_MISMATCH = 1306, "Indicates two revision levels are incompatible.";
    ERROR_INVALID_OWNER = 1307, "This security ID may not be assigned as the owner of this object.";
    ERROR_INVALID_PRIMARY_GROUP = 1308, "This security ID may not be assigned as the primary group of an object.";
    ERROR_NONE_MAPPED = 1332, "No mapping between account names and security IDs was done.";
    ERROR_INVALID_ACL = 1336, "The access control list (ACL) structure is invalid.";
    ERROR_INVALID_SID = 1337, "The security ID structure is invalid.";
    ERROR_INVALID_SECURITY_DESCR = 1338, "The security descriptor structure is invalid.";
    ERROR_ALLOTTED_SPACE_EXCEEDED = 1344, "No more memory is available for security information updates.";
    ERROR_NOT_ENOUGH_QUOTA = 1816, "Not enough quota is available to process this command.";
}

impl Win32Error {
    /// The raw `DWORD` value.
    pub const fn code(self) -> u32 {
        self.0
    }

    /// Translates a Linux `errno` met while serving a request into the Win32
    /// code Windows gives for the same condition.
    pub fn from_errno(errno: i32) -> Win32Error {
        // Values are Linux errno numbers; named here to keep the table readable.
        const ENOENT: i32 = 2;
        const ENOEXEC: i32 = 8;
        const EBADF: i32 = 9;
        const ENOMEM: i32 = 12;
        const EACCES: i32 = 13;
        const EFAULT: i32 = 14;
        const EEXIST: i32 = 17;
        const EINVAL: i32 = 22;
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        const EFBIG: i32 = 27;
        const ENOSPC: i32 = 28;
        const EPERM: i32 = 1;
        const ENAMETOOLONG: i32 = 36;
        const EOVERFLOW: i32 = 75;
        const EMSGSIZE: i32 = 90;
        const ENOBUFS: i32 = 105;
        const ETOOMANYREFS: i32 = 109;
        match errno {
            ENOENT => ERROR_FILE_NOT_FOUND,
            ENOEXEC => ERROR_BAD_EXE_FORMAT,
            EBADF => ERROR_INVALID_HANDLE,
            ENOMEM => ERROR_NOT_ENOUGH_MEMORY,
            EACCES | EPERM => ERROR_ACCESS_DENIED,
            EFAULT => ERROR_INVALID_ADDRESS,
            EEXIST => ERROR_ALREADY_EXISTS,
            EINVAL => ERROR_INVALID_PARAMETER,
            ENFILE | EMFILE => ERROR_TOO_MANY_OPEN_FILES,
            EFBIG | EOVERFLOW => ERROR_NOT_ENOUGH_MEMORY,
            ENOSPC => ERROR_COMMITMENT_LIMIT,
            ENAMETOOLONG => ERROR_FILENAME_EXCED_RANGE,
            // A socket's: no buffer for a message, one too large, or too
            // many descriptors in flight.
            ENOBUFS => ERROR_NO_SYSTEM_RESOURCES,
            EMSGSIZE => ERROR_INVALID_PARAMETER,
            ETOOMANYREFS => ERROR_TOO_MANY_OPEN_FILES,
            _ => ERROR_INVALID_FUNCTION,
        }
    }
}

impl fmt::Debug for Win32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "Win32Error({})", self.0),
        }
    }
}

impl fmt::Display for Win32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({}): {}", self.0, self.message()),
            None => write!(f, "error {}", self.0),
        }
    }
}

impl std::error::Error for Win32Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages_round_trip() {
        assert_eq!(ERROR_ALREADY_EXISTS.code(), 183);
        assert_eq!(ERROR_ALREADY_EXISTS.name(), Some("ERROR_ALREADY_EXISTS"));
        assert_eq!(
            ERROR_FILE_NOT_FOUND.to_string(),
            "ERROR_FILE_NOT_FOUND (2): The system cannot find the file specified."
        );
        assert_eq!(Win32Error(99999).name(), None);
        assert_eq!(format!("{:?}", Win32Error(99999)), "Win32Error(99999)");
    }

    #[test]
    fn errno_mapping_covers_resource_exhaustion() {
        assert_eq!(Win32Error::from_errno(24), ERROR_TOO_MANY_OPEN_FILES);
        assert_eq!(Win32Error::from_errno(12), ERROR_NOT_ENOUGH_MEMORY);
        assert_eq!(Win32Error::from_errno(13), ERROR_ACCESS_DENIED);
        // A send that did not happen (no buffer, too large, too many fds).
        assert_eq!(Win32Error::from_errno(105), ERROR_NO_SYSTEM_RESOURCES);
        assert_eq!(Win32Error::from_errno(90), ERROR_INVALID_PARAMETER);
        assert_eq!(Win32Error::from_errno(109), ERROR_TOO_MANY_OPEN_FILES);
        assert_eq!(Win32Error::from_errno(9999), ERROR_INVALID_FUNCTION);
    }
}
