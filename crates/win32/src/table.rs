//! The process's handles as C code holds them: each value maps to the Rust
//! object that owns it. Broker handles the table has not seen (inherited,
//! duplicated in) are taken over on first use. Files opened with
//! `CreateFile` live here only, with values that have [`FILE_HANDLE_BIT`].
//!
//! Lookups are on every wait and signal, so each thread keeps the entries
//! it used, placed by handle value, valid while the table's *epoch* is
//! unchanged; closing any handle moves the epoch. A hit costs one atomic
//! load and one comparison. Handles to synchronization objects are also
//! published to [`objmgr::by_value`], where waits and signals find them
//! with one load and no thread-local state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use objmgr::by_value;
use objmgr::handle::Object;
use objmgr_proto::Win32Error;
use objmgr_proto::error::{ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER};
use objmgr_proto::sync::MAXIMUM_WAIT_OBJECTS;

use crate::ffi::{handle_value, to_handle};
use crate::types::HANDLE;

/// File handles: above every broker value (at most 2^26).
pub const FILE_HANDLE_BIT: u32 = 1 << 30;

/// What a handle value refers to.
#[derive(Debug)]
pub enum Entry {
    Object(Object),
    File(File),
}

static TABLE: RwLock<Table> = RwLock::new(None);

/// Moves whenever a handle leaves the table (its value may then be reused).
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Entries per thread cache, placed by handle value (direct-mapped): the
/// values the broker hands out are small multiples of 4, so a program's
/// first 64 handles each have a place of their own, and a lookup is one
/// comparison.
const CACHED: usize = 64;

/// A thread's recently used entries, valid for one epoch.
struct Cache {
    epoch: u64,
    entries: [Option<(u32, Arc<Entry>)>; CACHED],
}

/// Where `value` lives in a [`Cache`].
fn place(value: u32) -> usize {
    (value >> 2) as usize % CACHED
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            epoch: u64::MAX,
            entries: [const { None }; CACHED],
        })
    };
}

impl Cache {
    /// The entry for `value`, if cached.
    #[inline]
    fn get(&self, value: u32) -> Option<&Entry> {
        match &self.entries[place(value)] {
            Some((cached, entry)) if *cached == value => Some(entry),
            _ => None,
        }
    }
}

/// Runs `f` with this thread's cache if it is valid for the current epoch;
/// gives `f` back otherwise (or when `f` itself gives up and says so with
/// `None`).
fn with_current_cache<T, F>(
    f: F,
    use_it: impl FnOnce(&Cache, &mut Option<F>) -> Option<T>,
) -> Result<T, F> {
    let mut f = Some(f);
    let found = CACHE.try_with(|cache| {
        // A nested lookup (inside another's `f`) may find the cache borrowed
        // for update: then it simply misses.
        {
            let current = cache.try_borrow().ok()?;
            if current.epoch == EPOCH.load(Ordering::Acquire) {
                return use_it(&current, &mut f);
            }
        }
        forget_stale(cache);
        None
    });
    match found {
        Ok(Some(result)) => Ok(result),
        // A miss, or a thread-local destructor after the cache is gone.
        _ => Err(f.take().expect("not used")),
    }
}

/// Lets go of a stale cache's entries now, so that a closed file or section
/// does not stay open in this thread's cache. Out of the lookup's way.
#[cold]
#[inline(never)]
fn forget_stale(cache: &RefCell<Cache>) {
    if let Ok(mut stale) = cache.try_borrow_mut() {
        stale.entries = [const { None }; CACHED];
    }
}

/// Runs `f` on the entry for `value` if this thread has it cached for the
/// current epoch; gives `f` back otherwise.
#[inline]
fn with_cached<T, F: FnOnce(&Entry) -> T>(value: u32, f: F) -> Result<T, F> {
    with_current_cache(f, |cache, f| {
        let entry = cache.get(value)?;
        Some(f.take().expect("not used yet")(entry))
    })
}

