//! Section (file-mapping) flags and the pure rules that validate them.
//!
//! These functions hold the decisions Windows makes in `CreateFileMapping` and
//! `MapViewOfFile` about protections, attributes and access, so that the broker
//! and the client apply one set of rules (and unit tests can pin them down).

use crate::access::*;
use crate::error::*;

pub const PAGE_NOACCESS: u32 = 0x01;
pub const PAGE_READONLY: u32 = 0x02;
pub const PAGE_READWRITE: u32 = 0x04;
pub const PAGE_WRITECOPY: u32 = 0x08;
pub const PAGE_EXECUTE: u32 = 0x10;
pub const PAGE_EXECUTE_READ: u32 = 0x20;
pub const PAGE_EXECUTE_READWRITE: u32 = 0x40;
pub const PAGE_EXECUTE_WRITECOPY: u32 = 0x80;

pub const SEC_PARTITION_OWNER_HANDLE: u32 = 0x0004_0000;
pub const SEC_64K_PAGES: u32 = 0x0008_0000;
pub const SEC_FILE: u32 = 0x0080_0000;
pub const SEC_IMAGE: u32 = 0x0100_0000;
pub const SEC_PROTECTED_IMAGE: u32 = 0x0200_0000;
pub const SEC_RESERVE: u32 = 0x0400_0000;
pub const SEC_COMMIT: u32 = 0x0800_0000;
pub const SEC_NOCACHE: u32 = 0x1000_0000;
pub const SEC_WRITECOMBINE: u32 = 0x4000_0000;
pub const SEC_LARGE_PAGES: u32 = 0x8000_0000;

/// What a section's descriptor lets its holder do, least first: with each
/// handle the broker gives the least its access needs, so the kernel
/// enforces the access too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FdReach {
    /// Maps nothing (`O_PATH`): the handle may only be queried, duplicated
    /// and closed.
    Query = 0,
    /// Maps for reading (and executing).
    Read = 1,
    /// Maps for writing.
    Write = 2,
}

impl FdReach {
    /// The descriptor a handle with `access` (specific section rights) gets.
    pub fn needed_by(access: u32) -> FdReach {
        if access & SECTION_MAP_WRITE != 0 {
            FdReach::Write
        } else if access & (SECTION_MAP_READ | SECTION_MAP_EXECUTE) != 0 {
            FdReach::Read
        } else {
            FdReach::Query
        }
    }

    /// What `fd` can do, by its open mode (`O_PATH`, or one that cannot
    /// be read: nothing).
    pub fn of_fd(fd: impl std::os::fd::AsFd) -> FdReach {
        use rustix::fs::OFlags;
        match rustix::fs::fcntl_getfl(fd) {
            Ok(mode) if mode.contains(OFlags::PATH) => FdReach::Query,
            Ok(mode) if mode & OFlags::RWMODE == OFlags::RDONLY => FdReach::Read,
            Ok(mode) if mode & OFlags::RWMODE == OFlags::RDWR => FdReach::Write,
            _ => FdReach::Query,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<FdReach> {
        [FdReach::Query, FdReach::Read, FdReach::Write]
            .into_iter()
            .find(|reach| reach.code() == code)
    }
}

pub const FILE_MAP_COPY: u32 = SECTION_QUERY;
pub const FILE_MAP_WRITE: u32 = SECTION_MAP_WRITE;
pub const FILE_MAP_READ: u32 = SECTION_MAP_READ;
pub const FILE_MAP_ALL_ACCESS: u32 = SECTION_ALL_ACCESS;
pub const FILE_MAP_EXECUTE: u32 = SECTION_MAP_EXECUTE_EXPLICIT;
pub const FILE_MAP_LARGE_PAGES: u32 = 0x2000_0000;
pub const FILE_MAP_TARGETS_INVALID: u32 = 0x4000_0000;
pub const FILE_MAP_RESERVE: u32 = 0x8000_0000;

/// The allocation granularity `GetSystemInfo` reports: view offsets and
/// caller-chosen base addresses are multiples of it.
pub const ALLOCATION_GRANULARITY: u64 = 64 * 1024;
/// The page size `GetSystemInfo` reports.
pub const PAGE_SIZE: u64 = 4096;
/// Longest object name, in UTF-16 units, that the `Create*`/`Open*` functions accept.
pub const MAX_PATH: usize = 260;

/// The page protection of a section (the low byte of `flProtect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageProtection {
    ReadOnly,
    ReadWrite,
    WriteCopy,
    ExecuteRead,
    ExecuteReadWrite,
    ExecuteWriteCopy,
}

impl PageProtection {
    /// The `PAGE_*` value.
    pub const fn bits(self) -> u32 {
        match self {
            PageProtection::ReadOnly => PAGE_READONLY,
            PageProtection::ReadWrite => PAGE_READWRITE,
            PageProtection::WriteCopy => PAGE_WRITECOPY,
            PageProtection::ExecuteRead => PAGE_EXECUTE_READ,
            PageProtection::ExecuteReadWrite => PAGE_EXECUTE_READWRITE,
            PageProtection::ExecuteWriteCopy => PAGE_EXECUTE_WRITECOPY,
        }
    }

