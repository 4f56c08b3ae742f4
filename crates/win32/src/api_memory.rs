//! Virtual memory: `VirtualAlloc`, `VirtualFree`, `VirtualProtect`,
//! `VirtualQuery`.
//!
//! Windows keeps, per page, a state (reserved or committed) and a
//! protection (`PAGE_*`, with modifiers such as `PAGE_NOCACHE`) that Linux
//! has no words for: a committed `PAGE_NOACCESS` page and a reserved one are
//! both `PROT_NONE`, `PAGE_WRITECOPY` is a kind of mapping, not a
//! protection. So this module keeps Windows' view of every range it knows
//! — `VirtualAlloc` allocations and section views (which `api_section`
//! registers) — as runs of pages with one state each, and answers
//! `VirtualQuery` from it. Memory it did not make (stacks, the C heap,
//! libraries) is described from `/proc/self/maps`.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use objmgr_proto::error::*;
use objmgr_proto::section::{
    ALLOCATION_GRANULARITY, PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE,
    PAGE_EXECUTE_WRITECOPY, PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE, PAGE_WRITECOPY,
};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use rustix::param::page_size;

use crate::api_sync::exports;
use crate::ffi;
use crate::last_error::{fail, guard};
use crate::types::*;

const MEM_COMMIT: DWORD = 0x1000;
const MEM_RESERVE: DWORD = 0x2000;
const MEM_DECOMMIT: DWORD = 0x4000;
const MEM_RELEASE: DWORD = 0x8000;
const MEM_FREE: DWORD = 0x10000;
const MEM_PRIVATE: DWORD = 0x20000;
const MEM_MAPPED: DWORD = 0x40000;
const MEM_RESET: DWORD = 0x80000;
const MEM_TOP_DOWN: DWORD = 0x10_0000;
const MEM_RESET_UNDO: DWORD = 0x100_0000;
const MEM_IMAGE: DWORD = 0x100_0000;
const PAGE_GUARD: DWORD = 0x100;
pub(crate) const PAGE_NOCACHE: DWORD = 0x200;
const PAGE_WRITECOMBINE: DWORD = 0x400;
/// The modifiers that may accompany one base protection.
const MODIFIERS: DWORD = PAGE_GUARD | PAGE_NOCACHE | PAGE_WRITECOMBINE;
/// Cache modifiers belong to the allocation: pages keep the allocation's.
const CACHE_MODIFIERS: DWORD = PAGE_NOCACHE | PAGE_WRITECOMBINE;

/// Windows' state of one run of pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Pages {
    committed: bool,
    /// The `PAGE_*` value (0 while reserved).
    protect: DWORD,
    /// Pages of a shared view made copy-on-write: a private mapping of
    /// their own now (made once; their writes stay in this process).
    private: bool,
}

const RESERVED: Pages = Pages {
    committed: false,
    protect: 0,
    private: false,
};

/// What a tracked range is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `VirtualAlloc` memory.
    Private,
    /// A section view: what its access lets pages become, whether a file
    /// backs it (its pages are never committed by `VirtualAlloc`), and
    /// whether it is shared (not copy-on-write).
    View {
        access: DWORD,
        file_backed: bool,
        shared: bool,
    },
}

/// One allocation (or view): its pages in runs, keyed by the first page
/// index of each run (a run lasts until the next key).
struct Allocation {
    len: usize,
    protect: DWORD,
    kind: Kind,
    runs: BTreeMap<usize, Pages>,
}

impl Allocation {
    fn new(len: usize, protect: DWORD, kind: Kind, pages: Pages) -> Allocation {
        Allocation {
            len,
            protect,
            kind,
            runs: BTreeMap::from([(0, pages)]),
        }
    }

    fn page_count(&self) -> usize {
        self.len / page_size()
    }

    /// The run holding page `i`: its state and the page index after it.
    fn run_at(&self, i: usize) -> (Pages, usize) {
        let state = self
            .runs
            .range(..=i)
            .next_back()
            .map_or(RESERVED, |(_, &p)| p);
        let end = self
            .runs
            .range(i + 1..)
            .next()
            .map_or(self.page_count(), |(&k, _)| k);
        (state, end)
    }