fn remember(value: u32, entry: &Arc<Entry>, epoch: u64) {
    let _ = CACHE.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        if cache.epoch != epoch {
            cache.epoch = epoch;
            cache.entries = [const { None }; CACHED];
        }
        cache.entries[place(value)] = Some((value, entry.clone()));
    });
}

/// The object behind `entry` as something to wait on; `ERROR_INVALID_HANDLE`
/// for a file, a section or anything else no wait can take.
fn waitable(entry: &Entry) -> Result<&dyn objmgr::Waitable, Win32Error> {
    match entry {
        Entry::Object(object) => object.waitable().ok_or(ERROR_INVALID_HANDLE),
        Entry::File(_) => Err(ERROR_INVALID_HANDLE),
    }
}

/// Runs `f` with the objects behind `handles`, in order, then `extra`
/// (taking over broker handles not seen yet): `ERROR_INVALID_HANDLE` if one
/// cannot be waited on. When all are in this thread's cache (a program
/// waiting on the same handles again) this takes no lock, no reference
/// count and no allocation.
pub fn with_waitables<T>(
    handles: &[HANDLE],
    extra: Option<&dyn objmgr::Waitable>,
    f: impl FnOnce(&[&dyn objmgr::Waitable]) -> T,
) -> Result<T, Win32Error> {
    if handles.len() > MAXIMUM_WAIT_OBJECTS {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let mut values = [0u32; MAXIMUM_WAIT_OBJECTS];
    for (value, &h) in values.iter_mut().zip(handles) {
        *value = handle_value(h).ok_or(ERROR_INVALID_HANDLE)?;
    }
    let values = &values[..handles.len()];
    let f = match with_current_cache(f, |cache, f| {
        // On the stack, in one pass; any miss (or an object no wait can
        // take, whose error the way below reports) gives up.
        let first = match values.first() {
            Some(&v) => waitable(cache.get(v)?).ok()?,
            None => extra?,
        };
        // Places past the end hold `first` and are never looked at.
        let mut objects = [first; MAXIMUM_WAIT_OBJECTS + 1];
        for (object, &v) in objects.iter_mut().zip(values).skip(1) {
            *object = waitable(cache.get(v)?).ok()?;
        }
        let mut len = values.len();
        if let Some(extra) = extra {
            objects[len] = extra;
            len += 1;
        }
        Some(f.take().expect("not used yet")(&objects[..len]))
    }) {
        Ok(result) => return Ok(result),
        Err(f) => f,
    };
    let epoch = EPOCH.load(Ordering::Acquire);
    let owned: Vec<Arc<Entry>> = handles
        .iter()
        .map(|&h| lookup(h))
        .collect::<Result<_, _>>()?;
    for (&value, entry) in values.iter().zip(&owned) {
        remember(value, entry, epoch);
    }
    let mut objects = owned
        .iter()
        .map(|entry| waitable(entry))
        .collect::<Result<Vec<_>, _>>()?;
    objects.extend(extra);
    if objects.is_empty() {
        return Err(ERROR_INVALID_PARAMETER);
    }
    Ok(f(&objects))
}

/// Runs `f` with the entry behind `handle` (taking over a broker handle not
/// seen yet); a thread's recently used handles need no lock and no
/// reference count.
#[inline]
pub fn with_entry<T>(handle: HANDLE, f: impl FnOnce(&Entry) -> T) -> Result<T, Win32Error> {
    let value = handle_value(handle).ok_or(ERROR_INVALID_HANDLE)?;
    match with_cached(value, f) {
        Ok(result) => Ok(result),
        Err(f) => with_entry_uncached(handle, value, f),
    }
}

/// [`with_entry`] for a handle not in this thread's cache: out of line, so
/// that the cached case stays small.
#[inline(never)]
fn with_entry_uncached<T>(
    handle: HANDLE,
    value: u32,
    f: impl FnOnce(&Entry) -> T,
) -> Result<T, Win32Error> {
    let epoch = EPOCH.load(Ordering::Acquire);
    let entry = lookup(handle)?;
    remember(value, &entry, epoch);
    Ok(f(&entry))
}

type Table = Option<HashMap<u32, Arc<Entry>>>;

/// The table, write-locked (for the `fork()` handlers).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(TABLE.write().unwrap_or_else(|p| p.into_inner()))
}

