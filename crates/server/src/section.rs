//! Section objects: the memory or file behind a file-mapping object, and the
//! fds the broker hands out for it.
//!
//! A paging-file-backed section is a `memfd` sized at creation and sealed
//! against shrinking and growing, so no view can ever take `SIGBUS` because
//! someone truncated it. A file-backed section holds the fd the creator
//! passed, with a read-only fd of the same file the creator opened. Either
//! way the broker keeps a read-write fd to itself and gives a handle without
//! write access a read-only fd (a memfd's is opened afresh through
//! `/proc/self/fd`), so that the kernel refuses writable views too. A memfd's
//! mode is 0400 once made, so that a read-only fd cannot simply be opened
//! again for writing through `/proc`, and a section whose protection allows
//! no shared writes is sealed against writes altogether.

use crate::errno;
use objmgr_proto::error::*;
use objmgr_proto::section::{PageProtection, SectionAttributes};
use objmgr_proto::wire::SectionInfo;
use rustix::fs::{self, FileType, MemfdFlags, Mode, OFlags, SealFlags};
use std::cell::OnceCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use crate::Failure;

/// A live section.
#[derive(Debug)]
pub struct Section {
    pub size: u64,
    pub protection: PageProtection,
    pub attributes: SectionAttributes,
    pub file_backed: bool,
    /// The fd behind the section, with the most access the section allows.
    base: Rc<OwnedFd>,
    /// Whether `base` is writable (else it is already read-only).
    base_writable: bool,
    /// A read-only reopening of `base`, made on first need.
    read_only: OnceCell<Rc<OwnedFd>>,
    /// The file a file-backed section maps.
    node: Option<FileNode>,
    /// Taken back from a broker that died.
    adopted: bool,
}

/// A file's type, inode, device and size as the kernel has them cached:
/// never a round trip to a file server or FUSE daemon. Not a regular file
/// is `ERROR_INVALID_HANDLE`.
pub(crate) fn cached_stat(file: impl AsFd) -> Result<fs::Statx, Failure> {
    let stat = fs::statx(
        file,
        "",
        fs::AtFlags::EMPTY_PATH | fs::AtFlags::STATX_DONT_SYNC,
        fs::StatxFlags::TYPE | fs::StatxFlags::INO | fs::StatxFlags::SIZE,
    )
    .map_err(|e| Failure::new(errno(e), "statx of the file"))?;
    if FileType::from_raw_mode(u32::from(stat.stx_mode)) != FileType::RegularFile {
        return Err(Failure::new(
            ERROR_INVALID_HANDLE,
            "the handle is not a file that can be mapped",
        ));
    }
    Ok(stat)
}

/// The huge page size the kernel uses for `MFD_HUGETLB`, if it has huge pages.
fn huge_page_size() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Drop for Section {
    fn drop(&mut self) {
        // A file-backed section holds a client's file: closing it may wait
        // on the file system (a FUSE or NFS flush), never on the broker's
        // thread. (A memfd closes at once.)
        if !self.file_backed {
            return;
        }
        if let Some(mut fd) = self.read_only.take() {
            crate::closer::close_shared_later(&mut fd);
        }
        crate::closer::close_shared_later(&mut self.base);
    }
}

/// A file's identity: its device and inode.
pub type FileNode = (u32, u32, u64);

/// The identity of the regular file behind `file`.
pub(crate) fn file_node(file: &OwnedFd) -> Result<FileNode, Failure> {
    let stat = cached_stat(file)?;
    Ok((stat.stx_dev_major, stat.stx_dev_minor, stat.stx_ino))
}

/// The identity of the regular file or pipe behind `file` (a pipe can be
/// opened through objmgr too, to be inherited and duplicated).
pub(crate) fn file_or_pipe_node(file: &OwnedFd) -> Result<FileNode, Failure> {
    let stat = fs::statx(
        file,
        "",
        fs::AtFlags::EMPTY_PATH | fs::AtFlags::STATX_DONT_SYNC,
        fs::StatxFlags::TYPE | fs::StatxFlags::INO,
    )
    .map_err(|e| Failure::new(errno(e), "statx of the file"))?;
    match FileType::from_raw_mode(u32::from(stat.stx_mode)) {
        FileType::RegularFile | FileType::Fifo => {
            Ok((stat.stx_dev_major, stat.stx_dev_minor, stat.stx_ino))
        }
        _ => Err(Failure::new(
            ERROR_INVALID_HANDLE,
            "only regular files and pipes are opened through objmgr",
        )),
    }
}

