//! Sections (file-mapping objects) and their views.

use crate::connection::{self, call};
use crate::error::*;
use crate::reclaim::Holdings;
use crate::sys::{self, MapRequest};
use objmgr_proto::ObjectType;
use objmgr_proto::access::AccessMask;
use objmgr_proto::section::{
    ALLOCATION_GRANULARITY, SEC_COMMIT, SEC_LARGE_PAGES, SEC_NOCACHE, SEC_RESERVE, ViewKind,
    view_extent,
};
use objmgr_proto::security::SecurityDescriptor;
use objmgr_proto::wire::{Handle, Reply, Request, SectionGrant};
use rustix::mm::ProtFlags;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

pub use objmgr_proto::section::PageProtection;

/// Access rights for sections and views: the `FILE_MAP_*` values.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapAccess(pub u32);

impl MapAccess {
    /// `FILE_MAP_READ`: read-only view.
    pub const READ: MapAccess = MapAccess(objmgr_proto::section::FILE_MAP_READ);
    /// `FILE_MAP_WRITE`: read/write view shared with every other view.
    pub const WRITE: MapAccess = MapAccess(objmgr_proto::section::FILE_MAP_WRITE);
    /// `FILE_MAP_COPY`: private copy-on-write view.
    pub const COPY: MapAccess = MapAccess(objmgr_proto::section::FILE_MAP_COPY);
    /// `FILE_MAP_EXECUTE`: executable view (combine with another right).
    pub const EXECUTE: MapAccess = MapAccess(objmgr_proto::section::FILE_MAP_EXECUTE);
    /// `FILE_MAP_ALL_ACCESS`.
    pub const ALL_ACCESS: MapAccess = MapAccess(objmgr_proto::section::FILE_MAP_ALL_ACCESS);
}

impl std::ops::BitOr for MapAccess {
    type Output = MapAccess;
    fn bitor(self, rhs: MapAccess) -> MapAccess {
        MapAccess(self.0 | rhs.0)
    }
}

impl fmt::Debug for MapAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MapAccess({:#x})", self.0)
    }
}

/// A handle to a section: named or unnamed shared memory, backed by "the
/// paging file" (memory) or by a file.
///
/// The section lives while any process holds a handle to it; dropping this
/// value closes this handle (as `CloseHandle` does). Views are independent of
/// the handle: a [`View`] stays valid after its section's handle is closed.
pub struct Section {
    handle: Handle,
    generation: u64,
    access: AccessMask,
    size: u64,
    protection: PageProtection,
    attributes: u32,
    file_backed: bool,
    existed: bool,
    /// The section's memory: read-write only if this handle may write.
    /// (Shared with the connection's note of the handle, by which a broker
    /// that replaces a dead one takes the section back.)
    fd: std::sync::Arc<OwnedFd>,
    closed: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("handle", &self.handle.0)
            .field("size", &self.size)
            .field("protection", &self.protection)
            .field("access", &self.access)
            .field("file_backed", &self.file_backed)
            .finish()
    }
}

/// Options for creating a section (`CreateFileMapping`).
///
/// ```no_run
/// use objmgr::{PageProtection, Section};
///
/// // 1 MiB of named, paging-file-backed memory that child processes inherit.
/// let section = Section::builder()
///     .name("Local\\Frames")
///     .size(1 << 20)
///     .protection(PageProtection::ReadWrite)
///     .inheritable(true)
///     .create()?;
/// if section.existed() {
///     // Another process made it first (ERROR_ALREADY_EXISTS on Windows);
///     // the size given here was ignored.
/// }
/// # Ok::<(), objmgr::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SectionBuilder {
    name: Option<String>,
    size: u64,
    protection: PageProtection,
    large_pages: bool,
    reserve: bool,
    no_cache: bool,
    inherit: bool,
    security: Option<SecurityDescriptor>,
}

