//! The client's only `unsafe` code: creating and removing memory mappings,
//! byte-range locks (`fcntl` open-file-description locks, which rustix does
//! not cover), and the page that tells a forked child from its parent.
//!
//! Everything else in the crate is safe Rust over these functions and
//! rustix. The rules they rely on are stated once here: a mapping created by
//! [`map`] is owned by the caller, who must pass it to [`unmap`] exactly once
//! and must not use the range after that.

use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// How to map.
#[derive(Clone, Copy, Debug)]
pub struct MapRequest {
    pub len: usize,
    pub offset: u64,
    pub prot: ProtFlags,
    /// Shared (`MAP_SHARED`) or private copy-on-write (`MAP_PRIVATE`).
    pub shared: bool,
    /// Map exactly here, never replacing an existing mapping.
    pub address: Option<NonNull<u8>>,
    /// Fault every page in now (`MAP_POPULATE`).
    pub populate: bool,
}

/// Maps `req.len` bytes of `fd` at `req.offset`, at an address that is a
/// multiple of `align` (a power of two, at least the page size), as Windows
/// places views on allocation-granularity boundaries.
///
/// With an address, `MAP_FIXED_NOREPLACE` guarantees that an existing mapping
/// is never replaced: the kernel fails with `EEXIST` instead.
pub fn map(fd: BorrowedFd<'_>, req: &MapRequest, align: usize) -> rustix::io::Result<NonNull<u8>> {
    let mut flags = if req.shared {
        MapFlags::SHARED
    } else {
        MapFlags::PRIVATE
    };
    if req.populate {
        flags |= MapFlags::POPULATE;
    }
    let target = match req.address {
        Some(address) => {
            flags |= MapFlags::FIXED_NOREPLACE;
            address
        }
        None => {
            if let Some(ptr) = map_at_hint(fd, req, flags, align) {
                return Ok(ptr);
            }
            // Reserve room for an aligned placement, then map over it: the
            // range is ours, so MAP_FIXED replaces nothing anyone else uses.
            flags |= MapFlags::FIXED;
            reserve_aligned(req.len, align)?
        }
    };
    let hint = target.as_ptr().cast();
    // SAFETY: either MAP_FIXED over our own fresh reservation, or
    // MAP_FIXED_NOREPLACE, which never replaces an existing mapping; no memory
    // this process already uses is affected. The new mapping is returned to
    // the caller, who owns it.
    let mapped = unsafe { rustix::mm::mmap(hint, req.len, req.prot, flags, fd, req.offset) };
    let ptr = match mapped {
        Ok(ptr) => ptr,
        Err(e) => {
            if req.address.is_none() {
                // SAFETY: the reservation is ours and unused.
                unsafe { unmap(target, req.len) };
            }
            return Err(e);
        }
    };
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(rustix::io::Errno::NOMEM)?;
    if let Some(wanted) = req.address
        && wanted != ptr
    {
        // A kernel older than 4.17 treats MAP_FIXED_NOREPLACE as a hint.
        // SAFETY: we just created this mapping and nobody else has seen it.
        unsafe { unmap(ptr, req.len) };
        return Err(rustix::io::Errno::EXIST);
    }
    Ok(ptr)
}

/// The huge page size `SEC_LARGE_PAGES` sections use, if the kernel has one.
pub fn huge_page_size() -> Option<usize> {
    static SIZE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = meminfo.lines().find(|l| l.starts_with("Hugepagesize:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<usize>().ok()? * 1024)
    })
}

/// Where the next view will probably fit on an aligned address: just below
/// the last one placed (the kernel fills address space top-down).
static NEXT_HINT: AtomicUsize = AtomicUsize::new(0);

fn remember_hint(start: usize, len: usize, align: usize) {
    let below = start.saturating_sub(len.next_multiple_of(align));
    NEXT_HINT.store(below - below % align, Ordering::Relaxed);
}

