//! File mappings: `CreateFileMapping`, `OpenFileMapping`, `MapViewOfFile(Ex)`,
//! `UnmapViewOfFile`, `FlushViewOfFile`. Views are kept by base address so
//! that `UnmapViewOfFile` and `FlushViewOfFile` find them.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::sync::Mutex;

use objmgr::handle::Object;
use objmgr::{MapAccess, MapOptions, Section, View};
use objmgr_proto::error::*;
use objmgr_proto::section::parse_protection;

use crate::api_memory;
use crate::api_sync::{Name, created, exports, inheritable, open_named};
use crate::last_error::{fail, guard};
use crate::table::{self, Entry};
use crate::types::*;

/// A live view, with the handle it was mapped through and the section
/// offset it maps (to map its pages privately later: `VirtualProtect`
/// with `PAGE_WRITECOPY`).
struct Mapped {
    view: View,
    section: usize,
    offset: u64,
}

/// Live views by base address.
static VIEWS: Mutex<BTreeMap<usize, Mapped>> = Mutex::new(BTreeMap::new());

fn views() -> std::sync::MutexGuard<'static, BTreeMap<usize, Mapped>> {
    crate::fork::guard();
    VIEWS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The views, locked (for the `fork()` handlers).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(VIEWS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The base of the view that holds `addr` (its base or any byte in it).
fn view_base(views: &BTreeMap<usize, Mapped>, addr: usize) -> Option<usize> {
    let (&base, mapped) = views.range(..=addr).next_back()?;
    (addr
        < base
            + mapped
                .view
                .len()
                .next_multiple_of(rustix::param::page_size()))
    .then_some(base)
}

/// The section behind the view holding `addr`, to map its pages privately:
/// its descriptor (a copy, from the handle the view was mapped through, if
/// still open and still naming the pages the view maps), the view's base
/// and the section offset there.
pub(crate) fn private_source(addr: usize) -> Option<api_memory::PrivateSource> {
    let (base, section, offset, len) = {
        let views = views();
        let base = view_base(&views, addr)?;
        let mapped = views.get(&base)?;
        let len = mapped
            .view
            .len()
            .next_multiple_of(rustix::param::page_size());
        (base, mapped.section, mapped.offset, len)
    };
    let entry = table::object(section as HANDLE).ok()?;
    let Entry::Object(Object::Section(section)) = &*entry else {
        return None;
    };
    let fd = rustix::io::fcntl_dupfd_cloexec(std::os::fd::AsFd::as_fd(section), 3).ok()?;
    // The handle's value may name another section by now: its file must be
    // the one mapped at `base`.
    let st = rustix::fs::fstat(&fd).ok()?;
    let same = mapping_identity(base).is_some_and(|(dev, ino)| {
        dev == (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)) && ino == st.st_ino
    });
    same.then_some(api_memory::PrivateSource {
        fd,
        base,
        offset,
        len,
    })
}

/// The device and inode of the file mapped at `addr`, from `/proc/self/maps`.
fn mapping_identity(addr: usize) -> Option<((u32, u32), u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        if !(start..end).contains(&addr) {
            return None;
        }
        let (major, minor) = fields.nth(2)?.split_once(':')?;
        let inode = fields.next()?.parse().ok()?;
        Some((
            (
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            ),
            inode,
        ))
    })
}

unsafe fn create_mapping(
    file: HANDLE,
    attrs: *const SECURITY_ATTRIBUTES,
    protect: DWORD,
    high: DWORD,
    low: DWORD,
    name: Name,
) -> HANDLE {
    let null = std::ptr::null_mut();
    let (protection, attributes) = match parse_protection(protect) {
        Ok(parsed) => parsed,
        Err(code) => return fail(code, null),
    };
    // SAFETY: the Win32 arguments, passed through.
    let (inherit, name) = unsafe { (inheritable(attrs), name.read()) };
    let name = match name {
        Ok(name) => name,
        Err(code) => return fail(code, null),
    };
    let mut builder = Section::builder()
        .size((u64::from(high) << 32) | u64::from(low))
        .protection(protection)
        .large_pages(attributes.large_pages)
        .reserve(attributes.reserve)
        .no_cache(attributes.cache_hint)
        .inheritable(inherit);
    if let Some(name) = &name {
        builder = builder.name(name);
    }
    // SAFETY: the Win32 arguments, passed through.
    match unsafe { crate::api_security::requested_security(attrs) } {
        Ok(Some(security)) => builder = builder.security(security),
        Ok(None) => {}
        Err(code) => return fail(code, null),
    }
    let section = if file == INVALID_HANDLE_VALUE {
        builder.create()
    } else {
        let entry = match table::lookup(file) {
            Ok(entry) => entry,
            Err(code) => return fail(code, null),
        };
        match &*entry {
            Entry::File(f) => builder.create_from_file(f),
            Entry::Object(Object::File(f)) => {
                // The handle must allow what the protection does: reading
                // always, writing for a writable (shared) mapping, executing
                // for an executable one.
                use objmgr_proto::access::{FILE_EXECUTE, FILE_READ_DATA, FILE_WRITE_DATA};
                let mut needs = FILE_READ_DATA;
                if protection.allows_shared_write() {
                    needs |= FILE_WRITE_DATA;
                }
                if protection.allows_execute() {
                    needs |= FILE_EXECUTE;
                }
                if f.access() & needs != needs {
                    return fail(ERROR_ACCESS_DENIED, null);
                }
                builder.create_from_file(f.as_std())
            }
            Entry::Object(_) => return fail(ERROR_INVALID_HANDLE, null),
        }
    };
    match section {
        Ok(section) => created(section.existed(), Object::Section(section)),
        Err(e) => fail(e.code(), null),
    }
}