impl SectionBuilder {
    /// The object name: `Global\Name`, `Local\Name` or `Name` (= `Local\Name`).
    /// Without a name the section is unnamed.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The maximum size in bytes. Required (> 0) for memory-backed sections;
    /// 0 for a file-backed one means "the file's current size".
    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// The page protection (default `PAGE_READWRITE`).
    pub fn protection(mut self, protection: PageProtection) -> Self {
        self.protection = protection;
        self
    }

    /// `SEC_LARGE_PAGES`: back the section with huge pages, committed now.
    /// The size must be a multiple of the huge page size; with too few free
    /// huge pages creation fails with `ERROR_NO_SYSTEM_RESOURCES`.
    pub fn large_pages(mut self, yes: bool) -> Self {
        self.large_pages = yes;
        self
    }

    /// `SEC_RESERVE` instead of `SEC_COMMIT` (on Linux pages are committed on
    /// first touch either way).
    pub fn reserve(mut self, yes: bool) -> Self {
        self.reserve = yes;
        self
    }

    /// `SEC_NOCACHE`: recorded and reported (views' pages carry
    /// `PAGE_NOCACHE`); caching has no user-space meaning on Linux.
    pub fn no_cache(mut self, yes: bool) -> Self {
        self.no_cache = yes;
        self
    }

    /// Whether the handle is inherited by child processes (`bInheritHandle`).
    pub fn inheritable(mut self, yes: bool) -> Self {
        self.inherit = yes;
        self
    }

    /// The security descriptor of a new section (`lpSecurityDescriptor`):
    /// who may open it and how. Parts it leaves out (owner, group, DACL) come
    /// from the creator, as on Windows; without one, only the creator (and
    /// SYSTEM and Administrators) may open the section. Ignored when the name
    /// exists already.
    pub fn security(mut self, descriptor: SecurityDescriptor) -> Self {
        self.security = Some(descriptor);
        self
    }

    fn fl_protect(&self) -> u32 {
        let mut bits = self.protection.bits();
        if self.large_pages {
            bits |= SEC_LARGE_PAGES | SEC_COMMIT; // large pages are committed
        }
        if self.reserve {
            bits |= SEC_RESERVE;
        }
        if self.no_cache {
            // A cache attribute qualifies an explicit commitment.
            bits |= SEC_NOCACHE | if self.reserve { 0 } else { SEC_COMMIT };
        }
        bits
    }

    fn request(&self, from_file: bool) -> Result<Request> {
        Ok(Request::CreateSection {
            name: self.name.clone().unwrap_or_default(),
            protection: self.fl_protect(),
            size: self.size,
            inherit: self.inherit,
            from_file,
            security: crate::handle::wire_sddl(self.security.as_ref())?,
        })
    }

    fn what(&self) -> String {
        match &self.name {
            Some(name) => format!("creating section {name:?}"),
            None => "creating an unnamed section".to_owned(),
        }
    }

    /// Creates a memory-backed section ("backed by the paging file"), or
    /// opens the existing section of that name — then [`Section::existed`] is
    /// true and the size and protection given here are ignored, as on Windows.
    ///
    /// Errors: size 0 → `ERROR_INVALID_PARAMETER`; the name is held by another
    /// type of object → `ERROR_INVALID_HANDLE`; a bad name → the error
    /// Windows gives (`ERROR_PATH_NOT_FOUND`, `ERROR_INVALID_NAME`,
    /// `ERROR_FILENAME_EXCED_RANGE`).
    pub fn create(&self) -> Result<Section> {
        let request = self.request(false).map_err(|e| e.within(&self.what()))?;
        Section::from_reply(call(&request, None), || self.what())
    }