/// The fast path of an aligned placement: one `mmap` with an aligned hint,
/// which the kernel honours when that range is free. Returns `None` (having
/// undone any mapping) when the kernel put it elsewhere.
fn map_at_hint(
    fd: BorrowedFd<'_>,
    req: &MapRequest,
    flags: MapFlags,
    align: usize,
) -> Option<NonNull<u8>> {
    let hint = NEXT_HINT.load(Ordering::Relaxed);
    if hint == 0 {
        return None;
    }
    // SAFETY: without MAP_FIXED the hint is only a hint: the kernel never
    // replaces an existing mapping. The new mapping is owned by the caller.
    let ptr = unsafe { rustix::mm::mmap(hint as *mut _, req.len, req.prot, flags, fd, req.offset) }
        .ok()?;
    let ptr = NonNull::new(ptr.cast::<u8>())?;
    if (ptr.as_ptr() as usize).is_multiple_of(align) {
        remember_hint(ptr.as_ptr() as usize, req.len, align);
        return Some(ptr);
    }
    // SAFETY: we just created this mapping and nobody else has seen it.
    unsafe { unmap(ptr, req.len) };
    None
}

/// Reserves `len` bytes of address space (no access, no memory) starting at
/// a multiple of `align`, returning the start. The caller must map over the
/// whole range or unmap it.
fn reserve_aligned(len: usize, align: usize) -> rustix::io::Result<NonNull<u8>> {
    let page = rustix::param::page_size();
    let len = len.next_multiple_of(page);
    let total = len
        .checked_add(align - page)
        .ok_or(rustix::io::Errno::NOMEM)?;
    let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
    // SAFETY: a fresh anonymous PROT_NONE mapping at a kernel-chosen address
    // affects no existing memory.
    let base = unsafe {
        rustix::mm::mmap_anonymous(std::ptr::null_mut(), total, ProtFlags::empty(), flags)?
    };
    let base_addr = base as usize;
    let start = base_addr.next_multiple_of(align);
    let head = start - base_addr;
    let tail = total - head - len;
    // SAFETY: head and tail are the unused ends of the reservation just made,
    // which nothing else knows of.
    unsafe {
        if head > 0 {
            let _ = rustix::mm::munmap(base, head);
        }
        if tail > 0 {
            let _ = rustix::mm::munmap((start + len) as *mut std::ffi::c_void, tail);
        }
    }
    remember_hint(start, len, align);
    NonNull::new(start as *mut u8).ok_or(rustix::io::Errno::NOMEM)
}

/// Removes a mapping made by [`map`].
///
/// # Safety
/// `ptr..ptr+len` must be a mapping made by [`map`] that has not been
/// unmapped, and nothing may use it afterwards.
pub unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is a live mapping it owns and
    // will not touch again. munmap of a valid range cannot fail.
    let _ = unsafe { rustix::mm::munmap(ptr.as_ptr().cast(), len) };
}

/// Writes dirty pages in `ptr..ptr+len` back to the file and waits for it.
///
/// `ptr` must be page-aligned; the range must lie within one live mapping
/// (the kernel checks and fails with `ENOMEM` otherwise, touching nothing).
pub fn sync(ptr: NonNull<u8>, len: usize) -> rustix::io::Result<()> {
    // SAFETY: msync only reads the page tables of the range; on a range that
    // is not mapped it fails with ENOMEM instead of touching memory.
    unsafe { rustix::mm::msync(ptr.as_ptr().cast(), len, MsyncFlags::SYNC) }
}

unsafe extern "C" {
    /// POSIX; provided by the C library every Rust program on Linux links.
    fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> std::ffi::c_int;
}

/// Runs `prepare` in the forking thread before every `fork()`, then `parent`
/// in the parent and `child` in the child after it (registered once per
/// call; call it once). `child` runs in a process where every other thread
/// has vanished. None of them may unwind.
pub fn on_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: registers plain function pointers with the C library; no
    // memory is shared with the callees beyond what they themselves touch.
    let _ = unsafe { pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// A word in a page of its own that the kernel zeroes in any child this
/// process forks (`MADV_WIPEONFORK`, Linux 4.14), however the child was made
/// (`fork()`, or a bare `clone` that runs no `pthread_atfork` handler): what
/// this process stores there reads as 0 in its children. `None` where the
/// kernel cannot do it. Once made, finding it is one load (it is on every
/// handle check).
#[inline]
pub fn fork_wiped_word() -> Option<&'static AtomicU64> {
    let word = WIPED_WORD.load(Ordering::Acquire);
    if word.is_null() {
        return make_fork_wiped_word();
    }
    // SAFETY: a non-null pointer here is either the wiped page (mapped
    // read-write for the life of the process, never unmapped, page-aligned,
    // used only as this atomic) or `NO_WIPED_WORD`'s address.
    let word = unsafe { &*word };
    (!std::ptr::eq(word, &NO_WIPED_WORD)).then_some(word)
}