    /// Sets pages `[from, to)` to `state`, keeping runs merged.
    fn set(&mut self, from: usize, to: usize, state: Pages) {
        let after = (to < self.page_count()).then(|| self.run_at(to).0);
        let inside: Vec<usize> = self.runs.range(from..=to).map(|(&k, _)| k).collect();
        for key in inside {
            self.runs.remove(&key);
        }
        let before = (from > 0).then(|| self.run_at(from - 1).0);
        if before != Some(state) {
            self.runs.insert(from, state);
        }
        if let Some(after) = after
            && after != state
        {
            self.runs.insert(to, after);
        }
    }

    /// The runs in `[from, to)`: (first page, page after, state).
    fn runs_in(&self, from: usize, to: usize) -> Vec<(usize, usize, Pages)> {
        let mut runs = Vec::new();
        let mut i = from;
        while i < to {
            let (state, end) = self.run_at(i);
            let end = end.min(to);
            runs.push((i, end, state));
            i = end;
        }
        runs
    }

    /// Commits pages `[from, to)` with `protect`, each run keeping whether
    /// it is a private copy.
    fn set_protect(&mut self, from: usize, to: usize, protect: DWORD) {
        for (first, end, state) in self.runs_in(from, to) {
            let pages = Pages {
                committed: true,
                protect,
                private: state.private,
            };
            self.set(first, end, pages);
        }
    }

    /// Whether every page in `[from, to)` is committed.
    fn all_committed(&self, from: usize, to: usize) -> bool {
        let mut i = from;
        while i < to {
            let (state, end) = self.run_at(i);
            if !state.committed {
                return false;
            }
            i = end;
        }
        true
    }
}

/// Tracked allocations and views by base address.
static MEMORY: Mutex<BTreeMap<usize, Allocation>> = Mutex::new(BTreeMap::new());