    /// Creates a section over a file (`CreateFileMapping` with a file handle).
    ///
    /// The file must be open for reading, and for writing too if the
    /// protection is `ReadWrite`/`ExecuteReadWrite` (`ERROR_ACCESS_DENIED`
    /// otherwise). A size larger than the file extends the file when the
    /// protection allows writing (`ERROR_NOT_ENOUGH_MEMORY` otherwise); size 0
    /// on an empty file fails with `ERROR_FILE_INVALID`.
    ///
    /// ```no_run
    /// use objmgr::{MapAccess, PageProtection, Section};
    ///
    /// let file = std::fs::OpenOptions::new()
    ///     .read(true)
    ///     .write(true)
    ///     .create(true)
    ///     .truncate(false)
    ///     .open("/var/tmp/journal.bin")?;
    /// // 64 KiB over the file (extending it if it is shorter), shared by name.
    /// let section = Section::builder()
    ///     .name("Local\\Journal")
    ///     .size(64 * 1024)
    ///     .protection(PageProtection::ReadWrite)
    ///     .create_from_file(&file)?;
    /// let view = section.map(MapAccess::WRITE)?;
    /// view.write_at(0, b"entry")?;
    /// view.flush()?; // the bytes are in the file now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_from_file(&self, file: &impl AsFd) -> Result<Section> {
        let file = file.as_fd();
        let read_only =
            prepare_file(file, self.size, self.protection).map_err(|e| e.within(&self.what()))?;
        let read_only = read_only.as_ref().map_or(file, AsFd::as_fd);
        let request = self.request(true).map_err(|e| e.within(&self.what()))?;
        Section::from_reply(
            connection::call_with_fds(&request, &[file, read_only]),
            || self.what(),
        )
    }
}

/// What the creator of a file-backed section does with the file itself, so
/// that the broker never waits on a file system (a FUSE daemon, a file
/// server, a lease): extends a writable file that is shorter than the
/// section, as `CreateFileMapping` does, and opens the file again read-only
/// for the handles that may only read. Returns that fd (`None` when `file`
/// is read-only already, or is no regular file, which the broker refuses).
fn prepare_file(
    file: std::os::fd::BorrowedFd<'_>,
    size: u64,
    protection: PageProtection,
) -> Result<Option<OwnedFd>> {
    use rustix::fs::{self, FileType, OFlags};
    let stat = fs::fstat(file).map_err(|e| Error::from_errno(e, "fstat of the file"))?;
    let mode = fs::fcntl_getfl(file).map_err(|e| Error::from_errno(e, "fcntl(F_GETFL)"))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        || mode.contains(OFlags::PATH)
        || mode & OFlags::RWMODE != OFlags::RDWR
    {
        return Ok(None);
    }
    if protection.allows_shared_write() && size > stat.st_size as u64 {
        if size > i64::MAX as u64 {
            return Err(Error::new(
                ERROR_NOT_ENOUGH_MEMORY,
                "section size too large",
            ));
        }
        fs::ftruncate(file, size)
            .map_err(|e| Error::from_errno(e, "extending the file to the section size"))?;
    }
    Ok(Some(open_read_only(file)?))
}

/// `file` opened again read-only (through `/proc/self/fd`), for handles
/// that may only read; not waiting for another process's lease on the file
/// to be broken.
pub(crate) fn open_read_only(file: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    use rustix::fs::{self, Mode, OFlags};
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::WOULDBLOCK => Error::new(
            ERROR_SHARING_VIOLATION,
            "another process holds a lease on the file; try again once it lets go",
        ),
        e => Error::from_errno(e, "opening the file again read-only"),
    })
}

/// Options for mapping a view (`MapViewOfFileEx`).
#[derive(Clone, Copy, Debug)]
pub struct MapOptions {
    /// `FILE_MAP_*` access for the view.
    pub access: MapAccess,
    /// Offset in the section: a multiple of 64 KiB (the allocation granularity).
    pub offset: u64,
    /// Bytes to map; 0 maps from `offset` to the end of the section.
    pub len: u64,
    /// Map exactly at this address (a multiple of 64 KiB) or fail with
    /// `ERROR_INVALID_ADDRESS`, never touching what is already mapped there.
    pub address: Option<NonNull<u8>>,
    /// Fault every page in now, so first touches do not each take a page fault.
    pub prefault: bool,
}

impl MapOptions {
    /// A whole-section view with `access`.
    pub fn new(access: MapAccess) -> MapOptions {
        MapOptions {
            access,
            offset: 0,
            len: 0,
            address: None,
            prefault: false,
        }
    }
}