/// Where [`fork_wiped_word`] is: null until made.
static WIPED_WORD: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
/// Stands for "the kernel cannot wipe a page on fork" in `WIPED_WORD`.
static NO_WIPED_WORD: AtomicU64 = AtomicU64::new(0);

/// Makes the page (once: a racing thread that loses unmaps its own). No
/// lock, so that a `fork()` in the middle cannot leave a child waiting.
#[cold]
#[inline(never)]
fn make_fork_wiped_word() -> Option<&'static AtomicU64> {
    let len = rustix::param::page_size();
    let unavailable = std::ptr::from_ref(&NO_WIPED_WORD).cast_mut();
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address affects
    // no existing memory.
    let mapped = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    };
    let word = match mapped {
        Ok(ptr) => {
            // SAFETY: advice on the mapping just made, which only this
            // function knows of.
            match unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxWipeOnFork) } {
                Ok(()) => ptr.cast::<AtomicU64>(),
                Err(_) => {
                    // SAFETY: the mapping just made, not shared with anyone.
                    let _ = unsafe { rustix::mm::munmap(ptr, len) };
                    unavailable
                }
            }
        }
        Err(_) => unavailable,
    };
    if let Err(_other) = WIPED_WORD.compare_exchange(
        std::ptr::null_mut(),
        word,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) && word != unavailable
    {
        // SAFETY: our own mapping, which lost the race: nobody else knows it.
        let _ = unsafe { rustix::mm::munmap(word.cast(), len) };
    }
    fork_wiped_word()
}

/// The file (device, inode) that [`neutralize_fds`] put in a forked
/// child's inherited descriptors: a memory file of its own, which nothing
/// else in the child can have opened (0: none yet).
static PLACEHOLDER: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The (device, inode) of the file behind `fd`, if it is open.
pub fn file_identity(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino))
}

/// The placeholder [`make_fork_placeholder`] made for the fork under way
/// (-1: none).
static PLACEHOLDER_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Makes the placeholder a fork's child puts in the parent connection's
/// descriptors ([`neutralize_fds`]), in the parent before the fork (so
/// that the child's fork handler creates nothing): a memory file of its
/// own, or `/dev/null` if none can be made.
pub fn make_fork_placeholder() {
    use rustix::fs::{MemfdFlags, Mode, OFlags};
    let made = rustix::fs::memfd_create(c"objmgr-forked", MemfdFlags::CLOEXEC)
        .or_else(|_| rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()));
    let Ok(placeholder) = made else {
        return;
    };
    if let Some((dev, ino)) = file_identity(placeholder.as_fd()) {
        PLACEHOLDER[0].store(dev, Ordering::Relaxed);
        PLACEHOLDER[1].store(ino, Ordering::Relaxed);
    }
    drop_fork_placeholder();
    PLACEHOLDER_FD.store(
        std::os::fd::IntoRawFd::into_raw_fd(placeholder),
        Ordering::Release,
    );
}

/// Closes the placeholder (after the fork, in both processes).
pub fn drop_fork_placeholder() {
    let fd = PLACEHOLDER_FD.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        close_inherited_fd(fd);
    }
}

/// Replaces descriptors `fds` (those not negative) with the placeholder in
/// place: system calls only (it runs in a fork handler). In a forked child
/// this drops the child's references to the parent's broker connection
/// without freeing the numbers, which the child's copy of the connection
/// still owns; it closes them later only if they still hold the placeholder
/// ([`inherited_is_ours`]): by then the child may have closed them and
/// opened files of its own under the same numbers.
pub fn neutralize_fds(fds: &[std::os::fd::RawFd]) {
    let placeholder = PLACEHOLDER_FD.load(Ordering::Acquire);
    if placeholder < 0 {
        return;
    }
    // SAFETY: the placeholder is open until `drop_fork_placeholder`, which
    // runs after this; only borrowed for the dup3 below.
    let placeholder = unsafe { BorrowedFd::borrow_raw(placeholder) };
    for &fd in fds.iter().filter(|&&fd| fd >= 0) {
        // SAFETY: `fd` is an open descriptor owned by the client's
        // connection object; ManuallyDrop keeps this temporary OwnedFd from
        // closing it. dup3 atomically replaces what the number refers to.
        let mut target = std::mem::ManuallyDrop::new(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        });
        let _ = rustix::io::dup3(placeholder, &mut target, rustix::io::DupFlags::CLOEXEC);
    }
}

