//! Files opened through objmgr: share modes (`dwShareMode`), the rule that
//! decides whether two opens of one file may coexist, and the constants of
//! `CreateFile` that the broker needs.

use crate::access::{DELETE, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_WRITE_DATA};

pub const FILE_SHARE_READ: u32 = 0x1;
pub const FILE_SHARE_WRITE: u32 = 0x2;
pub const FILE_SHARE_DELETE: u32 = 0x4;
pub const FILE_SHARE_VALID: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

/// The uses of a file that share modes govern: reading (data or execute),
/// writing (data or append) and deleting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uses {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

impl Uses {
    /// What an open with `access` (specific rights) uses the file for.
    pub fn of(access: u32) -> Uses {
        Uses {
            read: access & (FILE_READ_DATA | FILE_EXECUTE) != 0,
            write: access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0,
            delete: access & DELETE != 0,
        }
    }

    /// Whether an fd that may read (`readable`) and write (`writable`)
    /// as its open mode says is enough for these uses.
    pub fn fit(self, readable: bool, writable: bool) -> bool {
        (readable || !self.read) && (writable || !self.write)
    }

    fn none(self) -> bool {
        !(self.read || self.write || self.delete)
    }

    /// Whether `share` (another open's share mode) allows these uses.
    fn allowed_by(self, share: u32) -> bool {
        (!self.read || share & FILE_SHARE_READ != 0)
            && (!self.write || share & FILE_SHARE_WRITE != 0)
            && (!self.delete || share & FILE_SHARE_DELETE != 0)
    }
}

/// Whether an open with `access`/`share` may coexist with an existing one
/// with `their_access`/`their_share`: each must allow what the other uses,
/// as Windows checks (`ERROR_SHARING_VIOLATION` otherwise).
pub fn compatible(access: u32, share: u32, their_access: u32, their_share: u32) -> bool {
    let (mine, theirs) = (Uses::of(access), Uses::of(their_access));
    // An open that uses no data (attributes only) takes part in no share
    // check, on either side.
    if mine.none() || theirs.none() {
        return true;
    }
    mine.allowed_by(their_share) && theirs.allowed_by(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_modes_follow_windows() {
        let (r, w) = (FILE_READ_DATA, FILE_WRITE_DATA);
        // Two readers that share reading.
        assert!(compatible(r, FILE_SHARE_READ, r, FILE_SHARE_READ));
        // A writer needs the reader to share writing, and must share reading.
        assert!(!compatible(w, FILE_SHARE_READ, r, FILE_SHARE_READ));
        assert!(compatible(
            w,
            FILE_SHARE_READ,
            r,
            FILE_SHARE_READ | FILE_SHARE_WRITE
        ));
        assert!(!compatible(w, 0, r, FILE_SHARE_READ | FILE_SHARE_WRITE));
        // An open that uses no data (attributes only) takes no part.
        assert!(compatible(0x80, 0, w, 0));
        assert!(compatible(w, 0, 0x80, 0));
        // Deleting needs FILE_SHARE_DELETE from the others.
        assert!(!compatible(DELETE, FILE_SHARE_VALID, r, FILE_SHARE_READ));
        assert!(compatible(DELETE, FILE_SHARE_VALID, r, FILE_SHARE_VALID));
    }
}