impl Section {
    /// The file a file-backed section maps.
    pub fn file_node(&self) -> Option<FileNode> {
        self.node
    }

    /// The identity of the memory file behind a paging-file section (what
    /// the system broker's ledger knows it by).
    pub fn memory_node(&self) -> Result<FileNode, Failure> {
        file_node(&self.base)
    }

    /// Creates a paging-file-backed section of `size` bytes.
    pub fn new_anonymous(
        size: u64,
        protection: PageProtection,
        attributes: SectionAttributes,
    ) -> Result<Section, Failure> {
        if size == 0 {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                "a paging-file-backed section needs a size greater than zero",
            ));
        }
        if size > i64::MAX as u64 {
            return Err(Failure::new(
                ERROR_NOT_ENOUGH_MEMORY,
                "section size too large",
            ));
        }
        let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        if attributes.large_pages {
            let Some(huge) = huge_page_size() else {
                return Err(Failure::new(
                    ERROR_NOT_SUPPORTED,
                    "SEC_LARGE_PAGES: this kernel has no huge pages",
                ));
            };
            if !size.is_multiple_of(huge) {
                return Err(Failure::new(
                    ERROR_INVALID_PARAMETER,
                    format!(
                        "SEC_LARGE_PAGES: size must be a multiple of the large page size ({huge} bytes)"
                    ),
                ));
            }
            flags |= MemfdFlags::HUGETLB;
        }
        let fd = fs::memfd_create("objmgr-section", flags)
            .map_err(|e| Failure::new(errno(e), "memfd_create for a paging-file-backed section"))?;
        fs::ftruncate(&fd, size)
            .map_err(|e| Failure::new(errno(e), "sizing a paging-file-backed section"))?;
        if attributes.large_pages {
            // Large-page sections are committed up front, as on Windows: take the
            // huge pages now so that a view can never fault for want of one.
            fs::fallocate(&fd, fs::FallocateFlags::empty(), 0, size).map_err(|_| {
                Failure::new(
                    ERROR_NO_SYSTEM_RESOURCES,
                    "SEC_LARGE_PAGES: not enough free huge pages (see /proc/sys/vm/nr_hugepages)",
                )
            })?;
        }
        // A protection that allows no shared writes (PAGE_READONLY,
        // PAGE_WRITECOPY, ...) is sealed against writing too: nobody, the
        // creator and root included, can change the pages by any fd.
        let mut seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        if !protection.allows_shared_write() {
            seals |= SealFlags::WRITE;
        }
        fs::fcntl_add_seals(&fd, seals)
            .map_err(|e| Failure::new(errno(e), "sealing a paging-file-backed section"))?;
        // Read-only for everyone from now on: the broker keeps this writable
        // fd, and a read-only fd it hands out cannot be opened again for
        // writing through /proc/<pid>/fd by anyone but root or the owner
        // changing the mode first (see SECURITY.md).
        fs::fchmod(&fd, Mode::from_raw_mode(0o400))
            .map_err(|e| Failure::new(errno(e), "making a section's memory file read-only"))?;
        Ok(Section {
            size,
            protection,
            attributes,
            file_backed: false,
            base: Rc::new(fd),
            base_writable: true,
            read_only: OnceCell::new(),
            node: None,
            adopted: false,
        })
    }

    /// Creates a section over the file behind `file`, as `CreateFileMapping`
    /// does with a file handle. `read_only` is the same file opened
    /// read-only by the client (for handles without write access).
    ///
    /// The broker makes no call here that a client's file system could hold
    /// up: no open, no truncate, and attributes only from the kernel's cache
    /// (`statx` with `AT_STATX_DONT_SYNC`), so that a file on a FUSE or
    /// network mount cannot stall it. The client extends a file that is
    /// shorter than a writable section before asking, and makes the
    /// read-only fd itself.
    pub fn new_file_backed(
        file: crate::closer::ClientFd,
        read_only: crate::closer::ClientFd,
        size: u64,
        protection: PageProtection,
        attributes: SectionAttributes,
    ) -> Result<Section, Failure> {
        if attributes.large_pages {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                "SEC_LARGE_PAGES applies only to paging-file-backed sections",
            ));
        }
        let stat = cached_stat(&file)?;
        let mode = fs::fcntl_getfl(&file).map_err(|e| Failure::new(errno(e), "fcntl(F_GETFL)"))?;
        if mode.contains(OFlags::PATH) {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                "an O_PATH descriptor cannot be mapped",
            ));
        }
        let access = mode & OFlags::RWMODE;
        let readable = access == OFlags::RDONLY || access == OFlags::RDWR;
        let writable = access == OFlags::RDWR;
        if !readable || (protection.allows_shared_write() && !writable) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "the file was not opened with the access {} needs",
                    protection.name()
                ),
            ));
        }
        let node = (stat.stx_dev_major, stat.stx_dev_minor, stat.stx_ino);
        // A client that sends another file is not speaking the protocol.
        Self::check_read_only(read_only.as_fd(), node)
            .map_err(|failure| Failure::protocol(&failure.context))?;
        let file_size = stat.stx_size;
        let size = if size == 0 {
            if file_size == 0 {
                return Err(Failure::new(
                    ERROR_FILE_INVALID,
                    "cannot map a zero-length file with a size of zero",
                ));
            }
            file_size
        } else {
            size
        };
        if size > file_size {
            return Err(Failure::new(
                ERROR_NOT_ENOUGH_MEMORY,
                if protection.allows_shared_write() {
                    "the file is shorter than the section (the client extends it first)"
                } else {
                    "the section is larger than the file and its protection cannot extend it"
                },
            ));
        }
        let read_only_cell = OnceCell::new();
        let _ = read_only_cell.set(Rc::new(read_only.take()));
        Ok(Section {
            size,
            protection,
            attributes,
            file_backed: true,
            base: Rc::new(file.take()),
            base_writable: writable,
            read_only: read_only_cell,
            node: Some(node),
            adopted: false,
        })
    }

    /// Takes back a paging-file-backed section of a broker that died, from
    /// the fd a client of that broker still holds: only a memfd sealed as
    /// [`Section::new_anonymous`] seals one (no other file takes those
    /// seals), of the size and protection the client says it has. A
    /// read-only fd is opened again writable where the protection allows
    /// shared writes (the memfd is the broker's user's, mode 0400: the mode
    /// is lifted for the time of the open), so that later handles with
    /// write access get what they need.
    pub fn adopt(
        fd: OwnedFd,
        size: u64,
        protection: PageProtection,
        attributes: SectionAttributes,
    ) -> Result<Section, Failure> {
        let not_ours = |why: &str| {
            Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("the descriptor is not a section of a lost broker: {why}"),
            )
        };
        let stat = cached_stat(&fd)?;
        let seals = fs::fcntl_get_seals(&fd).map_err(|_| not_ours("it takes no seals"))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            || seals.contains(SealFlags::WRITE) == protection.allows_shared_write()
        {
            return Err(not_ours("its seals are not a section's"));
        }
        if stat.stx_size != size || size == 0 {
            return Err(not_ours("its size is not the section's"));
        }
        let mode = fs::fcntl_getfl(&fd).map_err(|e| Failure::new(errno(e), "fcntl(F_GETFL)"))?;
        let mut base = fd;
        let mut base_writable = mode & OFlags::RWMODE == OFlags::RDWR;
        if !base_writable
            && protection.allows_shared_write()
            && let Ok(writable) = reopen_writable(&base)
        {
            base = writable;
            base_writable = true;
        }
        Ok(Section {
            size,
            protection,
            attributes,
            file_backed: false,
            base: Rc::new(base),
            base_writable,
            read_only: OnceCell::new(),
            node: None,
            adopted: false,
        })
    }

    /// Takes back a section over a file, of a broker that died, from the fd
    /// a client of that broker maps it by (`fd`: a regular file at least
    /// `size` bytes long, readable) and the same file opened read-only (for
    /// handles that may not write). The file is not opened here (a client's
    /// file system could hold the broker up); a writable fd another
    /// returning handle brings is taken later ([`Section::offer`]).
    ///
    /// A refused fd comes back with the failure: the caller closes it off
    /// the broker's thread (closing a file can wait on its file system).
    pub fn adopt_file(
        fd: OwnedFd,
        read_only: BorrowedFd<'_>,
        size: u64,
        protection: PageProtection,
        attributes: SectionAttributes,
    ) -> Result<Section, (Failure, OwnedFd)> {
        let checked = Self::check_adopted_file(&fd, size, attributes).and_then(|node| {
            Self::check_read_only(read_only, node)?;
            let read_only = read_only.try_clone_to_owned().map_err(|e| {
                Failure::new(
                    crate::Win32Error::from_errno(e.raw_os_error().unwrap_or(0)),
                    "keeping the read-only descriptor",
                )
            })?;
            Ok((node, read_only))
        });
        let (node, read_only) = match checked {
            Ok(checked) => checked,
            Err(failure) => return Err((failure, fd)),
        };
        let writable = protection.allows_shared_write()
            && fs::fcntl_getfl(&fd).is_ok_and(|mode| mode & OFlags::RWMODE == OFlags::RDWR);
        let read_only = Rc::new(read_only);
        let base = if writable {
            Rc::new(fd)
        } else {
            // (Not kept: its read-only twin does all the section may.)
            crate::closer::close_later(fd);
            read_only.clone()
        };
        let read_only_cell = OnceCell::new();
        let _ = read_only_cell.set(read_only);
        Ok(Section {
            size,
            protection,
            attributes,
            file_backed: true,
            base,
            base_writable: writable,
            read_only: read_only_cell,
            node: Some(node),
            adopted: true,
        })
    }

    /// Whether `fd` can map a section of `size` bytes taken back: the
    /// file's node if so.
    fn check_adopted_file(
        fd: &OwnedFd,
        size: u64,
        attributes: SectionAttributes,
    ) -> Result<FileNode, Failure> {
        if attributes.large_pages {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                "SEC_LARGE_PAGES applies only to paging-file-backed sections",
            ));
        }
        let stat = cached_stat(fd)?;
        let mode = fs::fcntl_getfl(fd).map_err(|e| Failure::new(errno(e), "fcntl(F_GETFL)"))?;
        let access = mode & OFlags::RWMODE;
        if mode.contains(OFlags::PATH) || access == OFlags::WRONLY {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the descriptor cannot map the file",
            ));
        }
        if size == 0 || size > stat.stx_size {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                "the file is shorter than the section (or the size is 0)",
            ));
        }
        Ok((stat.stx_dev_major, stat.stx_dev_minor, stat.stx_ino))
    }

    /// Whether `read_only` is the file `node` opened read-only.
    fn check_read_only(read_only: BorrowedFd<'_>, node: FileNode) -> Result<(), Failure> {
        let stat = cached_stat(read_only)?;
        let mode =
            fs::fcntl_getfl(read_only).map_err(|e| Failure::new(errno(e), "fcntl(F_GETFL)"))?;
        if (stat.stx_dev_major, stat.stx_dev_minor, stat.stx_ino) != node
            || mode.contains(OFlags::PATH)
            || mode & OFlags::RWMODE != OFlags::RDONLY
        {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                "the read-only descriptor is not the section's file opened read-only",
            ));
        }
        Ok(())
    }

    /// Another fd of this section taken back from a broker that died, as
    /// another of its handles comes back (with its read-only twin): the
    /// section keeps it if it lacked a writable fd and its protection
    /// allows shared writes. Whether it is this section's file (and a
    /// mapping descriptor), and the fd if it is not kept (for the caller to
    /// close off the broker's thread).
    pub fn offer(&mut self, fd: OwnedFd, read_only: BorrowedFd<'_>) -> (bool, Option<OwnedFd>) {
        let Some(node) = self.node else {
            return (false, Some(fd));
        };
        let same = Self::check_adopted_file(&fd, self.size, self.attributes)
            .is_ok_and(|theirs| theirs == node)
            && Self::check_read_only(read_only, node).is_ok();
        let writable = fs::fcntl_getfl(&fd).is_ok_and(|mode| mode & OFlags::RWMODE == OFlags::RDWR);
        if same && writable && !self.base_writable && self.protection.allows_shared_write() {
            // (The read-only base was the read-only twin's `Rc`: nothing
            // closes here.)
            self.base = Rc::new(fd);
            self.base_writable = true;
            return (true, None);
        }
        (same, Some(fd))
    }

    /// Whether this section was taken back from a broker that died (while a
    /// recovery runs, opens of its file taken back do not count it: that
    /// state existed already).
    pub fn is_adopted(&self) -> bool {
        self.adopted
    }

    /// What a client needs to map the section.
    pub fn info(&self) -> SectionInfo {
        SectionInfo {
            size: self.size,
            protection: self.protection.bits(),
            attributes: self.attributes.bits(),
            file_backed: self.file_backed,
        }
    }

    /// The fd a handle with write access (`may_write`) or without it receives.
    /// The descriptor for a handle with no map right: one that names
    /// nothing of the section (an `O_PATH` fd of `/dev/null`, shared by all
    /// such handles), so the handle can be held, queried and closed while
    /// neither the library nor the kernel lets it reach the pages, not even
    /// by reopening the descriptor through `/proc`.
    pub fn fd_for_query(&self) -> Result<Rc<OwnedFd>, Failure> {
        thread_local! {
            static PLACEHOLDER: OnceCell<Rc<OwnedFd>> = const { OnceCell::new() };
        }
        PLACEHOLDER.with(|cell| {
            if let Some(fd) = cell.get() {
                return Ok(fd.clone());
            }
            let fd = fs::open("/dev/null", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Failure::new(errno(e), "opening /dev/null for a query handle"))?;
            Ok(cell.get_or_init(|| Rc::new(fd)).clone())
        })
    }

    pub fn fd_for(&self, may_write: bool) -> Result<Rc<OwnedFd>, Failure> {
        if (may_write && self.protection.allows_shared_write()) || !self.base_writable {
            return Ok(self.base.clone());
        }
        if let Some(fd) = self.read_only.get() {
            return Ok(fd.clone());
        }
        // Only a memfd of the broker's own is reopened here (a file-backed
        // section, made or taken back, came with its read-only fd).
        let fd = reopen_read_only(&self.base, "reopening the section read-only")?;
        let fd = Rc::new(fd);
        let _ = self.read_only.set(fd.clone());
        Ok(fd)
    }

    /// Where the pages come from, for `objmgr stat`.
    pub fn backing(&self) -> String {
        if !self.file_backed {
            return "paging file".to_owned();
        }
        let link = format!(
            "/proc/self/fd/{}",
            rustix::fd::AsRawFd::as_raw_fd(&*self.base)
        );
        match std::fs::read_link(link) {
            Ok(path) => format!("file {}", path.display()),
            Err(_) => "file".to_owned(),
        }
    }

    /// How many descriptors the broker holds for this section (the base
    /// fd, and the read-only one once made).
    pub fn fds_held(&self) -> u64 {
        let twin = self
            .read_only
            .get()
            .is_some_and(|read_only| !Rc::ptr_eq(read_only, &self.base));
        1 + u64::from(twin)
    }

    /// The fd as a borrowed handle (for diagnostics).
    pub fn base_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.base.as_fd()
    }
}