fn memory() -> std::sync::MutexGuard<'static, BTreeMap<usize, Allocation>> {
    crate::fork::guard();
    MEMORY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tracked memory, locked (for the `fork()` handlers).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(MEMORY.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The allocation holding the pages `[start, start + len)` entirely: its
/// base (the caller looks it up in the same guard).
fn holding(
    memory: &BTreeMap<usize, Allocation>,
    start: usize,
    len: usize,
) -> Result<usize, Win32Error> {
    let (&base, a) = memory
        .range(..=start)
        .next_back()
        .ok_or(ERROR_INVALID_ADDRESS)?;
    if start >= base + a.len || start + len > base + a.len {
        return Err(ERROR_INVALID_ADDRESS);
    }
    Ok(base)
}

/// Registers a view `api_section` mapped: `protect` is what its access
/// makes its pages (`PAGE_READONLY` for `FILE_MAP_READ`, ...). The pages of
/// a `SEC_RESERVE` section's view start reserved (no access) until
/// `VirtualAlloc(MEM_COMMIT)` commits them in this view.
pub(crate) fn track_view(
    base: usize,
    len: usize,
    protect: DWORD,
    file_backed: bool,
    reserved: bool,
) -> Result<(), Win32Error> {
    let len = len.next_multiple_of(page_size());
    let shared = !matches!(protect & 0xFF, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY);
    let kind = Kind::View {
        access: protect & 0xFF,
        file_backed,
        shared,
    };
    let pages = if reserved {
        mprotect(base, len, PAGE_NOACCESS)?;
        RESERVED
    } else {
        Pages {
            committed: true,
            protect,
            private: false,
        }
    };
    memory().insert(base, Allocation::new(len, protect, kind, pages));
    Ok(())
}

/// Forgets a view `api_section` unmapped.
pub(crate) fn untrack_view(base: usize) {
    memory().remove(&base);
}

/// A `PAGE_*` value split into its one base protection and its modifiers;
/// `None` for anything else (no base, two bases, unknown bits, `PAGE_GUARD`
/// or a cache modifier on `PAGE_NOACCESS`, both cache modifiers).
fn parse_protect(protect: DWORD) -> Option<(DWORD, DWORD)> {
    let base = protect & 0xFF;
    let modifiers = protect & !0xFF;
    if !base.is_power_of_two() || modifiers & !MODIFIERS != 0 {
        return None;
    }
    if base == PAGE_NOACCESS && modifiers != 0 {
        return None;
    }
    if modifiers & CACHE_MODIFIERS == CACHE_MODIFIERS {
        return None;
    }
    Some((base, modifiers))
}

/// What the kernel is asked for a page of this protection. Guard pages
/// have no access (a touch faults; Windows would raise a guard-page
/// exception once, which needs structured exception handling).
fn prot_flags(protect: DWORD) -> ProtFlags {
    if protect & PAGE_GUARD != 0 {
        return ProtFlags::empty();
    }
    match protect & 0xFF {
        PAGE_READONLY => ProtFlags::READ,
        PAGE_READWRITE | PAGE_WRITECOPY => ProtFlags::READ | ProtFlags::WRITE,
        PAGE_EXECUTE => ProtFlags::EXEC,
        PAGE_EXECUTE_READ => ProtFlags::READ | ProtFlags::EXEC,
        PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY => {
            ProtFlags::READ | ProtFlags::WRITE | ProtFlags::EXEC
        }
        _ => ProtFlags::empty(),
    }
}

fn mprotect(start: usize, len: usize, protect: DWORD) -> Result<(), Win32Error> {
    let flags = MprotectFlags::from_bits_retain(prot_flags(protect).bits());
    // SAFETY: callers pass pages of an allocation or view this module
    // tracks, which the caller of the Win32 function owns.
    unsafe { rustix::mm::mprotect(start as *mut c_void, len, flags) }
        .map_err(|e| Win32Error::from_errno(e.raw_os_error()))
}

/// What a protection lets a page do: read, write, execute (copy-on-write
/// counts as read, since it never writes the section).
fn access_class(protect: DWORD) -> (bool, bool, bool) {
    match protect & 0xFF {
        PAGE_READONLY | PAGE_WRITECOPY => (true, false, false),
        PAGE_READWRITE => (true, true, false),
        PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_WRITECOPY => (true, false, true),
        PAGE_EXECUTE_READWRITE => (true, true, true),
        _ => (false, false, false),
    }
}

/// Whether pages of a view mapped with protection `view` may be set to
/// `base` (`VirtualProtect`, or `VirtualAlloc(MEM_COMMIT)` in a view): only
/// within what the view may do, as Windows checks.
fn view_allows(view: DWORD, base: DWORD) -> bool {
    let (r, w, x) = access_class(view);
    let (wr, ww, wx) = access_class(base);
    (r || !wr) && (w || !ww) && (x || !wx)
}

/// The page range from `addr` (rounded down to `align`) to the end of the
/// page holding byte `addr + size - 1`.
fn pages(addr: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    let start = addr & !(align - 1);
    let end = addr
        .checked_add(size)?
        .checked_next_multiple_of(page_size())?;
    Some((start, end - start))
}

/// Commits pages of an existing allocation (`VirtualAlloc(MEM_COMMIT)` at
/// an address).
fn commit(
    start: usize,
    len: usize,
    protect: DWORD,
    source: Option<&PrivateSource>,
) -> Result<usize, Win32Error> {
    let mut memory = memory();
    let base = holding(&memory, start, len)?;
    let a = memory.get_mut(&base).ok_or(ERROR_INVALID_ADDRESS)?;
    let copy_on_write = matches!(protect & 0xFF, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY);
    match a.kind {
        // A file's pages are committed by the file: never here.
        Kind::View {
            file_backed: true, ..
        } => return Err(ERROR_ACCESS_DENIED),
        Kind::View { access, .. } if !view_allows(access, protect & 0xFF) => {
            return Err(ERROR_INVALID_PARAMETER);
        }
        Kind::View { .. } => {}
        // Private memory is never copy-on-write.
        Kind::Private if copy_on_write => return Err(ERROR_INVALID_PARAMETER),
        Kind::Private => {}
    }
    let protect = (protect & !CACHE_MODIFIERS) | (a.protect & CACHE_MODIFIERS);
    let first = (start - base) / page_size();
    let last = first + len / page_size();
    if copy_on_write && matches!(a.kind, Kind::View { shared: true, .. }) {
        // Copy-on-write pages of a shared view are private: their writes
        // must never reach the section.
        privatize(base, a, first, last, source)?;
    }
    mprotect(start, len, protect)?;
    a.set_protect(first, last, protect);
    Ok(start)
}

/// `MEM_RESET`/`MEM_RESET_UNDO`: the pages' contents are of no interest
/// for now / again. Linux is only told the pages are cold (reclaimed
/// first), so the contents always survive: `MEM_RESET_UNDO` always succeeds.
fn reset(addr: usize, size: usize, undo: bool) -> Result<usize, Win32Error> {
    let (start, len) = pages(addr, size, page_size()).ok_or(ERROR_INVALID_ADDRESS)?;
    {
        let memory = memory();
        holding(&memory, start, len)?;
    }
    if !undo {
        // SAFETY: advice only, about pages of a tracked allocation.
        let _ = unsafe {
            rustix::mm::madvise(start as *mut c_void, len, rustix::mm::Advice::LinuxCold)
        };
    }
    Ok(start)
}

unsafe fn virtual_alloc(addr: LPVOID, size: SIZE_T, kind: DWORD, protect: DWORD) -> LPVOID {
    let null = std::ptr::null_mut();
    if kind == MEM_RESET || kind == MEM_RESET_UNDO {
        return match reset(addr as usize, size, kind == MEM_RESET_UNDO) {
            Ok(start) => start as LPVOID,
            Err(code) => fail(code, null),
        };
    }
    let known = MEM_COMMIT | MEM_RESERVE | MEM_TOP_DOWN;
    if size == 0 || kind & !known != 0 || kind & (MEM_COMMIT | MEM_RESERVE) == 0 {
        return fail(ERROR_INVALID_PARAMETER, null);
    }
    let Some((base_protect, _)) = parse_protect(protect) else {
        return fail(ERROR_INVALID_PARAMETER, null);
    };
    let Some(len) = size
        .checked_next_multiple_of(page_size())
        .filter(|&l| l <= isize::MAX as usize / 2)
    else {
        return fail(ERROR_NOT_ENOUGH_MEMORY, null);
    };
    if !addr.is_null() && kind & MEM_RESERVE == 0 {
        let Some((start, len)) = pages(addr as usize, size, page_size()) else {
            return fail(ERROR_INVALID_ADDRESS, null);
        };
        let source = copy_on_write_source(start, protect);
        return match commit(start, len, protect, source.as_ref()) {
            Ok(start) => start as LPVOID,
            Err(code) => fail(code, null),
        };
    }
    // New private memory is never copy-on-write.
    if matches!(base_protect, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY) {
        return fail(ERROR_INVALID_PARAMETER, null);
    }
    let committed = kind & MEM_COMMIT != 0;
    let prot = if committed {
        prot_flags(protect)
    } else {
        ProtFlags::empty()
    };
    let granule = ALLOCATION_GRANULARITY as usize;
    let (mapped, len) = if addr.is_null() {
        // Reserve extra, then trim to a 64 KiB boundary, as Windows aligns.
        let total = len + granule;
        // SAFETY: a fresh private mapping at a kernel-chosen address.
        let raw = match unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                total,
                prot,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        } {
            Ok(p) => p as usize,
            Err(e) => return fail(Win32Error::from_errno(e.raw_os_error()), null),
        };
        let start = raw.next_multiple_of(granule);
        // SAFETY: the ends of the mapping just made, which nothing uses.
        unsafe {
            if start > raw {
                let _ = rustix::mm::munmap(raw as *mut c_void, start - raw);
            }
            let end = start + len;
            if raw + total > end {
                let _ = rustix::mm::munmap(end as *mut c_void, raw + total - end);
            }
        }
        (start, len)
    } else {
        // From the granule below `addr` to the page that holds its last byte.
        let Some((start, len)) = pages(addr as usize, size, granule) else {
            return fail(ERROR_INVALID_ADDRESS, null);
        };
        // SAFETY: FIXED_NOREPLACE never replaces an existing mapping.
        match unsafe {
            rustix::mm::mmap_anonymous(
                start as *mut c_void,
                len,
                prot,
                MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
            )
        } {
            Ok(p) if p as usize == start => (start, len),
            Ok(p) => {
                // SAFETY: a mapping just made elsewhere: undo it.
                let _ = unsafe { rustix::mm::munmap(p, len) };
                return fail(ERROR_INVALID_ADDRESS, null);
            }
            Err(_) => return fail(ERROR_INVALID_ADDRESS, null),
        }
    };
    let pages = if committed {
        Pages {
            committed: true,
            protect,
            private: false,
        }
    } else {
        RESERVED
    };
    memory().insert(mapped, Allocation::new(len, protect, Kind::Private, pages));
    mapped as LPVOID
}

