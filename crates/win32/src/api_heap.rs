//! Memory the Windows way: `HeapAlloc` & co. on the process heap,
//! `LocalAlloc`/`GlobalAlloc` (fixed and movable), and the sizes they report.
//!
//! All of them are one allocator: the C heap, with a 16-byte header that
//! keeps the size the caller asked for (`HeapSize`, `LocalSize` and
//! `GlobalSize` report it exactly, as on Windows). A movable block never
//! moves here, so its handle is its address and locking it returns it.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;

use objmgr_proto::error::*;

use crate::api_sync::exports;
use crate::last_error::{SetLastError, fail, guard};
use crate::types::*;

/// `HEAP_ZERO_MEMORY`.
const HEAP_ZERO_MEMORY: DWORD = 0x8;
/// `HEAP_REALLOC_IN_PLACE_ONLY`.
const HEAP_REALLOC_IN_PLACE_ONLY: DWORD = 0x10;
/// `LMEM_ZEROINIT` = `GMEM_ZEROINIT`.
const LMEM_ZEROINIT: UINT = 0x40;
/// `LMEM_MODIFY` = `GMEM_MODIFY`: `LocalReAlloc` changes flags only.
const LMEM_MODIFY: UINT = 0x80;
/// What `GetProcessHeap` returns: any non-NULL value names the one heap.
const PROCESS_HEAP: HANDLE = 0x0001_0000 as HANDLE;

/// Bytes before each block: its requested size (16 keeps malloc's alignment).
const HEADER: usize = 16;

/// A new block of `size` bytes (zeroed if asked), or NULL with
/// `ERROR_NOT_ENOUGH_MEMORY`.
pub(crate) fn alloc(size: usize, zero: bool) -> *mut c_void {
    let Some(total) = size.checked_add(HEADER) else {
        return fail(ERROR_NOT_ENOUGH_MEMORY, std::ptr::null_mut());
    };
    // SAFETY: plain C allocation; no pointer is read.
    let base = unsafe {
        if zero {
            libc::calloc(1, total)
        } else {
            libc::malloc(total)
        }
    };
    if base.is_null() {
        return fail(ERROR_NOT_ENOUGH_MEMORY, std::ptr::null_mut());
    }
    // SAFETY: `base` has `HEADER + size` bytes, aligned for a usize.
    unsafe {
        base.cast::<usize>().write(size);
        base.cast::<u8>().add(HEADER).cast()
    }
}

/// The block's requested size.
///
/// # Safety
/// `p` came from [`alloc`] and is not freed.
unsafe fn block_size(p: *const c_void) -> usize {
    // SAFETY: the header before the block, per the contract.
    unsafe { p.cast::<u8>().sub(HEADER).cast::<usize>().read() }
}

/// Frees a block from [`alloc`] (NULL is ignored).
///
/// # Safety
/// `p` is NULL or came from [`alloc`] and is not freed yet.
pub(crate) unsafe fn free(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: the allocation starts at the header, per the contract.
        unsafe { libc::free(p.cast::<u8>().sub(HEADER).cast()) };
    }
}

/// Resizes a block; new bytes are zeroed if asked. NULL (block unchanged)
/// with `ERROR_NOT_ENOUGH_MEMORY` on failure.
///
/// # Safety
/// `p` came from [`alloc`] and is not freed.
unsafe fn realloc(p: *mut c_void, size: usize, zero: bool) -> *mut c_void {
    // SAFETY: per the contract.
    let old = unsafe { block_size(p) };
    let Some(total) = size.checked_add(HEADER) else {
        return fail(ERROR_NOT_ENOUGH_MEMORY, std::ptr::null_mut());
    };
    // SAFETY: the allocation starts at the header; realloc keeps it on failure.
    let base = unsafe { libc::realloc(p.cast::<u8>().sub(HEADER).cast(), total) };
    if base.is_null() {
        return fail(ERROR_NOT_ENOUGH_MEMORY, std::ptr::null_mut());
    }
    // SAFETY: `base` has `HEADER + size` bytes.
    unsafe {
        base.cast::<usize>().write(size);
        let block = base.cast::<u8>().add(HEADER);
        if zero && size > old {
            block.add(old).write_bytes(0, size - old);
        }
        block.cast()
    }
}

/// A copy of `bytes` in a new block (for results the caller frees with
/// `LocalFree`).
pub(crate) fn copy(bytes: &[u8]) -> *mut c_void {
    let p = alloc(bytes.len(), false);
    if !p.is_null() {
        // SAFETY: `p` has room for `bytes.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len()) };
    }
    p
}

