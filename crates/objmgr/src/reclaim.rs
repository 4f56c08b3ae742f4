//! What this process holds, for a broker that replaces one that died.
//!
//! Every handle the process made or opened itself is noted here, under the
//! connection lock, as the broker's reply grants it, and forgotten when it
//! is closed. When the broker dies, the connection's watcher (or a call that
//! noticed first) connects to a new broker and re-announces all of them
//! ([`Holdings::steps`]): sections with their memfds, mutexes, events,
//! semaphores, timers and the threads it started with the arena they live
//! in. The new broker
//! rebuilds the objects, names and handle values (see the broker's
//! `recovery` module), and the session goes on: handles keep working, waits
//! keep waiting, and a name keeps meaning one object.
//!
//! Files the process opened come back too, each open with a copy of the fd
//! it was made with (the same open file description, so its position and
//! byte-range locks are the ones it had) and its own access and share mode.
//!
//! On the system broker, objects shared between users (each in a solo arena
//! of its own, which another user maps read-only) come back with that
//! arena, and files come back as the opens its ledger recorded for the
//! process; sections over files do not (the ledger does not record them).
//!
//! Some handles cannot be taken back: files to delete on close, processes,
//! jobs, private namespaces. A process that
//! was given handles (inherited, or duplicated in by another process) is
//! never taken back: it may not have taken them all over, and one it does
//! not know of would be lost silently, its value free for another object
//! (the broker's journal marks such a process). A copy of its own handle
//! is what the original is. A process holding one loses its whole session
//! instead (fail-stop: see `connection`), as it did before survival: every
//! handle fails at once, rather than some silently meaning nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use objmgr_proto::process::{
    DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS, HANDLE_FLAG_INHERIT,
    HANDLE_FLAG_PROTECT_FROM_CLOSE, HANDLE_FLAGS,
};
use objmgr_proto::section::FdReach;
use objmgr_proto::wire::{
    CURRENT_PROCESS, Handle, HeldHandle, KnownFd, ReclaimStep, Reply, Request, SectionInfo,
    SyncGrant,
};
use objmgr_sync::arena::SOLO_SLOTS;
use objmgr_sync::close_ring::RingClose;
use objmgr_sync::ops::Kind;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

/// One handle, as it would be announced.
#[derive(Debug)]
struct Held {
    what: What,
    access: u32,
    /// `HANDLE_FLAG_INHERIT`, `HANDLE_FLAG_PROTECT_FROM_CLOSE`.
    flags: u32,
    /// The name it was created or opened by, as the caller gave it.
    name: String,
}

#[derive(Clone, Debug)]
enum What {
    /// A paging-file-backed section; its fd once the object is made (and
    /// what that fd can do), and the broker's number for it (0: not known
    /// in this broker session).
    Section {
        info: SectionInfo,
        fd: Option<Arc<OwnedFd>>,
        reach: FdReach,
        object: u64,
    },
    /// A mutex, event, semaphore, timer or thread in a domain arena, or
    /// (`solo`, on the system broker) in a solo arena of its own.
    Sync { arena: u64, slot: u32, solo: bool },
    /// A file this process opened (`CreateFile`), with a copy of the fd it
    /// opened it with (the same open file description), and the open's own
    /// access and share mode. Copies of the handle share the `Arc`: one
    /// open, as for the broker.
    File { open: Arc<FileOpen> },
    /// Anything a new broker cannot take back.
    Other,
}

/// An open of a file, as its handles share it.
#[derive(Debug)]
struct FileOpen {
    /// The file as the process's `File` uses it (which takes it from here).
    fd: Arc<std::fs::File>,
    access: u32,
    share: u32,
}

/// `fd` (of a file) opened again read-only, or itself if it is read-only
/// already; `None` if it maps nothing or cannot be opened again.
fn read_only_twin(fd: &Arc<OwnedFd>) -> Option<Arc<dyn AsFd + Send + Sync>> {
    match FdReach::of_fd(&**fd) {
        FdReach::Query => None,
        FdReach::Read => Some(fd.clone() as _),
        FdReach::Write => Some(Arc::new(crate::section::open_read_only(fd.as_fd()).ok()?)),
    }
}

/// Whether `fd` may read and write as `access` needs.
fn fd_allows(fd: impl AsFd, access: u32) -> bool {
    use objmgr_proto::access::ObjectType;
    use rustix::fs::OFlags;
    let Ok(flags) = rustix::fs::fcntl_getfl(fd) else {
        return false;
    };
    let mode = flags & OFlags::ACCMODE;
    let uses = objmgr_proto::file::Uses::of(ObjectType::File.map_generic(access).0);
    uses.fit(mode != OFlags::WRONLY, mode != OFlags::RDONLY)
}

/// A hash of a section's name, for [`Holdings::fd_named`] (a collision only
/// costs a hint the broker refuses).
fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
}