impl Section {
    /// Starts building a section (`CreateFileMapping`).
    pub fn builder() -> SectionBuilder {
        SectionBuilder {
            name: None,
            size: 0,
            protection: PageProtection::ReadWrite,
            large_pages: false,
            reserve: false,
            no_cache: false,
            inherit: false,
            security: None,
        }
    }

    /// Creates (or opens, if the name exists) a named read-write memory-backed
    /// section of `size` bytes: the common case of named shared memory.
    pub fn create(name: &str, size: u64) -> Result<Section> {
        Section::builder().name(name).size(size).create()
    }

    /// Opens an existing section by name (`OpenFileMapping`) with `access`.
    ///
    /// Errors: no such name → `ERROR_FILE_NOT_FOUND`; the name is another type
    /// of object → `ERROR_INVALID_HANDLE`.
    pub fn open(name: &str, access: MapAccess) -> Result<Section> {
        Section::open_with(name, access, false)
    }

    /// [`Section::open`] with the handle's inheritability.
    pub fn open_with(name: &str, access: MapAccess, inherit: bool) -> Result<Section> {
        // Sent with the handle of the section this process keeps the fd of
        // under the same name, if any: if it is the one opened, no fd is
        // sent (the process shares the one it has).
        let request = |held: &Holdings| Request::Open {
            object_type: ObjectType::Section,
            name: name.to_owned(),
            access: access.0,
            inherit,
            known_fd: held.fd_named(name),
        };
        Section::from_reply(connection::call_shaped(request, &[]), || {
            format!("opening section {name:?}")
        })
    }