fn with_table<T>(f: impl FnOnce(&mut HashMap<u32, Arc<Entry>>) -> T) -> T {
    crate::fork::guard();
    // ResumeThread reads the table: nobody is suspended holding it.
    let _unstoppable = crate::api_thread::NoSuspend::new();
    let mut table = TABLE.write().unwrap_or_else(|p| p.into_inner());
    f(table.get_or_insert_with(HashMap::new))
}

/// Registers an object; returns its handle. An entry left for the same
/// value (its handle closed some other way) is forgotten, never closed.
pub fn insert_object(object: Object) -> HANDLE {
    let value = object.handle_value();
    let replaced = with_table(|t| {
        by_value::publish(&object);
        t.insert(value, Arc::new(Entry::Object(object)))
    });
    if let Some(old) = replaced {
        EPOCH.fetch_add(1, Ordering::AcqRel);
        if let Entry::Object(o) = &*old {
            o.forget();
        }
    }
    to_handle(value)
}

/// Registers a file; returns its handle.
pub fn insert_file(file: File) -> HANDLE {
    let value = FILE_HANDLE_BIT | ((file.as_raw_fd() as u32) << 2);
    with_table(|t| t.insert(value, Arc::new(Entry::File(file))));
    to_handle(value)
}

/// The entry behind `handle`, taking over a broker handle not seen yet.
pub fn lookup(handle: HANDLE) -> Result<Arc<Entry>, Win32Error> {
    let value = handle_value(handle).ok_or(ERROR_INVALID_HANDLE)?;
    crate::fork::guard();
    if let Some(entry) = TABLE
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|t| t.get(&value))
    {
        return Ok(entry.clone());
    }
    if value & FILE_HANDLE_BIT != 0 || value == 0 || value >= u32::MAX - 1 {
        return Err(ERROR_INVALID_HANDLE);
    }
    let object = objmgr::handle::take_over(value).map_err(|e| e.code())?;
    Ok(with_table(|t| {
        if let Some(existing) = t.get(&value) {
            // Another thread took it over first: keep one owner.
            object.forget();
            existing.clone()
        } else {
            by_value::publish(&object);
            let entry = Arc::new(Entry::Object(object));
            t.insert(value, entry.clone());
            entry
        }
    }))
}

/// The object behind `handle` (not a file).
pub fn object(handle: HANDLE) -> Result<Arc<Entry>, Win32Error> {
    let entry = lookup(handle)?;
    match *entry {
        Entry::Object(_) => Ok(entry),
        Entry::File(_) => Err(ERROR_INVALID_HANDLE),
    }
}

/// Removes `handle` from the table, returning its entry.
pub fn remove(handle: HANDLE) -> Result<Arc<Entry>, Win32Error> {
    // Make sure a broker handle the table has not seen is known first.
    lookup(handle)?;
    let value = handle_value(handle).ok_or(ERROR_INVALID_HANDLE)?;
    let entry = with_table(|t| withdraw(t, value));
    entry.ok_or(ERROR_INVALID_HANDLE)
}

/// Takes `value` out of the table, and out of every lookup, before its
/// handle is closed: after this no thread finds the old object under it.
fn withdraw(t: &mut HashMap<u32, Arc<Entry>>, value: u32) -> Option<Arc<Entry>> {
    by_value::withdraw(value);
    let entry = t.remove(&value);
    EPOCH.fetch_add(1, Ordering::AcqRel);
    entry
}

/// Forgets `value` without closing it (the broker closed it already).
pub fn forget(value: u32) {
    let entry = with_table(|t| withdraw(t, value));
    if let Some(entry) = entry
        && let Entry::Object(object) = &*entry
    {
        object.forget();
    }
}

/// Whether `handle` is one of this process's files.
pub fn is_file(handle: HANDLE) -> bool {
    handle_value(handle).is_some_and(|v| v & FILE_HANDLE_BIT != 0 && v < u32::MAX - 1)
}