    /// Parses the `PAGE_*` value `CreateFileMapping` accepts.
    pub fn from_bits(bits: u32) -> Option<PageProtection> {
        Some(match bits {
            PAGE_READONLY => PageProtection::ReadOnly,
            PAGE_READWRITE => PageProtection::ReadWrite,
            PAGE_WRITECOPY => PageProtection::WriteCopy,
            PAGE_EXECUTE_READ => PageProtection::ExecuteRead,
            PAGE_EXECUTE_READWRITE => PageProtection::ExecuteReadWrite,
            PAGE_EXECUTE_WRITECOPY => PageProtection::ExecuteWriteCopy,
            _ => return None,
        })
    }

    /// Whether shared (not copy-on-write) writable views are possible.
    pub const fn allows_shared_write(self) -> bool {
        matches!(
            self,
            PageProtection::ReadWrite | PageProtection::ExecuteReadWrite
        )
    }

    /// Whether executable views are possible.
    pub const fn allows_execute(self) -> bool {
        matches!(
            self,
            PageProtection::ExecuteRead
                | PageProtection::ExecuteReadWrite
                | PageProtection::ExecuteWriteCopy
        )
    }

    /// The access `CreateFileMapping` grants its caller for this protection.
    pub const fn creator_access(self) -> u32 {
        let mut access = STANDARD_RIGHTS_REQUIRED | SECTION_QUERY | SECTION_MAP_READ;
        if self.allows_shared_write() {
            access |= SECTION_MAP_WRITE;
        }
        if self.allows_execute() {
            access |= SECTION_MAP_EXECUTE;
        }
        access
    }

    /// The name of the `PAGE_*` constant.
    pub const fn name(self) -> &'static str {
        match self {
            PageProtection::ReadOnly => "PAGE_READONLY",
            PageProtection::ReadWrite => "PAGE_READWRITE",
            PageProtection::WriteCopy => "PAGE_WRITECOPY",
            PageProtection::ExecuteRead => "PAGE_EXECUTE_READ",
            PageProtection::ExecuteReadWrite => "PAGE_EXECUTE_READWRITE",
            PageProtection::ExecuteWriteCopy => "PAGE_EXECUTE_WRITECOPY",
        }
    }
}

/// The `SEC_*` attributes objmgr honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SectionAttributes {
    /// `SEC_RESERVE` was given (pages are committed on first touch on Linux anyway).
    pub reserve: bool,
    /// `SEC_LARGE_PAGES`: back the section with huge pages.
    pub large_pages: bool,
    /// `SEC_NOCACHE` or `SEC_WRITECOMBINE`: recorded; caching attributes have no
    /// user-space meaning for memory-backed pages on Linux.
    pub cache_hint: bool,
}