unsafe fn virtual_free(addr: LPVOID, size: SIZE_T, kind: DWORD) -> BOOL {
    let start = addr as usize;
    let mut memory = memory();
    match kind {
        MEM_RELEASE => {
            if size != 0 {
                return fail(ERROR_INVALID_PARAMETER, FALSE);
            }
            match memory.get(&start).map(|a| a.kind) {
                Some(Kind::Private) => {}
                Some(Kind::View { .. }) => return fail(ERROR_INVALID_PARAMETER, FALSE),
                None => return fail(ERROR_INVALID_ADDRESS, FALSE),
            }
            let Some(a) = memory.remove(&start) else {
                return fail(ERROR_INVALID_ADDRESS, FALSE);
            };
            // SAFETY: an allocation this module made, now forgotten.
            let _ = unsafe { rustix::mm::munmap(addr, a.len) };
            TRUE
        }
        MEM_DECOMMIT => {
            let page_start = start & !(page_size() - 1);
            let Ok(base) = holding(&memory, page_start, page_size()) else {
                return fail(ERROR_INVALID_ADDRESS, FALSE);
            };
            let Some(a) = memory.get_mut(&base) else {
                return fail(ERROR_INVALID_ADDRESS, FALSE);
            };
            if a.kind != Kind::Private {
                return fail(ERROR_INVALID_PARAMETER, FALSE);
            }
            let end = if size == 0 {
                if page_start != base {
                    return fail(ERROR_INVALID_PARAMETER, FALSE);
                }
                base + a.len
            } else {
                match start.checked_add(size) {
                    Some(end) => end.next_multiple_of(page_size()),
                    None => return fail(ERROR_INVALID_PARAMETER, FALSE),
                }
            };
            if end > base + a.len {
                return fail(ERROR_INVALID_PARAMETER, FALSE);
            }
            // SAFETY: inside an allocation this module made: drop the pages
            // and their access.
            unsafe {
                let _ = rustix::mm::madvise(
                    page_start as *mut c_void,
                    end - page_start,
                    rustix::mm::Advice::LinuxDontNeed,
                );
            }
            let _ = mprotect(page_start, end - page_start, PAGE_NOACCESS);
            let first = (page_start - base) / page_size();
            a.set(first, (end - base) / page_size(), RESERVED);
            TRUE
        }
        _ => fail(ERROR_INVALID_PARAMETER, FALSE),
    }
}