/// The handles of the process's broker session.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    handles: BTreeMap<u32, Held>,
    /// The arenas its sync objects live in, by id (their fds came with the
    /// first grant of each): domain arenas, and the solo arenas of the
    /// objects it holds that are shared between users.
    arenas: BTreeMap<u64, Arc<OwnedFd>>,
    /// How many of `handles` name an object in each solo arena (its fd is
    /// let go with the last).
    solo_holders: BTreeMap<u64, u32>,
    /// Private namespaces open (they die with the broker: none can be
    /// taken back).
    namespaces: usize,
    /// How many of `handles` name each section, by the broker's number for
    /// it (those with a known number).
    sections: BTreeMap<u64, u32>,
    /// A handle that keeps a section's fd, by a hash of the name the section
    /// was created or opened by (the oldest such handle still open, or one
    /// noted since it closed; a hint for the broker, which checks it: see
    /// [`Holdings::fd_named`]).
    named_fds: BTreeMap<u64, u32>,
}

impl Held {
    fn other() -> Held {
        Held {
            what: What::Other,
            access: 0,
            flags: 0,
            name: String::new(),
        }
    }
}

/// The handle a grant (`Reply::Section` or `Reply::Sync`; `None` for any
/// other reply) names, what a new broker would take it back as, and its
/// access: `Other` unless `named` (its name is known, or it has none).
fn granted(reply: &Reply, named: bool) -> Option<(Handle, What, u32)> {
    Some(match reply {
        Reply::Section(grant) => {
            let what = if named {
                What::Section {
                    info: grant.info,
                    fd: None,
                    reach: FdReach::Query, // what the fd it comes with can do
                    object: grant.object,
                }
            } else {
                What::Other
            };
            (grant.handle, what, grant.access)
        }
        Reply::Sync(grant) => {
            // A thread's grant comes only from `CreateThread`: one this
            // process starts (another process's is learned by value).
            let waitable = matches!(
                Kind::from_code(grant.kind),
                Some(
                    Kind::Mutex
                        | Kind::Event { .. }
                        | Kind::Semaphore
                        | Kind::Timer { .. }
                        | Kind::Thread
                )
            );
            let what = if named && waitable {
                What::Sync {
                    arena: grant.arena_id,
                    slot: grant.slot,
                    solo: grant.arena_slots == SOLO_SLOTS,
                }
            } else {
                What::Other
            };
            (grant.handle, what, grant.access)
        }
        _ => return None,
    })
}

fn inherit_flag(inherit: bool) -> u32 {
    if inherit { HANDLE_FLAG_INHERIT } else { 0 }
}

/// A step to send, and the descriptors it carries.
pub(crate) type Step = (ReclaimStep, Vec<Arc<dyn AsFd + Send + Sync>>);

impl Holdings {
    pub(crate) const fn new() -> Holdings {
        Holdings {
            handles: BTreeMap::new(),
            arenas: BTreeMap::new(),
            solo_holders: BTreeMap::new(),
            namespaces: 0,
            sections: BTreeMap::new(),
            named_fds: BTreeMap::new(),
        }
    }

    /// Notes the handles `reply` (`None`: an error) grants for `request`,
    /// and what `received` (the fd that came with the reply) is: a
    /// section's memory, which the holding keeps (the caller gets it back
    /// through [`Holdings::section_fd`]), or an arena's, of which it keeps a
    /// copy.
    pub(crate) fn note_reply(
        &mut self,
        request: &Request,
        reply: Option<&Reply>,
        received: &mut Option<OwnedFd>,
        sent: &[BorrowedFd<'_>],
    ) {
        if let Some(reply) = reply {
            match (request, reply) {
                (Request::Namespace { op: 0 | 1, .. }, _) => self.namespaces += 1,
                (Request::Namespace { op: 2, .. }, _) => {
                    self.namespaces = self.namespaces.saturating_sub(1);
                }
                (_, Reply::Sync(grant) | Reply::Spawned { process: grant, .. }) => {
                    self.note_arena(grant, received.as_ref());
                }
                _ => {}
            }
            self.note_granted(request, reply, received, sent);
        }
        // DUPLICATE_CLOSE_SOURCE closes the source whatever else happened
        // (after its copy was noted as what it is).
        self.note_closed_source(request);
    }

    /// The broker died under `request`: a source it may have closed
    /// (`DUPLICATE_CLOSE_SOURCE`) is not taken back.
    pub(crate) fn note_lost(&mut self, request: &Request) {
        self.note_closed_source(request);
    }

    /// Forgets the source of a `DuplicateHandle` with
    /// `DUPLICATE_CLOSE_SOURCE` in this process (unless it is protected from
    /// close, which the broker does not close).
    fn note_closed_source(&mut self, request: &Request) {
        if let Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source,
            options,
            ..
        } = request
            && options & DUPLICATE_CLOSE_SOURCE != 0
            && !self.is_protected(*source)
        {
            self.forget(*source);
        }
    }