/// Whether descriptor `fd` names one of objmgr's memory files (a section's
/// or an arena's, or the fork handler's placeholder), by its link in
/// `/proc/self/fd` (false if that cannot be read): for a forked child's
/// first call of the library, which closes the parent's descriptors it
/// still has, and must not close files the child opened under numbers it
/// closed.
pub fn names_objmgr_memory(fd: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|link| link.to_string_lossy().starts_with("/memfd:objmgr-"))
}

/// Whether descriptor number `fd`, inherited from the parent, is still what
/// the child's copy of the connection believes: the fork handler's
/// placeholder, or the file `identity` (for a child made without the
/// handler). If not, the child closed it and the number names a file of its
/// own (or nothing), which must not be closed. By number: what it names is
/// not known to be open.
pub fn inherited_is_ours(fd: std::os::fd::RawFd, identity: Option<(u64, u64)>) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes at most one `stat` to the pointer, which points
    // at one; any number may be asked about (a closed one fails, EBADF).
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled the whole `stat`.
    let st = unsafe { st.assume_init() };
    let now = (st.st_dev, st.st_ino);
    let placeholder = (
        PLACEHOLDER[0].load(Ordering::Relaxed),
        PLACEHOLDER[1].load(Ordering::Relaxed),
    );
    (placeholder.1 != 0 && now == placeholder) || identity == Some(now)
}

/// Closes descriptor `fd`, a forked child's copy of a descriptor of its
/// parent's connection, if it is still the inherited file `identity` (or the
/// fork handler's placeholder); else the child closed it and the number is
/// its own now, and it is left alone.
pub fn close_inherited_if_ours(fd: std::os::fd::RawFd, identity: Option<(u64, u64)>) {
    if inherited_is_ours(fd, identity) {
        close_inherited_fd(fd);
    }
}

/// Closes descriptor `fd`, which a forked child inherited and nothing in it
/// owns (the object that owned it stayed with a thread of the parent). Only
/// right before the child's own code runs (in the fork handler), or after
/// [`inherited_is_ours`] said the number still names the inherited file.
pub fn close_inherited_fd(fd: std::os::fd::RawFd) {
    // SAFETY: `fd` is open and owned by no object in this process (the
    // caller took the number out of the only place that knew it), so
    // closing it cannot close something another owner still uses.
    drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
}

/// A byte-range lock's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeLock {
    Shared,
    Exclusive,
    Unlock,
}

fn flock_of(kind: RangeLock, offset: u64, len: u64) -> std::io::Result<libc::flock> {
    // Linux ranges are signed: a range that reaches past i64::MAX is cut
    // there (no file is that long). A length of 0 means "to the end, and
    // beyond" on Linux: never asked for here.
    let start =
        i64::try_from(offset).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // Up to and including the byte at i64::MAX (Linux cannot go further).
    let room = (i64::MAX - start).saturating_add(1);
    let len = i64::try_from(len).unwrap_or(i64::MAX).min(room);
    if len == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let kind = match kind {
        RangeLock::Shared => libc::F_RDLCK,
        RangeLock::Exclusive => libc::F_WRLCK,
        RangeLock::Unlock => libc::F_UNLCK,
    };
    Ok(libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: len,
        l_pid: 0,
    })
}

/// Takes (or, with [`RangeLock::Unlock`], gives back) an open-file-description
/// lock on `len` bytes from `offset`; `wait`: sleep until it can be had.
pub fn range_lock(
    fd: BorrowedFd<'_>,
    kind: RangeLock,
    offset: u64,
    len: u64,
    wait: bool,
) -> std::io::Result<()> {
    let lock = flock_of(kind, offset, len)?;
    let command = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: fcntl on a live fd with a pointer to a flock that lives
        // across the call; the kernel reads it only.
        let rc = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), command, &lock) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Whether another open file description (or process) holds a lock that
/// conflicts with `kind` on `len` bytes from `offset`.
pub fn range_conflicts(
    fd: BorrowedFd<'_>,
    kind: RangeLock,
    offset: u64,
    len: u64,
) -> std::io::Result<bool> {
    let mut lock = flock_of(kind, offset, len)?;
    // SAFETY: fcntl on a live fd with a pointer to a flock it may write,
    // which lives across the call.
    let rc = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::F_OFD_GETLK,
            &mut lock,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}