/// One line of `/proc/self/maps`: start, end, permissions, path.
struct Region {
    start: usize,
    end: usize,
    read: bool,
    write: bool,
    exec: bool,
    path: String,
}

fn regions() -> Vec<Region> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?.as_bytes().to_vec();
            let path = fields.nth(3).unwrap_or("").to_owned();
            Some(Region {
                start: usize::from_str_radix(start, 16).ok()?,
                end: usize::from_str_radix(end, 16).ok()?,
                read: perms.first() == Some(&b'r'),
                write: perms.get(1) == Some(&b'w'),
                exec: perms.get(2) == Some(&b'x'),
                path,
            })
        })
        .collect()
}

fn page_protection(r: bool, w: bool, x: bool) -> DWORD {
    match (r, w, x) {
        (_, true, true) => PAGE_EXECUTE_READWRITE,
        (true, false, true) => PAGE_EXECUTE_READ,
        (false, false, true) => PAGE_EXECUTE,
        (_, true, false) => PAGE_READWRITE,
        (true, false, false) => PAGE_READONLY,
        (false, false, false) => PAGE_NOACCESS,
    }
}

/// The most pages one look at `/proc/self/pagemap` reads (a region reported
/// is at most this long in a copy-on-write view).
const WRITTEN_SCAN_PAGES: usize = 4096;

/// Which of `count` pages from `start` (at most [`WRITTEN_SCAN_PAGES`])
/// this process has written (their
/// copy-on-write copy exists: the page is anonymous now), from
/// `/proc/self/pagemap`.
fn written(start: usize, count: usize) -> Vec<bool> {
    use std::io::{Read, Seek, SeekFrom};
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE_OR_SHARED: u64 = 1 << 61;
    let count = count.min(WRITTEN_SCAN_PAGES);
    let mut entries = vec![0u8; count * 8];
    let read = std::fs::File::open("/proc/self/pagemap").and_then(|mut f| {
        f.seek(SeekFrom::Start((start / page_size()) as u64 * 8))?;
        f.read_exact(&mut entries)
    });
    if read.is_err() {
        return vec![false; count];
    }
    entries
        .chunks_exact(8)
        .map(|e| {
            let bits = u64::from_le_bytes(e.try_into().unwrap_or([0; 8]));
            bits & (PRESENT | SWAPPED) != 0 && bits & FILE_OR_SHARED == 0
        })
        .collect()
}

/// A copy-on-write protection as it reads once the page is written.
fn after_write(protect: DWORD) -> DWORD {
    match protect & 0xFF {
        PAGE_WRITECOPY => (protect & !0xFF) | PAGE_READWRITE,
        PAGE_EXECUTE_WRITECOPY => (protect & !0xFF) | PAGE_EXECUTE_READWRITE,
        _ => protect,
    }
}