    /// Whether `handle` is protected from close.
    pub(crate) fn is_protected(&self, handle: Handle) -> bool {
        self.handles
            .get(&handle.0)
            .is_some_and(|held| held.flags & HANDLE_FLAG_PROTECT_FROM_CLOSE != 0)
    }

    /// Keeps a copy of the fd of `grant`'s domain arena when it came with
    /// the reply (the broker sends it once per connection).
    pub(crate) fn note_arena(&mut self, grant: &SyncGrant, received: Option<&OwnedFd>) {
        if let Some(fd) = received
            && grant.arena_slots != SOLO_SLOTS
            && !self.arenas.contains_key(&grant.arena_id)
            && let Ok(copy) = fd.try_clone()
        {
            self.arenas.insert(grant.arena_id, Arc::new(copy));
        }
    }

    fn note_granted(
        &mut self,
        request: &Request,
        reply: &Reply,
        received: &mut Option<OwnedFd>,
        sent: &[BorrowedFd<'_>],
    ) {
        let (name, inherit) = match request {
            Request::CreateSection { name, inherit, .. }
            | Request::Open { name, inherit, .. }
            | Request::CreateSync { name, inherit, .. } => (Some(name.as_str()), *inherit),
            Request::CreateThread { inherit } => (Some(""), *inherit),
            // Noted by its caller, which knows whether it is a copy of one
            // of its own (`note_by_value`).
            Request::QueryHandle { .. } => return,
            _ => (None, false),
        };
        if let Some((handle, mut what, access)) = granted(reply, name.is_some()) {
            if let What::Section { fd, reach, .. } = &mut what {
                if let Some(got) = received.take() {
                    // What the fd itself can do (it may be less than the
                    // access asks: a section that is not writable).
                    *reach = FdReach::of_fd(&got);
                    *fd = Some(Arc::new(got));
                } else if let Request::Open {
                    known_fd: Some(known),
                    ..
                } = request
                    && let Some(Held {
                        what:
                            What::Section {
                                fd: Some(known_fd),
                                reach: known_reach,
                                object,
                                ..
                            },
                        ..
                    }) = self.handles.get(&known.handle.0)
                    && *object == known.object
                {
                    // The broker found the fd this process keeps for the
                    // same section enough: shared.
                    *fd = Some(known_fd.clone());
                    *reach = *known_reach;
                }
            }
            if let What::Sync {
                arena, solo: true, ..
            } = what
                && !self.arenas.contains_key(&arena)
                && let Some(copy) = received.as_ref().and_then(|fd| fd.try_clone().ok())
            {
                self.arenas.insert(arena, Arc::new(copy));
            }
            return self.note(handle, what, access, inherit, name);
        }
        match reply {
            Reply::File(grant) => {
                // A file it opened itself, unless the broker is to delete it
                // on close (that needs the directory, which stays the
                // broker's): kept as its own copy of the open.
                let own = match (request, sent.first()) {
                    (
                        Request::OpenFile {
                            delete_on_close: false,
                            ..
                        },
                        Some(fd),
                    ) => fd.try_clone_to_owned().ok().map(std::fs::File::from),
                    _ => None,
                };
                match own {
                    Some(fd) => self.note(
                        grant.handle,
                        What::File {
                            open: Arc::new(FileOpen {
                                fd: Arc::new(fd),
                                access: grant.access,
                                share: grant.share,
                            }),
                        },
                        grant.access,
                        matches!(request, Request::OpenFile { inherit: true, .. }),
                        Some(""),
                    ),
                    None => self.note_other(grant.handle),
                }
            }
            Reply::Spawned {
                process, thread, ..
            } => {
                self.note_other(process.handle);
                self.note_other(thread.handle);
            }
            Reply::Value(value) => {
                if let Request::Duplicate {
                    source_process,
                    source,
                    target_process: CURRENT_PROCESS,
                    access,
                    inherit,
                    options,
                } = request
                {
                    // A copy of a handle of its own is what its source is;
                    // anything else is another process's, unknown here.
                    let copied = self
                        .handles
                        .get(&source.0)
                        .filter(|_| *source_process == CURRENT_PROCESS)
                        .map(|held| Held {
                            what: held.what.clone(),
                            access: if options & DUPLICATE_SAME_ACCESS != 0 {
                                held.access
                            } else {
                                *access
                            },
                            flags: inherit_flag(*inherit),
                            name: held.name.clone(),
                        });
                    let copy = copied.unwrap_or_else(Held::other);
                    self.put(*value, copy);
                }
            }
            _ => {}
        }
    }

    fn note(&mut self, handle: Handle, what: What, access: u32, inherit: bool, name: Option<&str>) {
        let held = Held {
            what,
            access,
            flags: inherit_flag(inherit),
            name: name.unwrap_or_default().to_owned(),
        };
        self.put(handle.0, held);
    }

    /// The section `held` names, by the broker's number (if known).
    fn section_of(held: &Held) -> Option<u64> {
        match held.what {
            What::Section { object, .. } if object != 0 => Some(object),
            _ => None,
        }
    }

    /// Notes `held` as handle `value` (in place of any note of it).
    fn put(&mut self, value: u32, held: Held) {
        let (object, name) = (Self::section_of(&held), Self::fd_name(&held));
        // A solo arena is counted first: the note this one replaces may be
        // of the same object, whose arena must stay noted.
        if let Some(arena) = Self::solo_arena_of(&held) {
            *self.solo_holders.entry(arena).or_default() += 1;
        }
        // The note it replaces is uncounted first: it may be the hint that
        // this note takes over.
        if let Some(old) = self.handles.insert(value, held) {
            self.uncount(value, &old);
        }
        if let Some(object) = object {
            *self.sections.entry(object).or_default() += 1;
        }
        if let Some(name) = name {
            // The oldest stays the hint (a process that keeps one handle
            // and opens and closes others by the same name finds it).
            self.named_fds.entry(name).or_insert(value);
        }
    }

    /// The solo arena of the object `held` names, if in one.
    fn solo_arena_of(held: &Held) -> Option<u64> {
        match held.what {
            What::Sync {
                arena, solo: true, ..
            } => Some(arena),
            _ => None,
        }
    }

    /// The hash of the name of a section whose fd `held` keeps.
    fn fd_name(held: &Held) -> Option<u64> {
        match held.what {
            What::Section { fd: Some(_), .. } if !held.name.is_empty() => {
                Some(name_hash(&held.name))
            }
            _ => None,
        }
    }

    /// The handle (with what its fd can do, and the section it names) of a
    /// section that this process created or opened by `name` and keeps the
    /// fd of, if there is one: a hint for the broker (`Request::Open`'s
    /// `known_fd`), which checks that the handle still names that section
    /// and that it is the one opened.
    pub(crate) fn fd_named(&self, name: &str) -> Option<KnownFd> {
        let value = *self.named_fds.get(&name_hash(name))?;
        match self.handles.get(&value)?.what {
            What::Section {
                fd: Some(_),
                reach,
                object,
                ..
            } if object != 0 => Some(KnownFd {
                handle: Handle(value),
                reach,
                object,
            }),
            _ => None,
        }
    }

    fn uncount(&mut self, value: u32, held: &Held) {
        if let Some(name) = Self::fd_name(held)
            && self.named_fds.get(&name) == Some(&value)
        {
            self.named_fds.remove(&name);
        }
        if let Some(object) = Self::section_of(held)
            && let Some(count) = self.sections.get_mut(&object)
        {
            *count -= 1;
            if *count == 0 {
                self.sections.remove(&object);
            }
        }
        if let Some(arena) = Self::solo_arena_of(held)
            && let Some(count) = self.solo_holders.get_mut(&arena)
        {
            *count -= 1;
            if *count == 0 {
                self.solo_holders.remove(&arena);
                self.arenas.remove(&arena);
            }
        }
    }

    /// Whether the process holds a section over a file (which the system
    /// broker does not take back).
    pub(crate) fn holds_file_sections(&self) -> bool {
        self.handles.values().any(|held| match &held.what {
            What::Section { info, .. } => info.file_backed,
            _ => false,
        })
    }

    /// The close of `handle` to leave in the close ring, if it names a
    /// section the broker knows by its number, and whether that close may
    /// free the section (no other handle of this process names it: see
    /// `objmgr_sync::close_ring`).
    pub(crate) fn ring_close(&self, handle: Handle) -> Option<(RingClose, bool)> {
        let object = Self::section_of(self.handles.get(&handle.0)?)?;
        let close = RingClose {
            handle: handle.0,
            object,
        };
        Some((close, self.sections.get(&object).copied().unwrap_or(0) <= 1))
    }

    /// A new broker took the session over: its numbers for sections are
    /// not the lost one's, which are forgotten.
    pub(crate) fn forget_objects(&mut self) {
        self.sections.clear();
        // (Handles noted from now on are hints again.)
        self.named_fds.clear();
        for held in self.handles.values_mut() {
            if let What::Section { object, .. } = &mut held.what {
                *object = 0;
            }
        }
    }

    /// Notes a handle that cannot be taken back (of a type no new broker
    /// can rebuild).
    fn note_other(&mut self, handle: Handle) {
        self.put(handle.0, Held::other());
    }

    /// Notes a handle this process learned of by its value (`QueryHandle`):
    /// unless it is known already (a copy it made of its own), it
    /// is inherited or another process's gift, which no broker takes back
    /// (the broker does not let a process that was given handles come back
    /// at all: it might not know them all).
    pub(crate) fn note_by_value(&mut self, handle: Handle) {
        self.handles.entry(handle.0).or_insert_with(Held::other);
    }

    /// The fd of the section behind `handle`, if the holding keeps it.
    pub(crate) fn section_fd(&self, handle: Handle) -> Option<Arc<OwnedFd>> {
        match self.handles.get(&handle.0) {
            Some(Held {
                what: What::Section { fd, .. },
                ..
            }) => fd.clone(),
            _ => None,
        }
    }

    /// The file behind `handle`, if the holding keeps it (a file this
    /// process opened): its `File` uses this one, so that an open costs
    /// the process one descriptor.
    pub(crate) fn file(&self, handle: Handle) -> Option<Arc<std::fs::File>> {
        match self.handles.get(&handle.0) {
            Some(Held {
                what: What::File { open },
                ..
            }) => Some(open.fd.clone()),
            _ => None,
        }
    }

    /// `SetHandleInformation` set `handle`'s flags in `mask` to `flags`.
    pub(crate) fn set_flags(&mut self, handle: Handle, mask: u32, flags: u32) {
        if let Some(held) = self.handles.get_mut(&handle.0) {
            held.flags = (held.flags & !mask) | (flags & mask & HANDLE_FLAGS);
        }
    }

    /// `handle` is closed.
    pub(crate) fn forget(&mut self, handle: Handle) {
        if let Some(old) = self.handles.remove(&handle.0) {
            self.uncount(handle.0, &old);
        }
    }

    /// Lets go of the parent's notes in a forked child, at its first call
    /// of the library. A section's or arena's memory file only these notes
    /// hold is closed if its number still names an objmgr memory file
    /// (known by its link in `/proc/self/fd`); otherwise the child closed it
    /// and may have opened a file of its own there, which is left alone.
    /// Files (and sections over files) only the notes hold are left open,
    /// as any descriptor a child inherits. Descriptors the child's copies of
    /// the parent's objects share stay theirs.
    pub(crate) fn release_in_child(&mut self) {
        let release = |fd: Arc<OwnedFd>| {
            if Arc::strong_count(&fd) == 1 && !crate::sys::names_objmgr_memory(fd.as_fd()) {
                std::mem::forget(fd);
            }
        };
        for held in std::mem::take(&mut self.handles).into_values() {
            match held.what {
                What::Section { fd: Some(fd), .. } => release(fd),
                // (Each handle's copy is let go; the last one's file, if
                // nothing else holds it, is left open.)
                What::File { open } => {
                    if let Ok(open) = Arc::try_unwrap(open)
                        && Arc::strong_count(&open.fd) == 1
                    {
                        std::mem::forget(open.fd);
                    }
                }
                _ => {}
            }
        }
        std::mem::take(&mut self.arenas)
            .into_values()
            .for_each(release);
        self.clear();
    }

    /// The session is over: nothing is held any more.
    pub(crate) fn clear(&mut self) {
        self.handles.clear();
        self.arenas.clear();
        self.solo_holders.clear();
        self.namespaces = 0;
        self.sections.clear();
        self.named_fds.clear();
    }

    /// The `Reclaim` steps that take every handle back, between `Begin`
    /// (with `tag`) and `End`; `None` if one cannot be taken back (or a
    /// private namespace is open).
    pub(crate) fn steps(&self, tag: u16) -> Option<Vec<Step>> {
        if self.namespaces > 0 {
            return None;
        }
        let mut steps = vec![(ReclaimStep::Begin { tag }, vec![])];
        let mut arenas = BTreeSet::new();
        for held in self.handles.values() {
            if let What::Sync { arena, solo, .. } = held.what
                && arenas.insert(arena)
            {
                let fd = self.arenas.get(&arena)?.clone();
                let slots = if solo {
                    SOLO_SLOTS
                } else {
                    objmgr_sync::arena::ARENA_SLOTS
                };
                steps.push((ReclaimStep::Arena { id: arena, slots }, vec![fd as _]));
            }
        }
        // Each open of a file gets a number, which its copies share; so
        // does each section over a file (its handles share its fd).
        let mut opens: HashMap<*const FileOpen, u32> = HashMap::new();
        let mut file_sections: HashMap<*const OwnedFd, (u32, Arc<dyn AsFd + Send + Sync>)> =
            HashMap::new();
        for (&value, held) in &self.handles {
            let announced = HeldHandle {
                handle: Handle(value),
                access: held.access,
                flags: held.flags,
                name: held.name.clone(),
            };
            steps.push(match &held.what {
                What::Section { info, fd, .. } if info.file_backed => {
                    let fd = fd.clone()?;
                    // The broker opens no file: what a handle that may not
                    // write gets, this process brings (once per section).
                    let (section, read_only) = match file_sections.get(&Arc::as_ptr(&fd)) {
                        Some((section, twin)) => (*section, twin.clone()),
                        None => {
                            let numbered = (file_sections.len() as u32, read_only_twin(&fd)?);
                            file_sections.insert(Arc::as_ptr(&fd), numbered.clone());
                            numbered
                        }
                    };
                    (
                        ReclaimStep::FileSection {
                            held: announced,
                            section,
                            protection: info.protection,
                            attributes: info.attributes,
                            size: info.size,
                        },
                        vec![fd as _, read_only],
                    )
                }
                What::Section { info, fd, .. } => (
                    ReclaimStep::Section {
                        held: announced,
                        protection: info.protection,
                        attributes: info.attributes,
                        size: info.size,
                    },
                    vec![fd.clone()? as _],
                ),
                &What::Sync { arena, slot, .. } => (
                    ReclaimStep::Sync {
                        held: announced,
                        arena,
                        slot,
                    },
                    vec![],
                ),
                What::File { open } => {
                    // A copy given more than the open's fd may do (through
                    // the file's descriptor) would be refused: no return.
                    if !fd_allows(&open.fd, held.access) {
                        return None;
                    }
                    let next = opens.len() as u32;
                    let number = *opens.entry(Arc::as_ptr(open)).or_insert(next);
                    let fd = open.fd.clone();
                    (
                        ReclaimStep::File {
                            held: announced,
                            open: number,
                            open_access: open.access,
                            share: open.share,
                        },
                        vec![fd as _],
                    )
                }
                What::Other => return None,
            });
        }
        steps.push((ReclaimStep::End, vec![]));
        Some(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use objmgr_proto::wire::{FileGrant, SectionGrant};

    fn memfd() -> Option<OwnedFd> {
        rustix::fs::memfd_create("reclaim-test", rustix::fs::MemfdFlags::CLOEXEC).ok()
    }

    fn create_section(name: &str) -> Request {
        Request::CreateSection {
            name: name.into(),
            protection: 4,
            size: 4096,
            inherit: false,
            from_file: false,
            security: String::new(),
        }
    }

    fn section_grant(handle: u32) -> Reply {
        section_grant_of(handle, u64::from(handle) + 1000)
    }

    /// A grant of a handle to the broker's section number `object`.
    fn section_grant_of(handle: u32, object: u64) -> Reply {
        Reply::Section(SectionGrant {
            handle: Handle(handle),
            existed: false,
            access: 0xF001F,
            info: SectionInfo {
                size: 4096,
                protection: 4,
                attributes: 0x0800_0000,
                file_backed: false,
            },
            object,
        })
    }

    #[test]
    fn a_close_frees_nothing_while_another_handle_names_the_section() {
        let mut held = Holdings::new();
        let open = |held: &mut Holdings, handle: u32, object: u64| {
            let request = Request::Open {
                object_type: objmgr_proto::access::ObjectType::Section,
                name: "Local\\s".into(),
                access: 4,
                inherit: false,
                known_fd: None,
            };
            held.note_reply(
                &request,
                Some(&section_grant_of(handle, object)),
                &mut memfd(),
                &[],
            );
        };
        open(&mut held, 4, 7);
        assert!(!frees_nothing(&held, 4), "the only handle");
        assert!(
            held.ring_close(Handle(4)).is_some_and(|(_, frees)| frees),
            "it may free"
        );
        open(&mut held, 8, 9);
        assert!(!frees_nothing(&held, 8), "another section");
        open(&mut held, 12, 7);
        assert!(frees_nothing(&held, 4) && frees_nothing(&held, 12));
        held.forget(Handle(12));
        assert!(!frees_nothing(&held, 4), "its twin is closed");
        // A copy of its own is the same section.
        let dup = Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source: Handle(4),
            target_process: CURRENT_PROCESS,
            access: 0,
            inherit: false,
            options: DUPLICATE_SAME_ACCESS,
        };
        held.note_reply(&dup, Some(&Reply::Value(16)), &mut None, &[]);
        assert!(frees_nothing(&held, 16));
        // A value noted again in place of the copy no longer counts.
        held.note_reply(
            &create_section("Local\\t"),
            Some(&section_grant_of(16, 20)),
            &mut memfd(),
            &[],
        );
        assert!(!frees_nothing(&held, 4));
        open(&mut held, 12, 7);
        assert!(frees_nothing(&held, 4));
        // A new broker's numbers are not the lost one's.
        held.forget_objects();
        assert!(!frees_nothing(&held, 4) && !frees_nothing(&held, 12));
    }

    /// Whether closing `handle` can free nothing (another handle of the
    /// process names its section).
    fn frees_nothing(held: &Holdings, handle: u32) -> bool {
        held.ring_close(Handle(handle))
            .is_some_and(|(_, frees)| !frees)
    }

    #[test]
    fn an_open_answered_without_an_fd_shares_the_known_one() {
        let mut held = Holdings::new();
        assert_eq!(held.fd_named("Local\\s"), None);
        held.note_reply(
            &create_section("Local\\s"),
            Some(&section_grant(4)),
            &mut memfd(),
            &[],
        );
        // Section number 1004; its fd is read-write.
        let known = |handle| {
            Some(KnownFd {
                handle: Handle(handle),
                reach: FdReach::Write,
                object: 1004,
            })
        };
        assert_eq!(held.fd_named("Local\\s"), known(4));
        assert_eq!(held.fd_named("Local\\t"), None);
        let request = Request::Open {
            object_type: objmgr_proto::access::ObjectType::Section,
            name: "Local\\s".into(),
            access: 4,
            inherit: false,
            known_fd: known(4),
        };
        held.note_reply(&request, Some(&section_grant_of(8, 1004)), &mut None, &[]);
        let (first, second) = (held.section_fd(Handle(4)), held.section_fd(Handle(8)));
        assert!(Arc::ptr_eq(&first.unwrap(), &second.unwrap()));
        assert!(frees_nothing(&held, 8));
        // The oldest handle stays the hint; once it closes, none is left
        // by that name until the next is noted (the others are not looked
        // for).
        assert_eq!(held.fd_named("Local\\s"), known(4));
        held.forget(Handle(8));
        assert_eq!(held.fd_named("Local\\s"), known(4));
        held.note_reply(&request, Some(&section_grant_of(8, 1004)), &mut None, &[]);
        held.forget(Handle(4));
        assert_eq!(held.fd_named("Local\\s"), None);
        held.note_reply(
            &request,
            Some(&section_grant_of(12, 1004)),
            &mut memfd(),
            &[],
        );
        assert_eq!(held.fd_named("Local\\s"), known(12));
        // A handle the broker says names the section, though this process
        // knows it as another: no fd is shared (the section would be wrong).
        let stale = Request::Open {
            object_type: objmgr_proto::access::ObjectType::Section,
            name: "Local\\s".into(),
            access: 4,
            inherit: false,
            known_fd: Some(KnownFd {
                object: 999,
                ..known(12).unwrap()
            }),
        };
        held.note_reply(&stale, Some(&section_grant_of(16, 999)), &mut None, &[]);
        assert!(held.section_fd(Handle(16)).is_none());
        // What an fd can do is read from the fd.
        let mut read_only = rustix::fs::open(
            "/proc/self/exe",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok();
        held.note_reply(
            &create_section("Local\\ro"),
            Some(&section_grant_of(20, 2000)),
            &mut read_only,
            &[],
        );
        assert_eq!(held.fd_named("Local\\ro").unwrap().reach, FdReach::Read);
    }

    fn event_grant(handle: u32, arena_id: u64) -> Reply {
        Reply::Sync(SyncGrant {
            handle: Handle(handle),
            existed: false,
            access: 0x1F0003,
            kind: Kind::Event {
                manual_reset: false,
            }
            .code(),
            slot: 7,
            arena_id,
            arena_slots: objmgr_sync::arena::ARENA_SLOTS,
            writable: true,
        })
    }

    fn kinds(steps: &[Step]) -> Vec<&'static str> {
        steps
            .iter()
            .map(|(step, _)| match step {
                ReclaimStep::Begin { .. } => "begin",
                ReclaimStep::Arena { .. } => "arena",
                ReclaimStep::Section { .. } => "section",
                ReclaimStep::Sync { .. } => "sync",
                ReclaimStep::File { .. } => "file",
                ReclaimStep::FileSection { .. } => "file section",
                ReclaimStep::End => "end",
                ReclaimStep::Leave { .. } => "leave",
            })
            .collect()
    }

    #[test]
    fn sections_and_sync_objects_are_announced_with_their_fds() {
        let mut held = Holdings::new();
        let mut fd = memfd();
        let reply = section_grant(4);
        held.note_reply(&create_section("Local\\s"), Some(&reply), &mut fd, &[]);
        assert!(fd.is_none(), "the holding keeps the section's fd");
        assert!(held.section_fd(Handle(4)).is_some());
        let create = Request::CreateSync {
            name: String::new(),
            init: objmgr_proto::sync::SyncInit::Event {
                manual_reset: false,
                signaled: false,
            },
            access: 0,
            inherit: true,
            owner_token: 0,
            owner_tid: 0,
            security: String::new(),
        };
        let mut arena = memfd();
        held.note_reply(&create, Some(&event_grant(8, 3)), &mut arena, &[]);
        assert!(arena.is_some(), "the caller maps the arena");
        let steps = held.steps(5).unwrap();
        assert_eq!(kinds(&steps), ["begin", "arena", "section", "sync", "end"]);
        let ReclaimStep::Sync { held: event, .. } = &steps[3].0 else {
            panic!()
        };
        assert_eq!(event.flags, HANDLE_FLAG_INHERIT);
        // Closed: not announced.
        held.forget(Handle(4));
        assert_eq!(
            kinds(&held.steps(5).unwrap()),
            ["begin", "arena", "sync", "end"]
        );
    }

    #[test]
    fn a_copy_of_its_own_handle_is_what_the_source_is() {
        let mut held = Holdings::new();
        held.note_reply(
            &create_section("x"),
            Some(&section_grant(4)),
            &mut memfd(),
            &[],
        );
        let duplicate = Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source: Handle(4),
            target_process: CURRENT_PROCESS,
            access: 0,
            inherit: false,
            options: DUPLICATE_CLOSE_SOURCE | DUPLICATE_SAME_ACCESS,
        };
        held.note_reply(&duplicate, Some(&Reply::Value(8)), &mut None, &[]);
        let steps = held.steps(1).unwrap();
        assert_eq!(kinds(&steps), ["begin", "section", "end"]);
        let ReclaimStep::Section { held: copy, .. } = &steps[1].0 else {
            panic!()
        };
        assert_eq!((copy.handle, copy.name.as_str()), (Handle(8), "x"));
        // A failed duplicate closes its source all the same.
        let again = Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source: Handle(8),
            target_process: CURRENT_PROCESS,
            access: 0,
            inherit: false,
            options: DUPLICATE_CLOSE_SOURCE,
        };
        held.note_reply(&again, None, &mut None, &[]);
        assert_eq!(kinds(&held.steps(1).unwrap()), ["begin", "end"]);
    }

