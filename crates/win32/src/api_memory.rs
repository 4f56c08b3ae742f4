//! Virtual memory: `VirtualAlloc`, `VirtualFree`, `VirtualProtect`,
//! `VirtualQuery` (which reports section views as `MEM_MAPPED`).
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

use crate::api_section::view_containing;
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
const MEM_IMAGE: DWORD = 0x100_0000;

/// `VirtualAlloc` allocations: base -> (size, protection asked for).
static ALLOCATIONS: Mutex<BTreeMap<usize, (usize, DWORD)>> = Mutex::new(BTreeMap::new());

fn allocations() -> std::sync::MutexGuard<'static, BTreeMap<usize, (usize, DWORD)>> {
    crate::fork::guard();
    ALLOCATIONS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The allocations, locked (for the `fork()` handlers).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(ALLOCATIONS.lock().unwrap_or_else(|p| p.into_inner()))
}

fn prot_flags(protect: DWORD) -> Option<ProtFlags> {
    Some(match protect & 0xFF {
        PAGE_NOACCESS => ProtFlags::empty(),
        PAGE_READONLY => ProtFlags::READ,
        PAGE_READWRITE | PAGE_WRITECOPY => ProtFlags::READ | ProtFlags::WRITE,
        PAGE_EXECUTE => ProtFlags::EXEC,
        PAGE_EXECUTE_READ => ProtFlags::READ | ProtFlags::EXEC,
        PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY => {
            ProtFlags::READ | ProtFlags::WRITE | ProtFlags::EXEC
        }
        _ => return None,
    })
}

fn page_protection(r: bool, w: bool, x: bool) -> DWORD {
    match (r, w, x) {
        (_, true, true) => PAGE_EXECUTE_READWRITE,
        (true, false, true) | (false, false, true) => PAGE_EXECUTE_READ,
        (_, true, false) => PAGE_READWRITE,
        (true, false, false) => PAGE_READONLY,
        (false, false, false) => PAGE_NOACCESS,
    }
}

/// The range from `addr` rounded down to `align` (a power of two) to the
/// end of the page that holds byte `addr + size - 1`: start and length.
fn pages(addr: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    let start = addr & !(align - 1);
    let end = addr
        .checked_add(size)?
        .checked_next_multiple_of(page_size())?;
    Some((start, end - start))
}

fn containing_allocation(addr: usize) -> Option<(usize, usize, DWORD)> {
    let allocations = allocations();
    let (&base, &(size, protect)) = allocations.range(..=addr).next_back()?;
    (addr < base + size).then_some((base, size, protect))
}

unsafe fn virtual_alloc(addr: LPVOID, size: SIZE_T, kind: DWORD, protect: DWORD) -> LPVOID {
    let null = std::ptr::null_mut();
    let Some(prot) = prot_flags(protect) else {
        return fail(ERROR_INVALID_PARAMETER, null);
    };
    if size == 0 || kind & (MEM_COMMIT | MEM_RESERVE) == 0 {
        return fail(ERROR_INVALID_PARAMETER, null);
    }
    let Some(len) = size
        .checked_next_multiple_of(page_size())
        .filter(|&l| l <= isize::MAX as usize / 2)
    else {
        return fail(ERROR_NOT_ENOUGH_MEMORY, null);
    };
    // Committing inside an existing reservation: just grant the access.
    if !addr.is_null() && kind & MEM_RESERVE == 0 {
        let Some((start, len)) = pages(addr as usize, size, page_size()) else {
            return fail(ERROR_INVALID_ADDRESS, null);
        };
        let Some((base, total, _)) = containing_allocation(start) else {
            return fail(ERROR_INVALID_ADDRESS, null);
        };
        if start + len > base + total {
            return fail(ERROR_INVALID_ADDRESS, null);
        }
        // SAFETY: the range lies in a reservation this module made.
        return match unsafe {
            rustix::mm::mprotect(
                start as *mut c_void,
                len,
                MprotectFlags::from_bits_retain(prot.bits()),
            )
        } {
            Ok(()) => start as LPVOID,
            Err(e) => fail(objmgr_proto::Win32Error::from_errno(e.raw_os_error()), null),
        };
    }
    let prot = if kind & MEM_COMMIT != 0 {
        prot
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
            Err(e) => return fail(objmgr_proto::Win32Error::from_errno(e.raw_os_error()), null),
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
    allocations().insert(mapped, (len, protect));
    mapped as LPVOID
}

unsafe fn virtual_free(addr: LPVOID, size: SIZE_T, kind: DWORD) -> BOOL {
    let start = addr as usize;
    match kind {
        MEM_RELEASE => {
            if size != 0 {
                return fail(ERROR_INVALID_PARAMETER, FALSE);
            }
            let Some((len, _)) = allocations().remove(&start) else {
                return fail(ERROR_INVALID_ADDRESS, FALSE);
            };
            // SAFETY: an allocation this module made, now forgotten.
            let _ = unsafe { rustix::mm::munmap(addr, len) };
            TRUE
        }
        MEM_DECOMMIT => {
            let page_start = start & !(page_size() - 1);
            let Some((base, total, _)) = containing_allocation(page_start) else {
                return fail(ERROR_INVALID_ADDRESS, FALSE);
            };
            let len = if size == 0 {
                base + total - page_start
            } else {
                (start + size).next_multiple_of(page_size()) - page_start
            };
            if page_start + len > base + total {
                return fail(ERROR_INVALID_PARAMETER, FALSE);
            }
            // SAFETY: inside an allocation this module made: drop the pages
            // and their access.
            unsafe {
                let _ = rustix::mm::madvise(
                    page_start as *mut c_void,
                    len,
                    rustix::mm::Advice::LinuxDontNeed,
                );
                let _ =
                    rustix::mm::mprotect(page_start as *mut c_void, len, MprotectFlags::empty());
            }
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

unsafe fn virtual_query(
    addr: *const c_void,
    info: *mut MEMORY_BASIC_INFORMATION,
    len: SIZE_T,
) -> SIZE_T {
    if info.is_null() || len < std::mem::size_of::<MEMORY_BASIC_INFORMATION>() {
        return fail(ERROR_INSUFFICIENT_BUFFER, 0);
    }
    let page = (addr as usize) & !(page_size() - 1);
    let regions = regions();
    let value = match regions.iter().find(|r| r.start <= page && page < r.end) {
        Some(r) => {
            let protect = page_protection(r.read, r.write, r.exec);
            let (base, kind) = if let Some((view, _)) = view_containing(page) {
                (view, MEM_MAPPED)
            } else if let Some((base, _, _)) = containing_allocation(page) {
                (base, MEM_PRIVATE)
            } else if r.path.starts_with('/') {
                (r.start, if r.exec { MEM_IMAGE } else { MEM_MAPPED })
            } else {
                (r.start, MEM_PRIVATE)
            };
            let reserved_only =
                !(r.read || r.write || r.exec) && containing_allocation(page).is_some();
            MEMORY_BASIC_INFORMATION {
                BaseAddress: page as LPVOID,
                AllocationBase: base as LPVOID,
                AllocationProtect: containing_allocation(page).map_or(protect, |(_, _, p)| p),
                PartitionId: 0,
                RegionSize: r.end - page,
                State: if reserved_only {
                    MEM_RESERVE
                } else {
                    MEM_COMMIT
                },
                Protect: if reserved_only { 0 } else { protect },
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
                Protect: 0x01,
                Type: 0,
            }
        }
    };
    // SAFETY: checked non-NULL and large enough.
    unsafe { ffi::put(info, value) };
    std::mem::size_of::<MEMORY_BASIC_INFORMATION>()
}

/// Whether the page at `addr` is part of a shared mapping (`/proc/self/maps`
/// flags it `s`).
fn in_shared_mapping(addr: usize) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            return false;
        };
        let Some((start, end)) = range.split_once('-') else {
            return false;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            return false;
        };
        (start..end).contains(&addr) && perms.as_bytes().get(3) == Some(&b's')
    })
}