    pub(crate) fn from_reply(
        reply: Result<(Reply, Option<OwnedFd>, u64)>,
        what: impl Fn() -> String,
    ) -> Result<Section> {
        let (reply, fd, generation) =
            reply.map_err(|e| Error::new(e.code(), format!("{}: {}", what(), e.context())))?;
        let (handle, existed, access, info, fd) = match (reply, fd) {
            (
                Reply::Section(SectionGrant {
                    handle,
                    existed,
                    access,
                    info,
                    ..
                }),
                fd,
            ) => {
                // The connection keeps the fd of a section a new broker
                // could take back (it came with the reply): shared here.
                let fd = match fd {
                    Some(fd) => std::sync::Arc::new(fd),
                    None => match connection::held(handle, generation, Holdings::section_fd) {
                        Some(fd) => fd,
                        None => {
                            // Not left open in the broker for nobody.
                            let _ = connection::close_handle(handle, generation, "section");
                            return Err(Error::new(
                                ERROR_INVALID_HANDLE,
                                format!("{}: no descriptor for the section", what()),
                            ));
                        }
                    },
                };
                (handle, existed, access, info, fd)
            }
            (Reply::Sync(grant), _) => {
                let kind = objmgr_sync::Kind::from_code(grant.kind);
                return Err(Error::new(
                    ERROR_INVALID_HANDLE,
                    format!(
                        "{}: the handle is a {}",
                        what(),
                        kind.map_or("synchronization object", |k| k.object_type().name())
                    ),
                ));
            }
            _ => {
                return Err(Error::new(
                    ERROR_INVALID_DATA,
                    format!("{}: the broker sent no section", what()),
                ));
            }
        };
        let protection = PageProtection::from_bits(info.protection).ok_or_else(|| {
            Error::new(
                ERROR_INVALID_DATA,
                format!("{}: unknown protection", what()),
            )
        })?;
        Ok(Section {
            handle,
            generation,
            access: AccessMask(access),
            size: info.size,
            protection,
            attributes: info.attributes,
            file_backed: info.file_backed,
            existed,
            fd,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the handle closed without asking the broker (it was closed some
    /// other way).
    pub(crate) fn mark_closed(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Takes over a section handle value this process holds already (one it
    /// inherited or was given with `DuplicateHandle`), with the access that
    /// handle has; the result closes it when dropped. A value that is not
    /// open, or is not a section: `ERROR_INVALID_HANDLE`.
    pub fn from_handle(value: u32) -> Result<Section> {
        let handle = objmgr_proto::wire::Handle(value);
        Section::from_reply(connection::query_handle(handle), || {
            format!("taking over section handle {value:#x}")
        })
    }

    /// The handle value (valid in this process, as the broker's handle table says).
    pub fn handle_value(&self) -> u32 {
        self.handle.0
    }

    /// The handle, as [`HandleValue`](crate::handle::HandleValue).
    pub fn handle(&self) -> crate::handle::HandleValue {
        crate::handle::HandleValue(self.handle.0)
    }

    /// Whether creation found an existing section of that name (Windows:
    /// `GetLastError() == ERROR_ALREADY_EXISTS` after `CreateFileMapping`).
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// The section's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The page protection it was created with.
    pub fn protection(&self) -> PageProtection {
        self.protection
    }

    /// Whether the section was created with `SEC_LARGE_PAGES`.
    pub fn large_pages(&self) -> bool {
        self.attributes & SEC_LARGE_PAGES != 0
    }

    /// The `SEC_*` attributes it was created with (`SEC_COMMIT` or
    /// `SEC_RESERVE`, `SEC_LARGE_PAGES`, `SEC_NOCACHE`).
    pub fn attributes(&self) -> u32 {
        self.attributes
    }

    /// Whether the section was created with `SEC_RESERVE` (its views'
    /// pages are reserved until `VirtualAlloc(MEM_COMMIT)` commits them).
    pub fn reserved(&self) -> bool {
        self.attributes & SEC_RESERVE != 0
    }

    /// Whether a file backs the section.
    pub fn is_file_backed(&self) -> bool {
        self.file_backed
    }

    /// The `FILE_MAP_*`/`SECTION_*` rights this handle grants.
    pub fn access(&self) -> u32 {
        self.access.0
    }

    fn check_live(&self) -> Result<()> {
        let why = if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            "is not open in this process"
        } else if self.generation != connection::generation() {
            "belongs to a broker session that is gone"
        } else {
            return Ok(());
        };
        Err(Error::new(
            ERROR_INVALID_HANDLE,
            format!("section handle {:#x} {why}", self.handle.0),
        ))
    }

    /// Maps the whole section with `access` (`MapViewOfFile(h, access, 0, 0, 0)`).
    pub fn map(&self, access: MapAccess) -> Result<View> {
        self.map_with(&MapOptions::new(access))
    }

    /// Maps a view (`MapViewOfFileEx`).
    ///
    /// Errors: `ERROR_MAPPED_ALIGNMENT` for an offset or address that is not a
    /// multiple of 64 KiB; `ERROR_ACCESS_DENIED` for a right the handle lacks,
    /// a protection the section does not allow, or a view past the end;
    /// `ERROR_INVALID_PARAMETER` for no access at all or `len == 0` with the
    /// offset at or past the end; `ERROR_INVALID_ADDRESS` when the address is
    /// in use.
    ///
    /// ```no_run
    /// use objmgr::{MapAccess, MapOptions, Section};
    ///
    /// let section = Section::create("Local\\Big", 4 << 20)?;
    /// // The second MiB only, read-only, with every page faulted in now.
    /// let view = section.map_with(&MapOptions {
    ///     offset: 1 << 20,
    ///     len: 1 << 20,
    ///     prefault: true,
    ///     ..MapOptions::new(MapAccess::READ)
    /// })?;
    /// assert_eq!(view.len(), 1 << 20);
    /// # Ok::<(), objmgr::Error>(())
    /// ```
    pub fn map_with(&self, options: &MapOptions) -> Result<View> {
        self.check_live()?;
        let what = || format!("mapping a view of section {:#x}", self.handle.0);
        let kind = ViewKind::check(options.access.0, self.access, self.protection)
            .map_err(|c| Error::new(c, what()))?;
        let page = rustix::param::page_size() as u64;
        let len = view_extent(self.size, options.offset, options.len, page)
            .map_err(|c| Error::new(c, what()))?;
        let len = usize::try_from(len).map_err(|_| Error::new(ERROR_NOT_ENOUGH_MEMORY, what()))?;
        if let Some(address) = options.address
            && !(address.as_ptr() as usize).is_multiple_of(ALLOCATION_GRANULARITY as usize)
        {
            return Err(Error::new(ERROR_MAPPED_ALIGNMENT, what()));
        }
        let mut prot = if kind.readable {
            ProtFlags::READ
        } else {
            ProtFlags::empty()
        };
        if kind.write || kind.copy {
            prot |= ProtFlags::WRITE;
        }
        if kind.execute {
            prot |= ProtFlags::EXEC;
        }
        // Huge-page mappings must start on, and span whole, huge pages.
        let (align, map_len) = match self.large_pages().then(sys::huge_page_size).flatten() {
            Some(huge) => (
                huge.max(ALLOCATION_GRANULARITY as usize),
                len.next_multiple_of(huge),
            ),
            None => (ALLOCATION_GRANULARITY as usize, len),
        };
        let request = MapRequest {
            len: map_len,
            offset: options.offset,
            prot,
            shared: !kind.copy,
            address: options.address,
            populate: options.prefault,
        };
        let ptr = sys::map(self.fd.as_fd(), &request, align).map_err(|e| match e {
            rustix::io::Errno::EXIST => Error::new(
                ERROR_INVALID_ADDRESS,
                format!("{}: the address range is in use", what()),
            ),
            rustix::io::Errno::INVAL if self.large_pages() => Error::new(
                ERROR_MAPPED_ALIGNMENT,
                format!(
                    "{}: large-page views need huge-page-aligned offsets",
                    what()
                ),
            ),
            e => Error::from_errno(e, what()),
        })?;
        Ok(View {
            ptr,
            len,
            map_len,
            writable: kind.write || kind.copy,
            file_backed: self.file_backed && !kind.copy,
            protection: kind.protection(),
        })
    }

    /// Closes the handle (`CloseHandle`). When the last handle in any process
    /// closes, the section is destroyed and its name is free again. Views
    /// already mapped stay valid.
    pub fn close(self) -> Result<()> {
        self.close_handle()
    }

    /// Closes the handle now (once; later calls and the drop do nothing).
    pub(crate) fn close_handle(&self) -> Result<()> {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        connection::close_handle(self.handle, self.generation, "section")
    }
}

impl AsFd for Section {
    /// The file descriptor behind this handle: read-only unless the handle
    /// has write access, so the kernel itself refuses writable shared
    /// mappings of it. Mapping it directly bypasses the view rules above.
    ///
    /// An open by name of a section this process already keeps under that
    /// name shares the descriptor of the handle it keeps (the broker sends
    /// no new one), which may do more than the new handle's access: the
    /// process could do that much already. [`Section::map`] still checks
    /// each handle's own access.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        let _ = self.close_handle();
    }
}

/// A mapped view of a section. Unmapped on drop (`UnmapViewOfFile`).
///
/// # Sharing memory safely
/// The bytes of a view can be changed at any moment by another process (or
/// another view), so this type never hands out `&[u8]`/`&mut [u8]` into them:
/// a Rust reference would promise the compiler that nobody else writes. Use
/// [`View::read_at`]/[`View::write_at`] (copies), the atomic accessors
/// ([`View::atomic_u32`], [`View::atomic_u64`]) for words that several
/// processes update, or the raw pointer with your own protocol. Coordinate
/// access between processes with a lock or an event, exactly as on Windows.
pub struct View {
    ptr: NonNull<u8>,
    len: usize,
    /// The length actually mapped (`len` rounded up to whole huge pages for
    /// large-page sections).
    map_len: usize,
    writable: bool,
    file_backed: bool,
    /// The `PAGE_*` protection its pages were mapped with.
    protection: u32,
}

// SAFETY: a View is an owned memory mapping; moving it to another thread or
// sharing &View between threads only moves/shares the address, and every
// access through &View is a raw copy or an atomic, never a Rust reference to
// non-atomic shared bytes.
unsafe impl Send for View {}
// SAFETY: see above.
unsafe impl Sync for View {}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

impl View {
    /// The first byte of the view.
    ///
    /// Writing through it is allowed only if the view is writable
    /// ([`View::is_writable`]): the pages of a read-only view are mapped
    /// without write permission, and a write faults (`SIGSEGV`), as it does
    /// on Windows. Other processes may change the bytes at any time, so read
    /// and write them with volatile or atomic accesses, or under a lock the
    /// processes share, never through references that assume nobody else
    /// writes.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The view's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The `PAGE_*` protection its pages were mapped with: `PAGE_READWRITE`
    /// for `FILE_MAP_WRITE`, `PAGE_READONLY` for `FILE_MAP_READ`,
    /// `PAGE_WRITECOPY` for `FILE_MAP_COPY` (with `EXECUTE_` for
    /// `FILE_MAP_EXECUTE`), `PAGE_NOACCESS` for a view asked with none of them.
    pub fn protection(&self) -> u32 {
        self.protection
    }

    /// Whether the view is empty (never: views have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether writes are allowed (`FILE_MAP_WRITE` or `FILE_MAP_COPY`).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    fn range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::new(
                ERROR_INVALID_PARAMETER,
                format!("range {offset}+{len} is outside the {}-byte view", self.len),
            )),
        }
    }