    fn open_file(delete_on_close: bool) -> Request {
        Request::OpenFile {
            access: 3,
            share: 1,
            inherit: false,
            delete_on_close,
            name: String::new(),
        }
    }

    fn file_grant(handle: u32) -> Reply {
        Reply::File(FileGrant {
            handle: Handle(handle),
            access: 3,
            share: 1,
        })
    }

    #[test]
    fn files_come_back_one_open_for_a_handle_and_its_copies() {
        use std::os::fd::AsFd;
        let mut held = Holdings::new();
        let (one, two) = (memfd().unwrap(), memfd().unwrap());
        held.note_reply(
            &open_file(false),
            Some(&file_grant(4)),
            &mut None,
            &[one.as_fd()],
        );
        held.note_reply(
            &open_file(false),
            Some(&file_grant(8)),
            &mut None,
            &[two.as_fd()],
        );
        let duplicate = Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source: Handle(4),
            target_process: CURRENT_PROCESS,
            access: 1,
            inherit: false,
            options: 0,
        };
        held.note_reply(&duplicate, Some(&Reply::Value(12)), &mut None, &[]);
        let steps = held.steps(1).unwrap();
        let opens: Vec<(u32, u32, u32)> = steps
            .iter()
            .filter_map(|(step, fd)| match step {
                ReclaimStep::File {
                    held,
                    open,
                    open_access,
                    share,
                } => {
                    assert_eq!(fd.len(), 1, "each carries the open's fd");
                    assert_eq!(*open_access, 3, "the open's own access");
                    Some((held.handle.0, *open, *share))
                }
                _ => None,
            })
            .collect();
        assert_eq!(opens, [(4, 0, 1), (8, 1, 1), (12, 0, 1)]);
        // A file to delete on close needs the broker's directory: no.
        held.note_reply(
            &open_file(true),
            Some(&file_grant(16)),
            &mut None,
            &[one.as_fd()],
        );
        assert!(held.steps(1).is_none());
        held.forget(Handle(16));
        // Nor a copy given more than its open's fd may do.
        let read_only = std::fs::File::open("/dev/null").unwrap();
        let sent = [read_only.as_fd()];
        let readable = Reply::File(FileGrant {
            handle: Handle(20),
            access: 1,
            share: 1,
        });
        held.note_reply(&open_file(false), Some(&readable), &mut None, &sent);
        let widened = Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source: Handle(20),
            target_process: CURRENT_PROCESS,
            access: 2,
            inherit: false,
            options: 0,
        };
        held.note_reply(&widened, Some(&Reply::Value(24)), &mut None, &[]);
        assert!(held.steps(1).is_none());
        held.forget(Handle(24));
        assert!(held.steps(1).is_some());
    }

    #[test]
    fn what_no_broker_takes_back_makes_the_session_fail_stop() {
        let mut held = Holdings::new();
        let file = Reply::File(FileGrant {
            handle: Handle(4),
            access: 1,
            share: 0,
        });
        held.note_reply(&Request::ListFiles, Some(&file), &mut None, &[]);
        assert!(held.steps(1).is_none(), "a file");
        held.forget(Handle(4));
        held.note_by_value(Handle(8));
        assert!(held.steps(1).is_none(), "a handle another process gave");
        held.forget(Handle(8));
        let open_namespace = Request::Namespace {
            op: 1,
            boundary: String::new(),
            sids: Vec::new(),
            alias: "a".into(),
            sddl: String::new(),
            id: 0,
            destroy: false,
        };
        held.note_reply(&open_namespace, Some(&Reply::Value(1)), &mut None, &[]);
        assert!(held.steps(1).is_none(), "a private namespace");
        let close_namespace = Request::Namespace {
            op: 2,
            boundary: String::new(),
            sids: Vec::new(),
            alias: "a".into(),
            sddl: String::new(),
            id: 1,
            destroy: false,
        };
        held.note_reply(&close_namespace, Some(&Reply::Done), &mut None, &[]);
        assert!(held.steps(1).is_some());
    }
}