fn heap_alloc(heap: HANDLE, flags: DWORD, size: usize) -> *mut c_void {
    if heap.is_null() {
        return fail(ERROR_INVALID_HANDLE, std::ptr::null_mut());
    }
    alloc(size, flags & HEAP_ZERO_MEMORY != 0)
}

unsafe fn heap_realloc(heap: HANDLE, flags: DWORD, p: *mut c_void, size: usize) -> *mut c_void {
    if heap.is_null() || p.is_null() {
        return fail(ERROR_INVALID_PARAMETER, std::ptr::null_mut());
    }
    if flags & HEAP_REALLOC_IN_PLACE_ONLY != 0 {
        // SAFETY: a block from this allocator per the Win32 contract.
        let old = unsafe { block_size(p) };
        if size > old {
            return fail(ERROR_NOT_ENOUGH_MEMORY, std::ptr::null_mut());
        }
        // Shrunk where it is: only the recorded size changes (realloc
        // might move it).
        // SAFETY: the header before the block, per the contract.
        unsafe { p.cast::<u8>().sub(HEADER).cast::<usize>().write(size) };
        return p;
    }
    // SAFETY: as above.
    unsafe { realloc(p, size, flags & HEAP_ZERO_MEMORY != 0) }
}

unsafe fn local_realloc(p: *mut c_void, size: usize, flags: UINT) -> *mut c_void {
    if p.is_null() {
        return fail(ERROR_INVALID_HANDLE, std::ptr::null_mut());
    }
    if flags & LMEM_MODIFY != 0 {
        return p; // Flags only: blocks here are all the same kind.
    }
    // SAFETY: a block from this allocator per the Win32 contract.
    unsafe { realloc(p, size, flags & LMEM_ZEROINIT != 0) }
}

unsafe fn size_of_block(p: *mut c_void) -> usize {
    if p.is_null() {
        return fail(ERROR_INVALID_HANDLE, 0);
    }
    SetLastError(0);
    // SAFETY: a block from this allocator per the Win32 contract.
    unsafe { block_size(p) }
}

const NULLP: *mut c_void = std::ptr::null_mut();

exports! {
    fn GetProcessHeap() -> HANDLE = NULLP => PROCESS_HEAP;
    fn HeapAlloc(heap: HANDLE, flags: DWORD, bytes: usize) -> *mut c_void = NULLP
        => heap_alloc(heap, flags, bytes);
    fn HeapReAlloc(heap: HANDLE, flags: DWORD, p: *mut c_void, bytes: usize) -> *mut c_void = NULLP
        => heap_realloc(heap, flags, p, bytes);
    fn HeapFree(heap: HANDLE, flags: DWORD, p: *mut c_void) -> BOOL = FALSE
        => { let _ = flags; if heap.is_null() { fail(ERROR_INVALID_HANDLE, FALSE) } else { free(p); TRUE } };
    fn HeapSize(heap: HANDLE, flags: DWORD, p: *const c_void) -> usize = usize::MAX
        => { let _ = (heap, flags); if p.is_null() { fail(ERROR_INVALID_PARAMETER, usize::MAX) } else { block_size(p) } };

    fn LocalAlloc(flags: UINT, bytes: usize) -> *mut c_void = NULLP => alloc(bytes, flags & LMEM_ZEROINIT != 0);
    fn LocalReAlloc(p: *mut c_void, bytes: usize, flags: UINT) -> *mut c_void = NULLP => local_realloc(p, bytes, flags);
    fn LocalFree(p: *mut c_void) -> *mut c_void = p => { free(p); NULLP };
    fn LocalSize(p: *mut c_void) -> usize = 0 => size_of_block(p);
    fn LocalLock(p: *mut c_void) -> *mut c_void = NULLP
        => if p.is_null() { fail(ERROR_INVALID_HANDLE, NULLP) } else { p };
    fn LocalUnlock(p: *mut c_void) -> BOOL = FALSE
        => { let _ = p; SetLastError(0); FALSE }; // FALSE + 0: no longer locked.
    fn GlobalAlloc(flags: UINT, bytes: usize) -> *mut c_void = NULLP => alloc(bytes, flags & LMEM_ZEROINIT != 0);
    fn GlobalReAlloc(p: *mut c_void, bytes: usize, flags: UINT) -> *mut c_void = NULLP => local_realloc(p, bytes, flags);
    fn GlobalFree(p: *mut c_void) -> *mut c_void = p => { free(p); NULLP };
    fn GlobalSize(p: *mut c_void) -> usize = 0 => size_of_block(p);
    fn GlobalLock(p: *mut c_void) -> *mut c_void = NULLP
        => if p.is_null() { fail(ERROR_INVALID_HANDLE, NULLP) } else { p };
    fn GlobalUnlock(p: *mut c_void) -> BOOL = FALSE
        => { let _ = p; SetLastError(0); FALSE };
}