/// A memfd of the broker's user (`fd` read-only) opened again for
/// writing: its mode 0400 is lifted for the time of the open.
pub(crate) fn reopen_writable(fd: &OwnedFd) -> Result<OwnedFd, Failure> {
    let path = format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(fd));
    fs::fchmod(fd, Mode::from_raw_mode(0o600))
        .map_err(|e| Failure::new(errno(e), "lifting a section's mode"))?;
    let reopened = fs::open(
        path,
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    );
    let restored = fs::fchmod(fd, Mode::from_raw_mode(0o400));
    let reopened =
        reopened.map_err(|e| Failure::new(errno(e), "opening a section again for writing"))?;
    restored.map_err(|e| Failure::new(errno(e), "making a section's memory file read-only"))?;
    Ok(reopened)
}

/// The file behind `fd` (a memfd of the broker's own) opened again,
/// read-only: a new open file description, so that a process given it can
/// neither write nor map the file writable, and (with the file's mode 0400,
/// owned by the broker's user) cannot open it again for writing through
/// `/proc/<pid>/fd`. Never blocks, all the same.
pub(crate) fn reopen_read_only(fd: &OwnedFd, what: &str) -> Result<OwnedFd, Failure> {
    let path = format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(fd));
    fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| Failure::new(errno(e), what.to_owned()))
}