unsafe fn open_mapping(access: DWORD, inherit: BOOL, name: Name) -> HANDLE {
    // SAFETY: the Win32 name, passed through.
    unsafe {
        open_named(
            name,
            |n| Section::open_with(n, MapAccess(access), inherit != 0),
            Object::Section,
        )
    }
}

fn map_view(
    h: HANDLE,
    access: DWORD,
    high: DWORD,
    low: DWORD,
    bytes: usize,
    base: *mut c_void,
) -> *mut c_void {
    let null = std::ptr::null_mut();
    let entry = match table::object(h) {
        Ok(entry) => entry,
        Err(code) => return fail(code, null),
    };
    let Entry::Object(Object::Section(section)) = &*entry else {
        return fail(ERROR_INVALID_HANDLE, null);
    };
    let options = MapOptions {
        offset: (u64::from(high) << 32) | u64::from(low),
        len: bytes as u64,
        address: std::ptr::NonNull::new(base.cast()),
        ..MapOptions::new(MapAccess(access))
    };
    match section.map_with(&options) {
        Ok(view) => {
            let ptr = view.as_ptr();
            let reserved = section.reserved() && !section.is_file_backed();
            // A SEC_NOCACHE section's pages say so.
            let cache = if section.attributes() & objmgr_proto::section::SEC_NOCACHE != 0 {
                api_memory::PAGE_NOCACHE
            } else {
                0
            };
            if let Err(code) = api_memory::track_view(
                ptr as usize,
                view.len(),
                view.protection() | cache,
                section.is_file_backed(),
                reserved,
            ) {
                return fail(code, null);
            }
            let mapped = Mapped {
                view,
                section: h as usize,
                offset: options.offset,
            };
            views().insert(ptr as usize, mapped);
            ptr.cast()
        }
        Err(e) => fail(e.code(), null),
    }
}

/// `UnmapViewOfFile`: the view holding `addr` (its base or any byte in it,
/// as Windows accepts).
fn unmap_view(addr: *const c_void) -> BOOL {
    let view = {
        let mut views = views();
        view_base(&views, addr as usize).and_then(|base| views.remove(&base))
    };
    match view {
        Some(mapped) => {
            api_memory::untrack_view(mapped.view.as_ptr() as usize);
            drop(mapped);
            TRUE
        }
        None => fail(ERROR_INVALID_ADDRESS, FALSE),
    }
}

fn flush_view(addr: *const c_void, len: usize) -> BOOL {
    let views = views();
    let addr = addr as usize;
    let Some(base) = view_base(&views, addr) else {
        return fail(ERROR_INVALID_ADDRESS, FALSE);
    };
    let Some(view) = views.get(&base).map(|m| &m.view) else {
        return fail(ERROR_INVALID_ADDRESS, FALSE);
    };
    let offset = addr - base;
    if offset >= view.len() {
        return TRUE; // the slack of the last page: nothing of the section's
    }
    // 0 bytes: to the end of the view.
    let len = if len == 0 {
        view.len() - offset
    } else {
        len.min(view.len() - offset)
    };
    match view.flush_range(offset, len) {
        Ok(()) => TRUE,
        Err(e) => fail(e.code(), FALSE),
    }
}

exports! {
    fn CreateFileMappingA(file: HANDLE, a: *const SECURITY_ATTRIBUTES, protect: DWORD, high: DWORD, low: DWORD, name: *const c_char) -> HANDLE = std::ptr::null_mut()
        => create_mapping(file, a, protect, high, low, Name::Ansi(name));
    fn CreateFileMappingW(file: HANDLE, a: *const SECURITY_ATTRIBUTES, protect: DWORD, high: DWORD, low: DWORD, name: *const WCHAR) -> HANDLE = std::ptr::null_mut()
        => create_mapping(file, a, protect, high, low, Name::Wide(name));
    fn OpenFileMappingA(access: DWORD, inherit: BOOL, name: *const c_char) -> HANDLE = std::ptr::null_mut()
        => open_mapping(access, inherit, Name::Ansi(name));
    fn OpenFileMappingW(access: DWORD, inherit: BOOL, name: *const WCHAR) -> HANDLE = std::ptr::null_mut()
        => open_mapping(access, inherit, Name::Wide(name));
    fn MapViewOfFile(h: HANDLE, access: DWORD, high: DWORD, low: DWORD, bytes: SIZE_T) -> *mut c_void = std::ptr::null_mut()
        => map_view(h, access, high, low, bytes, std::ptr::null_mut());
    fn MapViewOfFileEx(h: HANDLE, access: DWORD, high: DWORD, low: DWORD, bytes: SIZE_T, base: *mut c_void) -> *mut c_void = std::ptr::null_mut()
        => map_view(h, access, high, low, bytes, base);
    fn UnmapViewOfFile(base: *const c_void) -> BOOL = FALSE => unmap_view(base);
    fn FlushViewOfFile(base: *const c_void, bytes: SIZE_T) -> BOOL = FALSE => flush_view(base, bytes);
}