/// What `VirtualQuery` says of a page this module tracks.
fn query_tracked(page: usize) -> Option<MEMORY_BASIC_INFORMATION> {
    let memory = memory();
    let (&base, a) = memory.range(..=page).next_back()?;
    if page >= base + a.len {
        return None;
    }
    let i = (page - base) / page_size();
    let (state, end) = a.run_at(i);
    let mut size = (end - i) * page_size();
    let mut protect = state.protect;
    if state.committed && matches!(protect & 0xFF, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY) {
        // Copied pages read as writable; a region is pages alike.
        let marks = written(page, end - i);
        let first = marks.first().copied().unwrap_or(false);
        let alike = marks.iter().take_while(|&&m| m == first).count().max(1);
        size = alike * page_size();
        if first {
            protect = after_write(protect);
        }
    }
    Some(MEMORY_BASIC_INFORMATION {
        BaseAddress: page as LPVOID,
        AllocationBase: base as LPVOID,
        AllocationProtect: a.protect,
        PartitionId: 0,
        RegionSize: size,
        State: if state.committed {
            MEM_COMMIT
        } else {
            MEM_RESERVE
        },
        Protect: if state.committed { protect } else { 0 },
        Type: if a.kind == Kind::Private {
            MEM_PRIVATE
        } else {
            MEM_MAPPED
        },
    })
}

/// What `VirtualQuery` says of memory this module did not make.
fn query_untracked(page: usize) -> MEMORY_BASIC_INFORMATION {
    let regions = regions();
    match regions.iter().find(|r| r.start <= page && page < r.end) {
        Some(r) => {
            let protect = page_protection(r.read, r.write, r.exec);
            let kind = if r.path.starts_with('/') {
                if r.exec { MEM_IMAGE } else { MEM_MAPPED }
            } else {
                MEM_PRIVATE
            };
            MEMORY_BASIC_INFORMATION {
                BaseAddress: page as LPVOID,
                AllocationBase: r.start as LPVOID,
                AllocationProtect: protect,
                PartitionId: 0,
                RegionSize: r.end - page,
                State: MEM_COMMIT,
                Protect: protect,
                Type: kind,
            }
        }
        None => {
            let next = regions
                .iter()
                .map(|r| r.start)
                .filter(|&s| s > page)
                .min()
                .unwrap_or(page + page_size());
            MEMORY_BASIC_INFORMATION {
                BaseAddress: page as LPVOID,
                AllocationBase: std::ptr::null_mut(),
                AllocationProtect: 0,
                PartitionId: 0,
                RegionSize: next - page,
                State: MEM_FREE,
                Protect: PAGE_NOACCESS,
                Type: 0,
            }
        }
    }
}

unsafe fn virtual_query(
    addr: *const c_void,
    info: *mut MEMORY_BASIC_INFORMATION,
    len: SIZE_T,
) -> SIZE_T {
    if info.is_null() || len < std::mem::size_of::<MEMORY_BASIC_INFORMATION>() {
        return fail(ERROR_INSUFFICIENT_BUFFER, 0);
    }
    let page = (addr as usize) & !(page_size() - 1);
    let value = query_tracked(page).unwrap_or_else(|| query_untracked(page));
    // SAFETY: checked non-NULL and large enough.
    unsafe { ffi::put(info, value) };
    std::mem::size_of::<MEMORY_BASIC_INFORMATION>()
}

/// Makes `len` bytes at `start` (whole pages of a shared view) private, so
/// that writes never reach the section (`VirtualProtect(PAGE_WRITECOPY)`
/// on a shared view). With the section's own descriptor (`source`) the
/// range becomes a private mapping of the same pages, as Windows has it:
/// pages not yet written still follow the section and read as
/// `PAGE_WRITECOPY`. Without one (the section's handles are closed) it
/// becomes a private copy of what the pages hold now.
///
/// # Safety
/// The range is a readable part of a view this process mapped.
unsafe fn make_private(
    start: usize,
    len: usize,
    source: Option<&PrivateSource>,
) -> Result<(), Win32Error> {
    let errno = |e: rustix::io::Errno| Win32Error::from_errno(e.raw_os_error());
    if let Some(source) = source.filter(|s| s.covers(start, len)) {
        // SAFETY: replaces pages of the caller's own view with a private
        // mapping of the same section pages, at the same place.
        return unsafe {
            rustix::mm::mmap(
                start as *mut c_void,
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE | MapFlags::FIXED,
                &source.fd,
                source.offset + (start - source.base) as u64,
            )
        }
        .map(drop)
        .map_err(errno);
    }
    // SAFETY: a new anonymous mapping the kernel places; it replaces nothing.
    let copy = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .map_err(errno)?;
    // SAFETY: both ranges are `len` bytes, mapped and readable (the caller's
    // view) or writable (the new mapping), and do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(start as *const u8, copy.cast::<u8>(), len) };
    // SAFETY: moves the private copy over the view's pages, which the
    // caller owns; nothing else refers to the copy's old address.
    unsafe {
        rustix::mm::mremap_fixed(
            copy,
            len,
            len,
            rustix::mm::MremapFlags::MAYMOVE,
            start as *mut c_void,
        )
    }
    .map(drop)
    .map_err(errno)
}