/// Validates `flProtect` as `CreateFileMapping` does.
///
/// Errors: an invalid or combined page protection, `SEC_RESERVE` with
/// `SEC_COMMIT`, or unknown bits: `ERROR_INVALID_PARAMETER`; `SEC_IMAGE`
/// (objmgr does not load executable images): `ERROR_BAD_EXE_FORMAT`.
pub fn parse_protection(
    fl_protect: u32,
) -> Result<(PageProtection, SectionAttributes), Win32Error> {
    const KNOWN_SEC: u32 =
        SEC_RESERVE | SEC_COMMIT | SEC_NOCACHE | SEC_WRITECOMBINE | SEC_LARGE_PAGES | SEC_IMAGE;
    let page = fl_protect & 0xFF;
    let sec = fl_protect & !0xFF;
    if sec & !KNOWN_SEC != 0 {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let protection = PageProtection::from_bits(page).ok_or(ERROR_INVALID_PARAMETER)?;
    let commitment = sec & (SEC_RESERVE | SEC_COMMIT);
    if sec & SEC_IMAGE != 0 {
        // An image section takes no commitment flag; objmgr loads no images.
        return Err(if commitment != 0 {
            ERROR_INVALID_PARAMETER
        } else {
            ERROR_BAD_EXE_FORMAT
        });
    }
    if commitment == SEC_RESERVE | SEC_COMMIT {
        return Err(ERROR_INVALID_PARAMETER);
    }
    // Cache and page-size attributes qualify an explicit commitment.
    if sec & (SEC_NOCACHE | SEC_WRITECOMBINE | SEC_LARGE_PAGES) != 0 && commitment == 0 {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let attributes = SectionAttributes {
        reserve: sec & SEC_RESERVE != 0,
        large_pages: sec & SEC_LARGE_PAGES != 0,
        cache_hint: sec & (SEC_NOCACHE | SEC_WRITECOMBINE) != 0,
    };
    if attributes.large_pages && attributes.reserve {
        // Large-page sections must be committed (SEC_COMMIT), as documented.
        return Err(ERROR_INVALID_PARAMETER);
    }
    Ok((protection, attributes))
}

impl SectionAttributes {
    /// The `SEC_*` bits for these attributes.
    pub const fn bits(self) -> u32 {
        let mut bits = if self.reserve {
            SEC_RESERVE
        } else {
            SEC_COMMIT
        };
        if self.large_pages {
            bits |= SEC_LARGE_PAGES;
        }
        if self.cache_hint {
            bits |= SEC_NOCACHE;
        }
        bits
    }
}

/// What kind of view a `FILE_MAP_*` mask asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewKind {
    /// Its pages can be read (every view but one asked with no read, write
    /// or copy right, which Windows maps with `PAGE_NOACCESS`).
    pub readable: bool,
    /// Writable and shared with every other view (`FILE_MAP_WRITE`).
    pub write: bool,
    /// Private copy-on-write (`FILE_MAP_COPY`).
    pub copy: bool,
    /// Executable (`FILE_MAP_EXECUTE`).
    pub execute: bool,
}

impl ViewKind {
    /// Parses `dwDesiredAccess` of `MapViewOfFile` and checks it against the
    /// handle's granted access and the section's protection, as Windows does:
    ///
    /// - `FILE_MAP_WRITE` (with anything else, also `FILE_MAP_ALL_ACCESS`):
    ///   a shared read/write view; else `FILE_MAP_READ`: read-only; else
    ///   `FILE_MAP_COPY` alone (or with `FILE_MAP_EXECUTE`): copy-on-write;
    ///   else (0, execute rights alone, `FILE_MAP_COPY | SECTION_MAP_EXECUTE`):
    ///   a view whose pages have no access (`PAGE_NOACCESS`).
    /// - `FILE_MAP_EXECUTE` makes a readable view executable.
    /// - The handle must grant `SECTION_MAP_WRITE` for a writable view,
    ///   `SECTION_MAP_READ` for any other, and `SECTION_MAP_EXECUTE` for an
    ///   executable one; the section's protection must allow a shared write
    ///   or execution: `ERROR_ACCESS_DENIED` otherwise. Unknown bits:
    ///   `ERROR_INVALID_PARAMETER`.
    pub fn check(
        desired: u32,
        granted: AccessMask,
        protection: PageProtection,
    ) -> Result<ViewKind, Win32Error> {
        const KNOWN: u32 = FILE_MAP_ALL_ACCESS
            | FILE_MAP_EXECUTE
            | FILE_MAP_LARGE_PAGES
            | FILE_MAP_TARGETS_INVALID
            | FILE_MAP_RESERVE;
        if desired & !KNOWN != 0 {
            return Err(ERROR_INVALID_PARAMETER);
        }
        let write = desired & FILE_MAP_WRITE != 0;
        let read = desired & FILE_MAP_READ != 0;
        // Copy-on-write only when FILE_MAP_COPY is all that is asked
        // (besides FILE_MAP_EXECUTE and the flags).
        let flags = FILE_MAP_LARGE_PAGES | FILE_MAP_TARGETS_INVALID | FILE_MAP_RESERVE;
        let copy = desired & !(FILE_MAP_EXECUTE | flags) == FILE_MAP_COPY;
        let readable = write || read || copy;
        let execute = readable && desired & FILE_MAP_EXECUTE != 0;
        let mut needed = if write {
            SECTION_MAP_WRITE
        } else {
            SECTION_MAP_READ
        };
        if execute {
            needed |= SECTION_MAP_EXECUTE;
        }
        if !granted.contains(needed) {
            return Err(ERROR_ACCESS_DENIED);
        }
        if (write && !protection.allows_shared_write()) || (execute && !protection.allows_execute())
        {
            return Err(ERROR_ACCESS_DENIED);
        }
        Ok(ViewKind {
            readable,
            write,
            copy,
            execute,
        })
    }

    /// The `PAGE_*` protection of the view's pages.
    pub const fn protection(self) -> u32 {
        match (self.readable, self.write, self.copy, self.execute) {
            (false, ..) => PAGE_NOACCESS,
            (true, true, _, false) => PAGE_READWRITE,
            (true, true, _, true) => PAGE_EXECUTE_READWRITE,
            (true, false, true, false) => PAGE_WRITECOPY,
            (true, false, true, true) => PAGE_EXECUTE_WRITECOPY,
            (true, false, false, false) => PAGE_READONLY,
            (true, false, false, true) => PAGE_EXECUTE_READ,
        }
    }
}

/// Checks a view's offset and length against the section size, returning the
/// length to map (`size == 0` means "to the end of the section"). A view may
/// reach to the end of the section's last page (`page` bytes), as on Windows:
/// a 100-byte section has a 4096-byte view.
///
/// Errors: an offset that is not a multiple of the allocation granularity:
/// `ERROR_MAPPED_ALIGNMENT`; an offset at or past the end with `size == 0`:
/// `ERROR_INVALID_PARAMETER`; a view that reaches past the end:
/// `ERROR_ACCESS_DENIED` (all as Windows reports them).
pub fn view_extent(
    section_size: u64,
    offset: u64,
    size: u64,
    page: u64,
) -> Result<u64, Win32Error> {
    if !offset.is_multiple_of(ALLOCATION_GRANULARITY) {
        return Err(ERROR_MAPPED_ALIGNMENT);
    }
    if size == 0 {
        if offset >= section_size {
            return Err(ERROR_INVALID_PARAMETER);
        }
        return Ok(section_size - offset);
    }
    match offset.checked_add(size) {
        Some(end) if end <= section_size.next_multiple_of(page) => Ok(size),
        _ => Err(ERROR_ACCESS_DENIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protections_parse_like_create_file_mapping() {
        assert_eq!(
            parse_protection(PAGE_READWRITE).unwrap().0,
            PageProtection::ReadWrite
        );
        assert!(
            !parse_protection(PAGE_READWRITE | SEC_COMMIT)
                .unwrap()
                .1
                .reserve
        );
        assert_eq!(parse_protection(0), Err(ERROR_INVALID_PARAMETER));
        assert_eq!(parse_protection(PAGE_EXECUTE), Err(ERROR_INVALID_PARAMETER));
        assert_eq!(
            parse_protection(PAGE_NOACCESS),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert_eq!(
            parse_protection(PAGE_READWRITE | PAGE_READONLY),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert_eq!(
            parse_protection(PAGE_READWRITE | SEC_IMAGE),
            Err(ERROR_BAD_EXE_FORMAT)
        );
        assert_eq!(
            parse_protection(PAGE_READWRITE | SEC_RESERVE | SEC_COMMIT),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert_eq!(
            parse_protection(PAGE_READWRITE | 0x100),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert!(
            parse_protection(PAGE_READWRITE | SEC_COMMIT | SEC_LARGE_PAGES)
                .unwrap()
                .1
                .large_pages
        );
        // Attributes without SEC_COMMIT/SEC_RESERVE, and images with one.
        for bad in [
            SEC_LARGE_PAGES,
            SEC_NOCACHE,
            SEC_WRITECOMBINE,
            SEC_IMAGE | SEC_COMMIT,
            SEC_IMAGE | SEC_RESERVE,
        ] {
            assert_eq!(
                parse_protection(PAGE_READWRITE | bad),
                Err(ERROR_INVALID_PARAMETER)
            );
        }
        assert!(parse_protection(PAGE_READWRITE | SEC_RESERVE | SEC_NOCACHE).is_ok());
    }

    #[test]
    fn creator_access_follows_protection() {
        let ro = PageProtection::ReadOnly.creator_access();
        assert_eq!(ro & SECTION_MAP_WRITE, 0);
        assert_ne!(ro & SECTION_MAP_READ, 0);
        let rw = PageProtection::ReadWrite.creator_access();
        assert_ne!(rw & SECTION_MAP_WRITE, 0);
        assert_eq!(rw & SECTION_MAP_EXECUTE, 0);
        assert_ne!(
            PageProtection::ExecuteRead.creator_access() & SECTION_MAP_EXECUTE,
            0
        );
    }

    #[test]
    fn view_access_is_checked_against_handle_and_protection() {
        let all = AccessMask(FILE_MAP_ALL_ACCESS);
        let read_only = AccessMask(FILE_MAP_READ);
        let write_only = AccessMask(FILE_MAP_WRITE);
        use PageProtection::*;
        assert!(
            ViewKind::check(FILE_MAP_WRITE, all, ReadWrite)
                .unwrap()
                .write
        );
        assert_eq!(
            ViewKind::check(FILE_MAP_WRITE, read_only, ReadWrite),
            Err(ERROR_ACCESS_DENIED)
        );
        assert!(
            ViewKind::check(FILE_MAP_COPY, read_only, ReadWrite)
                .unwrap()
                .copy
        );
        assert!(ViewKind::check(FILE_MAP_WRITE, write_only, ReadWrite).is_ok());
        assert_eq!(
            ViewKind::check(FILE_MAP_READ, write_only, ReadWrite),
            Err(ERROR_ACCESS_DENIED)
        );
        assert_eq!(
            ViewKind::check(FILE_MAP_WRITE, all, ReadOnly),
            Err(ERROR_ACCESS_DENIED)
        );
        assert!(ViewKind::check(FILE_MAP_COPY, all, ReadOnly).is_ok());
        assert_eq!(
            ViewKind::check(FILE_MAP_READ | FILE_MAP_EXECUTE, all, ReadWrite),
            Err(ERROR_ACCESS_DENIED)
        );
        assert!(ViewKind::check(FILE_MAP_READ | FILE_MAP_EXECUTE, all, ExecuteRead).is_ok());
        let none = ViewKind::check(0, all, ReadWrite).unwrap();
        assert_eq!(none.protection(), PAGE_NOACCESS);
        assert_eq!(
            ViewKind::check(SECTION_MAP_EXECUTE, all, ExecuteRead).map(ViewKind::protection),
            Ok(PAGE_NOACCESS)
        );
        assert_eq!(
            ViewKind::check(0, AccessMask(0), ReadWrite),
            Err(ERROR_ACCESS_DENIED)
        );
        assert_eq!(
            ViewKind::check(FILE_MAP_READ | FILE_MAP_COPY, all, ReadWrite)
                .map(ViewKind::protection),
            Ok(PAGE_READONLY)
        );
        assert_eq!(
            ViewKind::check(FILE_MAP_COPY | FILE_MAP_EXECUTE, all, ExecuteRead)
                .map(ViewKind::protection),
            Ok(PAGE_EXECUTE_WRITECOPY)
        );
        assert_eq!(
            ViewKind::check(0x100, all, ReadWrite),
            Err(ERROR_INVALID_PARAMETER)
        );
        let all_access = ViewKind::check(FILE_MAP_ALL_ACCESS, all, ReadWrite).unwrap();
        assert!(
            all_access.write && !all_access.copy,
            "FILE_MAP_ALL_ACCESS is a shared view"
        );
        assert!(
            ViewKind::check(FILE_MAP_COPY | FILE_MAP_EXECUTE, all, ExecuteRead)
                .unwrap()
                .copy
        );
        assert_eq!(
            ViewKind::check(FILE_MAP_ALL_ACCESS, all, ReadOnly),
            Err(ERROR_ACCESS_DENIED)
        );
    }

    #[test]
    fn view_extents_follow_map_view_of_file() {
        assert_eq!(
            view_extent(100_000, 4096, 0, 4096),
            Err(ERROR_MAPPED_ALIGNMENT)
        );
        assert_eq!(view_extent(100_000, 65536, 0, 4096), Ok(100_000 - 65536));
        assert_eq!(
            view_extent(100_000, 65536, 40_000, 4096),
            Err(ERROR_ACCESS_DENIED)
        );
        assert_eq!(view_extent(100_000, 65536, 30_000, 4096), Ok(30_000));
        assert_eq!(view_extent(100, 0, 4096, 4096), Ok(4096));
        assert_eq!(view_extent(100, 0, 4097, 4096), Err(ERROR_ACCESS_DENIED));
        assert_eq!(
            view_extent(100_000, 131_072, 0, 4096),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert_eq!(
            view_extent(100_000, 0, 102_401, 4096),
            Err(ERROR_ACCESS_DENIED)
        );
        assert_eq!(
            view_extent(u64::MAX, 65536, u64::MAX, 4096),
            Err(ERROR_ACCESS_DENIED)
        );
    }
}