    /// Copies `buf.len()` bytes at `offset` out of the view.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.range(offset, buf.len())?;
        // SAFETY: the range is inside the live mapping (checked above) and
        // readable; `buf` is ours. Raw copies create no reference into shared
        // memory.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` into the view at `offset`. Fails with
    /// `ERROR_ACCESS_DENIED` on a read-only view (instead of a fault).
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::new(
                ERROR_ACCESS_DENIED,
                "writing to a read-only view",
            ));
        }
        self.range(offset, data.len())?;
        // SAFETY: the range is inside the live, writable mapping (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    fn atomic_ptr<T>(&self, offset: usize) -> Result<*mut T> {
        self.range(offset, size_of::<T>())?;
        if !(offset as u64).is_multiple_of(align_of::<T>() as u64) {
            return Err(Error::new(
                ERROR_MAPPED_ALIGNMENT,
                format!("offset {offset} is not aligned for an atomic"),
            ));
        }
        if !self.writable {
            return Err(Error::new(
                ERROR_ACCESS_DENIED,
                "atomics need a writable view",
            ));
        }
        // The view's base is page-aligned, so an aligned offset is an aligned address.
        // SAFETY: offset + size_of::<T>() <= len, checked above.
        Ok(unsafe { self.ptr.as_ptr().add(offset) }.cast())
    }

    /// The 32-bit word at `offset` (4-byte aligned) as an atomic shared with
    /// every process that maps the section.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        let ptr = self.atomic_ptr::<AtomicU32>(offset)?;
        // SAFETY: aligned, inside the writable mapping, which lives as long as
        // &self; atomics are made for memory that others modify concurrently.
        Ok(unsafe { &*ptr })
    }

    /// The 64-bit word at `offset` (8-byte aligned) as a shared atomic.
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        let ptr = self.atomic_ptr::<AtomicU64>(offset)?;
        // SAFETY: as for atomic_u32.
        Ok(unsafe { &*ptr })
    }

    /// Writes the view's dirty pages to the file and waits (`FlushViewOfFile`
    /// followed by waiting for the write, which Windows leaves to
    /// `FlushFileBuffers`). Memory-backed views have nothing to flush.
    pub fn flush(&self) -> Result<()> {
        self.flush_range(0, self.len)
    }

    /// Flushes `len` bytes from `offset` (rounded out to whole pages).
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        self.range(offset, len)?;
        if !self.file_backed || len == 0 {
            return Ok(());
        }
        let start = offset - offset % rustix::param::page_size();
        // SAFETY: start <= offset < len, so the pointer stays inside the mapping.
        let ptr = unsafe { self.ptr.add(start) };
        sys::sync(ptr, offset + len - start).map_err(|e| Error::from_errno(e, "flushing a view"))
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe the mapping made in map_with, owned by this
        // View and unmapped only here.
        unsafe { sys::unmap(self.ptr, self.map_len) };
    }
}