/// A view's section, to map its pages privately: the section's descriptor,
/// the view's base and the section offset it maps there.
pub(crate) struct PrivateSource {
    pub(crate) fd: std::os::fd::OwnedFd,
    pub(crate) base: usize,
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

impl PrivateSource {
    fn covers(&self, start: usize, len: usize) -> bool {
        start >= self.base && start + len <= self.base + self.len
    }
}

/// Makes the pages `[first, last)` of a shared view private where they are
/// not yet (a second copy would lose the first one's writes).
fn privatize(
    base: usize,
    a: &mut Allocation,
    first: usize,
    last: usize,
    source: Option<&PrivateSource>,
) -> Result<(), Win32Error> {
    for (from, to, state) in a.runs_in(first, last) {
        if state.private {
            continue;
        }
        let (start, len) = (base + from * page_size(), (to - from) * page_size());
        if !prot_flags(state.protect).contains(ProtFlags::READ) {
            mprotect(start, len, PAGE_READONLY)?;
        }
        // SAFETY: readable pages inside one of this process's views.
        unsafe { make_private(start, len, source)? };
        a.set(
            from,
            to,
            Pages {
                private: true,
                ..state
            },
        );
    }
    Ok(())
}

/// `VirtualProtect` of tracked memory: one allocation, committed pages
/// only, within what a view allows. The old protection is the first
/// page's. `None` when no tracked allocation holds `start`.
fn protect_tracked(
    start: usize,
    len: usize,
    protect: DWORD,
    source: Option<&PrivateSource>,
) -> Option<Result<DWORD, Win32Error>> {
    let mut memory = memory();
    let (&base, a) = memory.range(..=start).next_back()?;
    if start >= base + a.len {
        return None;
    }
    let a = memory.get_mut(&base)?;
    Some(protect_in(base, a, (start, len), protect, source))
}

fn protect_in(
    base: usize,
    a: &mut Allocation,
    (start, len): (usize, usize),
    protect: DWORD,
    source: Option<&PrivateSource>,
) -> Result<DWORD, Win32Error> {
    if start + len > base + a.len {
        return Err(ERROR_INVALID_ADDRESS);
    }
    let (base_protect, _) = parse_protect(protect).ok_or(ERROR_INVALID_PARAMETER)?;
    let first = (start - base) / page_size();
    let last = first + len / page_size();
    if !a.all_committed(first, last) {
        return Err(ERROR_INVALID_ADDRESS);
    }
    let copy_on_write = matches!(base_protect, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY);
    match a.kind {
        Kind::Private if copy_on_write => return Err(ERROR_INVALID_PARAMETER),
        Kind::View { access, .. } if !view_allows(access, base_protect) => {
            return Err(ERROR_INVALID_PARAMETER);
        }
        Kind::Private | Kind::View { .. } => {}
    }
    let protect = (protect & !CACHE_MODIFIERS) | (a.protect & CACHE_MODIFIERS);
    let old = query_old(a, first, start);
    if copy_on_write && matches!(a.kind, Kind::View { shared: true, .. }) {
        // A shared view's pages become private: writes from now on stay in
        // this process.
        privatize(base, a, first, last, source)?;
    }
    mprotect(start, len, protect)?;
    a.set_protect(first, last, protect);
    Ok(old)
}

/// For a copy-on-write protection: the section of the view at `start`, to
/// map its pages privately (looked up before the memory lock is taken:
/// views, then handles, never the other way round).
fn copy_on_write_source(start: usize, protect: DWORD) -> Option<PrivateSource> {
    matches!(protect & 0xFF, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY)
        .then(|| crate::api_section::private_source(start))
        .flatten()
}

/// The protection the first page has now (a written copy-on-write page
/// reads as writable).
fn query_old(a: &Allocation, first: usize, start: usize) -> DWORD {
    let protect = a.run_at(first).0.protect;
    if matches!(protect & 0xFF, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY)
        && written(start, 1).first() == Some(&true)
    {
        after_write(protect)
    } else {
        protect
    }
}

unsafe fn virtual_protect(addr: LPVOID, size: SIZE_T, protect: DWORD, old: *mut DWORD) -> BOOL {
    if old.is_null() {
        return fail(ERROR_NOACCESS, FALSE);
    }
    let Some((start, len)) = pages(addr as usize, size.max(1), page_size()) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let source = copy_on_write_source(start, protect);
    let result = protect_tracked(start, len, protect, source.as_ref()).unwrap_or_else(|| {
        // Memory this module did not make: one region of it at most.
        let (base_protect, _) = parse_protect(protect).ok_or(ERROR_INVALID_PARAMETER)?;
        if matches!(base_protect, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY) {
            return Err(ERROR_INVALID_PARAMETER);
        }
        let before = query_untracked(start);
        if before.State == MEM_FREE || len > before.RegionSize {
            return Err(ERROR_INVALID_ADDRESS);
        }
        mprotect(start, len, protect).map_err(|_| ERROR_INVALID_ADDRESS)?;
        Ok(before.Protect)
    });
    match result {
        Ok(previous) => {
            // SAFETY: checked non-NULL.
            unsafe { ffi::put(old, previous) };
            TRUE
        }
        Err(code) => fail(code, FALSE),
    }
}

exports! {
    fn VirtualAlloc(addr: LPVOID, size: SIZE_T, kind: DWORD, protect: DWORD) -> LPVOID = std::ptr::null_mut()
        => virtual_alloc(addr, size, kind, protect);
    fn VirtualFree(addr: LPVOID, size: SIZE_T, kind: DWORD) -> BOOL = FALSE => virtual_free(addr, size, kind);
    fn VirtualProtect(addr: LPVOID, size: SIZE_T, protect: DWORD, old: *mut DWORD) -> BOOL = FALSE
        => virtual_protect(addr, size, protect, old);
    fn VirtualQuery(addr: *const c_void, info: *mut MEMORY_BASIC_INFORMATION, len: SIZE_T) -> SIZE_T = 0
        => virtual_query(addr, info, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_and_merge() {
        let ps = page_size();
        let rw = Pages {
            committed: true,
            protect: PAGE_READWRITE,
            private: false,
        };
        let ro = Pages {
            committed: true,
            protect: PAGE_READONLY,
            private: false,
        };
        let mut a = Allocation::new(8 * ps, PAGE_READWRITE, Kind::Private, rw);
        a.set(2, 4, ro);
        assert_eq!(a.run_at(0), (rw, 2));
        assert_eq!(a.run_at(3), (ro, 4));
        assert_eq!(a.run_at(4), (rw, 8));
        a.set(4, 8, RESERVED);
        assert!(!a.all_committed(0, 5));
        assert!(a.all_committed(0, 4));
        a.set(2, 8, rw);
        assert_eq!(a.runs.len(), 1);
        assert_eq!(a.run_at(5), (rw, 8));
    }

    #[test]
    fn protections_parse_as_windows_checks_them() {
        assert_eq!(
            parse_protect(PAGE_READWRITE | PAGE_NOCACHE),
            Some((PAGE_READWRITE, PAGE_NOCACHE))
        );
        assert_eq!(parse_protect(0), None);
        assert_eq!(parse_protect(PAGE_READONLY | PAGE_EXECUTE), None);
        assert_eq!(parse_protect(PAGE_NOACCESS | PAGE_GUARD), None);
        assert_eq!(
            parse_protect(PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE),
            None
        );
        assert!(view_allows(PAGE_READONLY, PAGE_WRITECOPY));
        assert!(!view_allows(PAGE_READONLY, PAGE_READWRITE));
        assert!(!view_allows(PAGE_WRITECOPY, PAGE_READWRITE));
        assert!(!view_allows(PAGE_READWRITE, PAGE_EXECUTE_READ));
        assert!(view_allows(PAGE_EXECUTE_READWRITE, PAGE_EXECUTE));
        assert!(view_allows(PAGE_NOACCESS, PAGE_NOACCESS));
        assert!(!view_allows(PAGE_NOACCESS, PAGE_READONLY));
    }
}