/// Makes `len` bytes at `start` (whole pages of a shared view) private:
/// a copy of what they hold now, so that writes never reach the file
/// (`VirtualProtect(PAGE_WRITECOPY)` on a view). Pages not yet written no
/// longer follow later changes of the file, unlike Windows'.
///
/// # Safety
/// The range is a readable part of a view this process mapped.
unsafe fn make_private(start: usize, len: usize) -> Result<(), Win32Error> {
    let errno = |e: rustix::io::Errno| Win32Error::from_errno(e.raw_os_error());
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

unsafe fn virtual_protect(addr: LPVOID, size: SIZE_T, protect: DWORD, old: *mut DWORD) -> BOOL {
    if old.is_null() {
        return fail(ERROR_NOACCESS, FALSE);
    }
    let Some(prot) = prot_flags(protect) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let Some((start, len)) = pages(addr as usize, size.max(1), page_size()) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let mut before = std::mem::MaybeUninit::<MEMORY_BASIC_INFORMATION>::uninit();
    // SAFETY: writing into a local of the right size.
    let queried = unsafe {
        virtual_query(
            start as *const c_void,
            before.as_mut_ptr(),
            std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    if queried == 0 {
        return FALSE;
    }
    // SAFETY: initialized by virtual_query above.
    let before = unsafe { before.assume_init() };
    // One region only, as on Windows: never past it into neighbouring memory.
    if before.State == MEM_FREE || len > before.RegionSize {
        return fail(ERROR_INVALID_ADDRESS, FALSE);
    }
    // Copy-on-write asked of a shared view: from now on its writes stay in
    // this process.
    let copy_on_write = matches!(protect & 0xFF, PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY);
    if copy_on_write && view_containing(start).is_some() && in_shared_mapping(start) {
        let readable = !matches!(before.Protect & 0xFF, PAGE_NOACCESS | PAGE_EXECUTE);
        if !readable {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        }
        // SAFETY: a readable range inside one of this process's views.
        if let Err(code) = unsafe { make_private(start, len) } {
            return fail(code, FALSE);
        }
    }
    // SAFETY: changes access to pages the caller says are its memory; the
    // kernel refuses ranges that are not mapped (ENOMEM).
    match unsafe {
        rustix::mm::mprotect(
            start as *mut c_void,
            len,
            MprotectFlags::from_bits_retain(prot.bits()),
        )
    } {
        Ok(()) => {
            // SAFETY: checked non-NULL.
            unsafe { ffi::put(old, before.Protect) };
            TRUE
        }
        Err(_) => fail(ERROR_INVALID_ADDRESS, FALSE),
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
