//! The broker's state: the namespace, the objects with their handle counts,
//! and every connected process's handle table. No I/O happens here beyond what
//! creating an object needs; the server loop feeds it decoded requests.
//!
//! # Invariants
//! - An object's `handle_count` equals the number of handle-table entries, in
//!   all processes, that refer to it; it is destroyed (and its name freed) when
//!   the count reaches zero.
//! - `names` maps a path to an object if and only if that object is alive and
//!   was created with that path.

use objmgr_proto::ObjectName;
use objmgr_proto::access::{AccessMask, ObjectType};
use objmgr_proto::error::*;
use objmgr_proto::section::{FdReach, parse_protection};
use objmgr_proto::security::{self, SecurityDescriptor};
use objmgr_proto::sync::SyncInit;
use objmgr_proto::wire::{
    BrokerStatus, CURRENT_PROCESS, CURRENT_THREAD, Handle, MAX_LIST_ENTRIES, MAX_MESSAGE_SIZE,
    MAX_STRING_LEN, ObjectEntry, Opcode, PROTOCOL_VERSION, Reply, Request, SectionGrant, SyncGrant,
};
use objmgr_sync::close_ring::{CloseRing, RingClose};
use objmgr_sync::ops::{Actor, Kind, Token};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Instant;

use crate::Failure;
use crate::quota::{self, Charge, Usage};
use crate::section::Section;
use crate::sync::SyncArena;

mod file;
mod job;
mod ledgered;
mod namespace;
mod object_security;
mod process;
mod recovery;
mod remote_sync;
pub use job::JOB_TIME_CHECK;
use object_security::security_properties;
use process::ProcessRecord;
pub(crate) use process::proc_ids;
pub use process::{ORIGINAL_NOFILE, PidWatch, ProcStat, RecordId};
pub use recovery::RECOVERY_TIME;

/// The session number `Local\` names live under on a per-user broker (one
/// broker = one session). On the system-wide broker each user is a session
/// of its own, numbered by uid + 1 (session 0 is Windows' services' session).
pub const SESSION: u32 = 1;
/// Most handles one process may hold (Windows allows about 2^24).
pub const MAX_HANDLES_PER_PROCESS: usize = 1 << 24;

/// Identifies a connected process for as long as its connection lives.
pub type ClientId = u64;
type ObjectId = u64;

/// How often the broker looks at the close rings when nothing else wakes it.
const CLOSE_RING_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
enum Body {
    Section(Section),
    /// A mutex, event, semaphore or timer: its state is arena slot `slot`.
    Sync {
        slot: u32,
        kind: Kind,
    },
    /// A process (its record); its slot is signaled with the exit code.
    Process {
        slot: u32,
        record: RecordId,
    },
    /// A thread: one started by client `creator` (tag), or the main thread
    /// of the spawned process `main_of` (a record).
    Thread {
        slot: u32,
        creator: Option<u16>,
        main_of: Option<RecordId>,
    },
    /// A job; its slot is signaled when it is terminated.
    Job {
        slot: u32,
        job: Box<job::Job>,
    },
    /// An open file.
    File(file::OpenFile),
}

impl Body {
    /// The arena slot and kind of an object whose state lives in the arena.
    fn sync_slot(&self) -> Option<(u32, Kind)> {
        match *self {
            Body::Section(_) | Body::File(_) => None,
            Body::Sync { slot, kind } => Some((slot, kind)),
            Body::Process { slot, .. } => Some((slot, Kind::Process)),
            Body::Thread { slot, .. } => Some((slot, Kind::Thread)),
            Body::Job { slot, .. } => Some((slot, Kind::Job)),
        }
    }
}

#[derive(Debug)]
struct Object {
    object_type: ObjectType,
    /// Full namespace path, for named objects.
    path: Option<String>,
    handle_count: u32,
    body: Body,
    /// The process (pid) this object is charged to, its creator, and what
    /// it costs, until the object dies.
    charged_to: Option<(u32, Charge)>,
    /// Who may open it, and how (complete: owner, group and DACL set).
    /// Shared with other objects that have the same one (most have their
    /// creator's default); copied when changed.
    security: Rc<SecurityDescriptor>,
    /// The security domain (a uid) whose arena holds its state, for objects
    /// with state in an arena.
    domain: u32,
    /// The arena of a lost broker its state lives in, for a sync object
    /// taken back after a crash (see `recovery`).
    adopted_arena: Option<u64>,
}

/// Where a new object's state went (see [`Broker::new_state`]).
struct NewState {
    slot: u32,
    domain: u32,
    solo: Option<SyncArena>,
}

#[derive(Clone, Copy, Debug)]
struct HandleEntry {
    object: ObjectId,
    access: AccessMask,
    /// `HANDLE_FLAG_INHERIT`: child processes spawned with inheritance get it.
    inherit: bool,
    /// `HANDLE_FLAG_PROTECT_FROM_CLOSE`: `CloseHandle` refuses it.
    protect: bool,
}

/// One process's handle table. Values are multiples of 4 starting at 4, as on
/// Windows; freed values are reused lowest-first.
#[derive(Debug, Default)]
struct HandleTable {
    /// For a table waiting for a process to connect: the uid that process
    /// runs as, which the one claiming it must have (a pid can be reused).
    owner: Option<u32>,
    slots: Vec<Option<HandleEntry>>,
    free: std::collections::BTreeSet<usize>,
    live: usize,
}

impl HandleTable {
    fn insert(&mut self, entry: HandleEntry) -> Result<Handle, Failure> {
        let quota = quota::get().handles.min(MAX_HANDLES_PER_PROCESS as u64);
        if self.live as u64 >= quota {
            return Err(Failure::new(
                ERROR_NOT_ENOUGH_QUOTA,
                format!("over this process's quota of {quota} handles (see objmgrd --quota)"),
            ));
        }
        let index = match self.free.pop_first() {
            Some(index) => index,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[index] = Some(entry);
        self.live += 1;
        Ok(Handle(((index + 1) * 4) as u32))
    }

    fn index(handle: Handle) -> Option<usize> {
        let v = handle.0 as usize;
        (v != 0 && v.is_multiple_of(4)).then(|| v / 4 - 1)
    }

    fn get(&self, handle: Handle) -> Option<&HandleEntry> {
        self.slots.get(Self::index(handle)?)?.as_ref()
    }

    fn get_mut(&mut self, handle: Handle) -> Option<&mut HandleEntry> {
        self.slots.get_mut(Self::index(handle)?)?.as_mut()
    }

    /// Puts `entry` at exactly `handle` (inheritance keeps values), which
    /// must be free.
    fn insert_at(&mut self, handle: Handle, entry: HandleEntry) {
        let Some(index) = Self::index(handle) else {
            return;
        };
        while self.slots.len() <= index {
            self.free.insert(self.slots.len());
            self.slots.push(None);
        }
        if self.slots[index].is_none() {
            self.free.remove(&index);
            self.live += 1;
        }
        self.slots[index] = Some(entry);
    }

    /// Every open handle, in value order.
    fn iter(&self) -> impl Iterator<Item = (Handle, &HandleEntry)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((Handle(((i + 1) * 4) as u32), e.as_ref()?)))
    }

    fn remove(&mut self, handle: Handle) -> Option<HandleEntry> {
        let index = Self::index(handle)?;
        let entry = self.slots.get_mut(index)?.take()?;
        self.free.insert(index);
        self.live -= 1;
        Some(entry)
    }

    fn drain(&mut self) -> impl Iterator<Item = HandleEntry> + '_ {
        self.free.clear();
        self.live = 0;
        self.slots.drain(..).flatten()
    }
}

/// A connected process.
#[derive(Debug)]
pub struct Client {
    pub pid: u32,
    pub uid: u32,
    /// Who the process is, for access checks (from `SO_PEERCRED` and its
    /// supplementary groups).
    pub token: security::Token,
    /// Set once the `Hello` exchange succeeded.
    pub greeted: bool,
    /// Identifies the process in shared sync state (mutex owners, slot locks).
    pub tag: u16,
    /// The process that connected (from its pid, at once), to tell when
    /// that pid is no longer it.
    pidfd: Option<OwnedFd>,
    /// The domain arenas whose fd went to this client already (a solo
    /// arena's goes with every handle: the client unmaps it when done).
    arenas_sent: Vec<u64>,
    /// Threads of this process that wait on, or own, objects of other
    /// domains through [`Request::SyncRemote`].
    remote: remote_sync::RemoteThreads,
    /// The private namespaces it has open: the alias it names each by, its
    /// id, and the access it was granted to it.
    aliases: Vec<(String, u32, u32)>,
    handles: HandleTable,
    /// Between its `Reclaim` steps `Begin` and `End`: taking back its
    /// handles from a broker that died.
    reclaiming: bool,
    /// It began to take its handles back (once per connection).
    came_back: bool,
    /// Journaled as given handles it did not ask for (written once).
    gifted: bool,
}

/// What a request produced: a reply and possibly an fd to attach.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub fd: Option<Rc<OwnedFd>>,
    /// The broker should exit after sending this reply.
    pub shutdown: bool,
}

impl Outcome {
    fn reply(reply: Reply) -> Outcome {
        Outcome {
            reply,
            fd: None,
            shutdown: false,
        }
    }
}

/// The failure for a handle value that is not in the caller's table.
fn not_open(handle: Handle) -> Failure {
    Failure::new(
        ERROR_INVALID_HANDLE,
        format!("handle {:#x} is not open", handle.0),
    )
}

/// The whole broker state.
#[derive(Debug)]
pub struct Broker {
    objects: HashMap<ObjectId, Object>,
    names: BTreeMap<String, ObjectId>,
    clients: HashMap<ClientId, Client>,
    next_object: ObjectId,
    /// The arenas of sync state, one per security domain (a uid), each made
    /// with its domain's first object. A per-user broker has one domain.
    sync: HashMap<u32, SyncArena>,
    /// The solo arenas of objects shared between users (named in `Global\`
    /// or a private namespace, on the system broker), by object.
    solo: HashMap<ObjectId, SyncArena>,
    /// Solo arenas by the uid whose domain they belong to (each costs the
    /// broker a descriptor and a mapping: a user may have only so many).
    solo_per_user: HashMap<u32, u32>,
    /// Jobs with a user-time limit, whose members' time the broker reads
    /// every [`JOB_TIME_CHECK`].
    timed_jobs: std::collections::BTreeSet<ObjectId>,
    /// The open file objects of each file (device and inode).
    open_files: HashMap<crate::section::FileNode, Vec<ObjectId>>,
    /// Names to remove when the last open of their file closes (a pending
    /// `DeleteFile`, or `FILE_FLAG_DELETE_ON_CLOSE`); new opens are refused.
    delete_pending: HashMap<crate::section::FileNode, crate::closer::PendingUnlink>,
    /// Name removals handed to the closer thread, by ticket, until their
    /// closer asks whether they are done (`FileOp::RemovalDone`).
    removals: std::collections::BTreeMap<u32, crate::closer::RemovalDone>,
    next_removal: u32,
    /// The ticket of a removal the close being served made due.
    last_removal: Option<u32>,
    /// The file-backed sections of each file.
    mapped_files: HashMap<crate::section::FileNode, Vec<ObjectId>>,
    tags_in_use: HashSet<u16>,
    next_tag: u16,
    /// Processes the broker watches (spawned children, opened processes),
    /// by record: a pid can be reused, a record id never is.
    processes: HashMap<RecordId, ProcessRecord>,
    /// The record of each live watched pid.
    live_pids: HashMap<u32, RecordId>,
    next_record: RecordId,
    /// Handle tables of processes that have not connected yet (inherited or
    /// duplicated handles wait here), by pid.
    pending: HashMap<u32, HandleTable>,
    /// Exit watches the server loop has yet to register.
    new_watches: Vec<PidWatch>,
    /// The close rings of the clients that asked for one.
    close_rings: BTreeMap<ClientId, CloseRing>,
    /// The clients that have a doorbell (see [`Broker::doorbell`]).
    doorbells: HashSet<ClientId>,
    /// Clients that had a handle closed behind their back (their notes of
    /// what they hold are out of date): while one has a ring, the rings are
    /// swept every [`CLOSE_RING_SWEEP`].
    stale_holders: HashSet<ClientId>,
    /// The client and sequence number of the request being served.
    serving: Option<(ClientId, u32)>,
    /// The key of [`Broker::public_number`].
    number_key: std::collections::hash_map::RandomState,
    /// The closes taken from the rings in one drain (kept for its memory).
    ring_closes: Vec<(ClientId, RingClose)>,
    started: Instant,
    requests: [u64; Opcode::ALL.len()],
    /// Requests that came in a connection's page (see `Request::Doorbell`).
    paged_requests: u64,
    /// Live sections (each holds broker descriptors).
    live_sections: u64,
    /// Connections by pid, against the `connections` quota.
    connections_of: HashMap<u32, u64>,
    /// Connections by uid, against the `user-connections` quota (system
    /// broker).
    user_connections: HashMap<u32, u64>,
    /// What each process (by pid) holds against its quotas; an entry goes
    /// when the last object charged to it dies.
    usage: HashMap<u32, Usage>,
    /// The system-wide broker (`objmgrd --system`): every user's processes,
    /// one security domain and one `Local\` session per user, `Global\`
    /// shared. Otherwise a per-user broker: one domain, one session.
    pub system: bool,
    /// The broker's own real uid.
    own_uid: u32,
    /// Members of this group count as Administrators.
    pub admin_gid: Option<u32>,
    /// Private namespaces, by id.
    namespaces: HashMap<u32, namespace::Namespace>,
    /// The default descriptor of each (user, primary group) that created
    /// something, shared by all their objects that have it.
    default_security: HashMap<(security::Sid, security::Sid), Rc<SecurityDescriptor>>,
    next_namespace: u32,
    /// The client journal (per-user broker), for a broker that replaces
    /// this one if it dies.
    journal: Option<crate::journal::Journal>,
    /// Taking over from a broker that died, while it lasts.
    recovery: Option<recovery::Recovery>,
    /// The object ledger (system broker), for a broker that replaces this
    /// one if it dies.
    ledger: Option<crate::ledger::Ledger>,
    /// What the lost broker's ledger recorded, while its processes come
    /// back (system broker).
    known: Option<crate::ledger::Known>,
    /// The access other users' handles to each recorded object were given,
    /// by uid, as the ledger has it (system broker).
    ledger_grants: HashMap<ObjectId, Vec<(u32, u32)>>,
    /// The arenas of a broker that died, taken back with its processes'
    /// objects, by id.
    adopted: HashMap<u64, SyncArena>,
    /// Processes of a broker that died that were still running, but had not
    /// come back, when the recovery ended: their tags are reaped when they
    /// leave or die.
    late: HashMap<u16, crate::journal::Recorded>,
    late_checked: Instant,
    /// Socket path, for status.
    pub socket: String,
    /// Idle timeout in ms (0 = never), for status.
    pub idle_timeout_ms: u64,
}

impl Broker {
    pub fn new(socket: String, idle_timeout_ms: u64) -> Broker {
        Broker {
            objects: HashMap::new(),
            names: BTreeMap::new(),
            clients: HashMap::new(),
            next_object: 1,
            sync: HashMap::new(),
            solo: HashMap::new(),
            solo_per_user: HashMap::new(),
            timed_jobs: Default::default(),
            open_files: HashMap::new(),
            delete_pending: HashMap::new(),
            removals: std::collections::BTreeMap::new(),
            next_removal: 0,
            last_removal: None,
            mapped_files: HashMap::new(),
            tags_in_use: HashSet::new(),
            next_tag: 1,
            processes: HashMap::new(),
            live_pids: HashMap::new(),
            next_record: 1,
            pending: HashMap::new(),
            new_watches: Vec::new(),
            close_rings: BTreeMap::new(),
            doorbells: HashSet::new(),
            stale_holders: HashSet::new(),
            number_key: std::collections::hash_map::RandomState::new(),
            serving: None,
            ring_closes: Vec::new(),
            started: Instant::now(),
            requests: [0; Opcode::ALL.len()],
            paged_requests: 0,
            live_sections: 0,
            connections_of: HashMap::new(),
            user_connections: HashMap::new(),
            usage: HashMap::new(),
            system: false,
            own_uid: rustix::process::getuid().as_raw(),
            admin_gid: None,
            namespaces: HashMap::new(),
            default_security: HashMap::new(),
            next_namespace: 1,
            journal: None,
            recovery: None,
            ledger: None,
            known: None,
            ledger_grants: HashMap::new(),
            adopted: HashMap::new(),
            late: HashMap::new(),
            late_checked: Instant::now(),
            socket,
            idle_timeout_ms,
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Whether the broker has anything to do besides clients: children it
    /// started that still run, or handle tables waiting for a process.
    pub fn busy(&self) -> bool {
        !self.clients.is_empty()
            || self.recovery.is_some()
            || !self.pending.is_empty()
            || self.processes.values().any(ProcessRecord::running_child)
    }

    /// Registers a new connection. Fails when process `pid` has its quota
    /// of connections already, or when 65,535 processes are connected (every
    /// process tag is taken).
    pub fn add_client(
        &mut self,
        id: ClientId,
        pid: u32,
        uid: u32,
        token: security::Token,
    ) -> Result<(), Failure> {
        let connections = self.connections_of.get(&pid).copied().unwrap_or(0);
        let quota = quota::get().connections;
        if connections >= quota {
            return Err(Failure::new(
                ERROR_NOT_ENOUGH_QUOTA,
                format!("process {pid} has its quota of {quota} connections already"),
            ));
        }
        // On the system broker, one user's processes together have a quota
        // too: many processes of one user must not take every connection.
        let per_user = quota::get().user_connections;
        if self.system && uid != 0 {
            let of_user = self.user_connections.get(&uid).copied().unwrap_or(0);
            if of_user >= per_user {
                return Err(Failure::new(
                    ERROR_NOT_ENOUGH_QUOTA,
                    format!("uid {uid} has its quota of {per_user} connections already"),
                ));
            }
        }
        let tag = self.allocate_tag()?;
        *self.connections_of.entry(pid).or_insert(0) += 1;
        *self.user_connections.entry(uid).or_insert(0) += 1;
        self.clients.insert(
            id,
            Client {
                pid,
                uid,
                token,
                greeted: false,
                tag,
                pidfd: i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                    .and_then(|p| {
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                    }),
                arenas_sent: Vec::new(),
                remote: Default::default(),
                aliases: Vec::new(),
                handles: HandleTable::default(),
                reclaiming: false,
                came_back: false,
                gifted: false,
            },
        );
        self.journal_client(tag, pid);
        Ok(())
    }

    /// Whether client `id` has said `Hello` (false for one that is gone).
    pub fn is_greeted(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_some_and(|c| c.greeted)
    }

    /// Tags go round-robin so that a tag is reused as late as possible.
    fn allocate_tag(&mut self) -> Result<u16, Failure> {
        for _ in 0..=u16::MAX {
            let tag = self.next_tag;
            self.next_tag = self.next_tag.checked_add(1).unwrap_or(1);
            if self.tags_in_use.insert(tag) {
                return Ok(tag);
            }
        }
        Err(Failure::new(
            ERROR_NO_SYSTEM_RESOURCES,
            "too many connected processes",
        ))
    }

    /// Forgets a process: every handle it held is closed, as when a Windows
    /// process exits (or is killed).
    pub fn remove_client(&mut self, id: ClientId) {
        let Some(mut client) = self.clients.remove(&id) else {
            return;
        };
        self.close_rings.remove(&id);
        self.doorbells.remove(&id);
        self.stale_holders.remove(&id);
        if let Some(count) = self.connections_of.get_mut(&client.pid) {
            *count -= 1;
            if *count == 0 {
                self.connections_of.remove(&client.pid);
            }
        }
        if let Some(count) = self.user_connections.get_mut(&client.uid) {
            *count -= 1;
            if *count == 0 {
                self.user_connections.remove(&client.uid);
            }
        }
        let entries: Vec<HandleEntry> = client.handles.drain().collect();
        for entry in entries {
            self.release(entry.object);
        }
        for (_, ns, _) in std::mem::take(&mut client.aliases) {
            self.release_namespace(ns);
        }
        // Its remote waits are over; mutexes its threads owned are
        // abandoned, locks it held released, threads it started have ended.
        self.end_remote_waits(std::mem::take(&mut client.remote));
        for sync in self.sync.values().chain(self.solo.values()) {
            sync.reap(client.tag);
        }
        for sync in self.adopted.values() {
            sync.reap(client.tag);
        }
        self.end_threads_of(client.tag, client.pid);
        if self.journal_client_gone(client.tag, client.reclaiming) {
            self.tags_in_use.remove(&client.tag);
        }
    }

    /// Closes `handle` of client `id` (`CloseHandle`): the ticket of a name
    /// removal the close made due, or 0.
    fn close(&mut self, id: ClientId, handle: Handle) -> Result<u32, Failure> {
        let table = &mut self.client(id).handles;
        if table.get(handle).is_some_and(|e| e.protect) {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!(
                    "handle {:#x} is protected from close (HANDLE_FLAG_PROTECT_FROM_CLOSE)",
                    handle.0
                ),
            ));
        }
        let entry = table.remove(handle).ok_or_else(|| not_open(handle))?;
        self.last_removal = None;
        self.release(entry.object);
        Ok(self.last_removal.take().unwrap_or(0))
    }

    /// Client `id`'s close ring: one per connection, kept mapped (its fd
    /// goes to the client and is not kept: a ring costs the broker a page,
    /// not a descriptor).
    fn close_ring(&mut self, id: ClientId) -> Result<Outcome, Failure> {
        if self.close_rings.contains_key(&id) {
            return Err(Failure::new(
                ERROR_ALREADY_EXISTS,
                "this connection has its close ring already",
            ));
        }
        let (ring, fd) = CloseRing::create()
            .map_err(|e| Failure::new(crate::errno(e), "making a close ring"))?;
        self.close_rings.insert(id, ring);
        Ok(Outcome {
            reply: Reply::Done,
            fd: Some(Rc::new(fd)),
            shutdown: false,
        })
    }

    /// Makes the doorbell of client `id`, which has a close ring: an
    /// `eventfd` the server loop watches (it registers the one in the
    /// reply), which the process rings after it put a request in its page.
    /// A client that rings it for nothing costs the broker one look at its
    /// page, as a message would.
    fn doorbell(&mut self, id: ClientId) -> Result<Outcome, Failure> {
        if !self.close_rings.contains_key(&id) {
            return Err(Failure::new(
                ERROR_INVALID_FUNCTION,
                "a doorbell needs the connection's close ring first",
            ));
        }
        if self.doorbells.contains(&id) {
            return Err(Failure::new(
                ERROR_ALREADY_EXISTS,
                "this connection has its doorbell already",
            ));
        }
        // (One fd for as long as the connection lasts: within the reserve.)
        self.check_descriptors()?;
        let bell = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Failure::new(crate::errno(e), "making a doorbell"))?;
        self.doorbells.insert(id);
        Ok(Outcome {
            reply: Reply::Done,
            fd: Some(Rc::new(bell)),
            shutdown: false,
        })
    }

    /// The server loop could not watch client `id`'s new doorbell: it has
    /// none (its request fails, and it may ask again).
    pub fn forget_doorbell(&mut self, id: ClientId) {
        self.doorbells.remove(&id);
    }

    /// Copies the request client `id` left in its page, if any, into `out`
    /// (see `CloseRing::take_request`).
    pub fn take_page_request(&mut self, id: ClientId, out: &mut [u8]) -> Option<Result<usize, ()>> {
        self.close_rings.get_mut(&id)?.take_request(out)
    }

    /// A request taken from a page is to be served (counted in the status).
    pub fn note_paged_request(&mut self) {
        self.paged_requests += 1;
    }

    /// Answers client `id`'s request `seq` in its page (`None`: says the
    /// answer is on the socket); false if it does not fit.
    pub fn post_page_reply(&self, id: ClientId, seq: u32, reply: Option<&[u8]>) -> bool {
        self.close_rings
            .get(&id)
            .is_some_and(|ring| ring.post_reply(seq, reply))
    }

    /// Client `id`'s request `seq` is about to be served: said in its page
    /// (its close ring), if it has one, for the process to read should the
    /// broker die before it answers. A remote operation says so itself,
    /// just before it changes anything (`Broker::remote_change_begins`):
    /// one the broker dies before that is sent again.
    pub fn note_began(&mut self, id: ClientId, seq: u32, remote: bool) {
        self.serving = Some((id, seq));
        if !remote {
            self.remote_change_begins();
        }
    }

    /// The request being served begins to change state: said in its
    /// connection's page.
    fn remote_change_begins(&self) {
        if let Some((id, seq)) = self.serving
            && let Some(ring) = self.close_rings.get(&id)
        {
            ring.note_began(seq);
        }
    }

    /// The remote operation being served changed state, with `outcome`:
    /// said in its connection's page at once (before it wakes anyone), so
    /// that a broker that dies from here on is known to have done it.
    fn remote_change_finished(&self, outcome: &Outcome) {
        if let (Some((id, seq)), Reply::Remote(reply)) = (self.serving, &outcome.reply)
            && let Some(ring) = self.close_rings.get(&id)
        {
            ring.note_finished(seq, reply.to_words());
        }
    }

    /// Client `id`'s request `seq` is done, its answer (`reply`, if it
    /// succeeded) on its way: said in its page, with what a remote
    /// operation did.
    pub fn note_finished(&self, id: ClientId, seq: u32, reply: Option<&Reply>) {
        if let Some(ring) = self.close_rings.get(&id) {
            let result = match reply {
                Some(Reply::Remote(remote)) => remote.to_words(),
                _ => [0; objmgr_sync::close_ring::RESULT_WORDS],
            };
            ring.note_finished(seq, result);
        }
    }

    /// Carries out every close that processes left in their close rings:
    /// called after each look at the connections, before any request is
    /// served (see `objmgr_sync::close_ring`). A handle that is not open,
    /// names another object than the process said (it was closed and its
    /// value reused behind the process's back), or is protected from close,
    /// stays as it is.
    pub fn drain_close_rings(&mut self) {
        if self.close_rings.is_empty() {
            return;
        }
        let mut closes = std::mem::take(&mut self.ring_closes);
        for (&id, ring) in self.close_rings.iter_mut() {
            ring.drain(|close| closes.push((id, close)));
        }
        for &(id, close) in &closes {
            let handle = Handle(close.handle);
            let named = self.clients.get(&id).and_then(|c| c.handles.get(handle));
            if named.is_some_and(|entry| self.public_number(entry.object) == close.object) {
                let _ = self.close(id, handle);
            }
        }
        closes.clear();
        self.ring_closes = closes;
    }

    /// The number a client knows object `oid` by: a keyed hash, random
    /// for each broker, so that a number from a broker that died never
    /// names an object of this one, and numbers say nothing about how many
    /// objects others make. Never 0 (a client's "unknown").
    fn public_number(&self, oid: ObjectId) -> u64 {
        use std::hash::BuildHasher;
        self.number_key.hash_one(oid).max(1)
    }

    /// When the broker must look at the close rings even if nothing wakes
    /// it: once a handle was closed behind its holder's back (its note of
    /// what it holds is then out of date, and a close it leaves in its ring
    /// may free a section, whose memory must not wait for the broker's next
    /// request). Otherwise never: a wait without a timeout arms no timer.
    pub fn close_ring_deadline(&self) -> Option<Instant> {
        self.stale_holders
            .iter()
            .any(|id| self.close_rings.contains_key(id))
            .then(|| Instant::now() + CLOSE_RING_SWEEP)
    }

    /// Drops one reference; destroys the object at zero.
    fn release(&mut self, id: ObjectId) {
        let Some(object) = self.objects.get_mut(&id) else {
            return;
        };
        object.handle_count -= 1;
        if object.handle_count == 0 {
            if matches!(object.body, Body::Job { .. }) {
                if !self.job_closed(id) {
                    // It lives on, nameless, while it has members.
                    if let Some(path) = self.objects.get_mut(&id).and_then(|o| o.path.take()) {
                        self.names.remove(&path);
                    }
                    return;
                }
                let parent = self.job_parent(id);
                self.forget_job(id);
                if let Some(parent) = parent {
                    // Its closed parent may have nothing left now.
                    self.destroy_closed_jobs(parent);
                }
                if !self.objects.contains_key(&id) {
                    return;
                }
            }
            let object = self.objects.remove(&id).expect("object present");
            self.ledger_grants.remove(&id);
            self.ledger_gone(id, &object.body);
            if let Some((pid, charge)) = object.charged_to {
                if let Some(usage) = self.usage.get_mut(&pid) {
                    usage.give_back(charge);
                    if usage.is_empty() {
                        self.usage.remove(&pid);
                    }
                }
                if charge.sections > 0 {
                    self.live_sections -= 1;
                }
            }
            if let Some(path) = object.path {
                self.names.remove(&path);
            }
            // A solo arena goes with its object (the mapping is unmapped).
            if let Some(arena) = object.adopted_arena {
                if self.adopted.get(&arena).is_some_and(SyncArena::is_solo) {
                    self.adopted.remove(&arena);
                } else if let (Some((slot, _)), Some(sync)) =
                    (object.body.sync_slot(), self.adopted.get_mut(&arena))
                {
                    sync.free(slot);
                }
            } else if self.solo.remove(&id).is_some() {
                if let Some(count) = self.solo_per_user.get_mut(&object.domain) {
                    *count -= 1;
                    if *count == 0 {
                        self.solo_per_user.remove(&object.domain);
                    }
                }
            } else if let (Some((slot, _)), Some(sync)) =
                (object.body.sync_slot(), self.sync.get_mut(&object.domain))
            {
                sync.free(slot);
            }
            match object.body {
                Body::File(open) => self.file_closed(id, open),
                Body::Section(section) => {
                    if let Some(node) = section.file_node()
                        && let Some(sections) = self.mapped_files.get_mut(&node)
                    {
                        sections.retain(|&s| s != id);
                        if sections.is_empty() {
                            self.mapped_files.remove(&node);
                        }
                    }
                }
                Body::Process { record, .. } => self.process_object_gone(record),
                Body::Thread {
                    main_of: Some(record),
                    ..
                } => self.main_thread_gone(record),
                _ => {}
            }
        }
    }

    /// Who a client is, for the log.
    pub fn describe_client(&self, id: ClientId) -> String {
        match self.clients.get(&id) {
            Some(client) => format!("pid {} (uid {})", client.pid, client.uid),
            None => format!("connection {id}"),
        }
    }

    fn client(&mut self, id: ClientId) -> &mut Client {
        self.clients
            .get_mut(&id)
            .expect("requests come from connected clients")
    }

    /// Serves one request from client `id`. `fds` are the descriptors that
    /// came with it (already checked to be at most `MAX_FDS_PER_MESSAGE`).
    pub fn handle(
        &mut self,
        id: ClientId,
        request: Request,
        mut fds: Vec<OwnedFd>,
    ) -> Result<Outcome, Failure> {
        self.requests[Opcode::ALL
            .iter()
            .position(|op| *op == request.opcode())
            .expect("opcode listed")] += 1;
        let greeted = self.client(id).greeted;
        let expected_fds = match request {
            // The file, and the same file opened read-only.
            Request::CreateSection {
                from_file: true, ..
            } => 2,
            Request::Spawn { stdio, .. } => (stdio & 0b111).count_ones() as usize,
            Request::OpenFile {
                delete_on_close, ..
            } => 1 + usize::from(delete_on_close),
            Request::FileControl {
                op: objmgr_proto::wire::FileOp::MayDelete,
                ..
            } => 2,
            Request::Reclaim { ref step } => step.fds(),
            _ => 0,
        };
        // A client's fds refused here are closed off the broker's thread
        // (closing a file can wait on its file system).
        let refuse = |fds: Vec<OwnedFd>, failure: Failure| {
            fds.into_iter().for_each(crate::closer::close_later);
            Err(failure)
        };
        if fds.len() != expected_fds {
            return refuse(
                fds,
                Failure::protocol("wrong number of file descriptors attached"),
            );
        }
        if !greeted && !matches!(request, Request::Hello { .. }) {
            return refuse(fds, Failure::protocol("request before Hello"));
        }
        if greeted {
            if let Err(failure) = self.hold_for_recovery(request.opcode()) {
                return refuse(fds, failure);
            }
            if !self.late.is_empty() && !matches!(request, Request::Reclaim { .. }) {
                self.note_new_session(id);
            }
        }
        match request {
            Request::Hello { version } => {
                if greeted {
                    return Err(Failure::protocol("second Hello"));
                }
                if version != PROTOCOL_VERSION {
                    return Err(Failure {
                        code: ERROR_REVISION_MISMATCH,
                        context: format!(
                            "client speaks protocol {version}, broker speaks {PROTOCOL_VERSION}"
                        ),
                        disconnect: true,
                    });
                }
                let (pid, uid) = (self.client(id).pid, self.client(id).uid);
                // Only a process of the uid the table was made for claims it.
                let pending = match self.pending.get(&pid) {
                    Some(table) if table.owner.is_none_or(|owner| owner == uid) => {
                        self.pending.remove(&pid)
                    }
                    _ => None,
                };
                let client = self.client(id);
                client.greeted = true;
                // A spawned child finds the handles it inherited (or was
                // given with DuplicateHandle) before it connected.
                let gifted = pending.as_ref().is_some_and(|table| table.live > 0);
                if let Some(table) = pending {
                    client.handles = table;
                }
                if gifted {
                    self.journal_gift(id);
                }
                let client = self.client(id);
                let client_tag = client.tag;
                Ok(Outcome::reply(Reply::Hello {
                    version: PROTOCOL_VERSION,
                    broker_pid: std::process::id(),
                    session: self.session_of(id),
                    client_tag,
                }))
            }
            Request::Reclaim { step } => {
                // [fd] or, for a section over a file, [fd, its read-only twin]
                // (the count was checked above).
                let read_only = matches!(step, objmgr_proto::wire::ReclaimStep::FileSection { .. })
                    .then(|| fds.pop())
                    .flatten();
                self.reclaim(id, step, fds.pop(), read_only)
            }
            Request::CreateSection {
                name,
                protection,
                size,
                inherit,
                from_file,
                security,
            } => {
                let file = match (from_file, fds.pop(), fds.pop()) {
                    (true, Some(read_only), Some(file)) => Some((
                        crate::closer::ClientFd::new(file),
                        crate::closer::ClientFd::new(read_only),
                    )),
                    _ => None,
                };
                self.create_section(id, &name, protection, size, inherit, file, &security)
            }
            Request::Open {
                object_type,
                name,
                access,
                inherit,
                known_fd,
            } => {
                let mut outcome = self.open(id, object_type, &name, access, inherit)?;
                // The caller keeps a descriptor of this section already, one
                // that can do what the new handle may: none is sent. (Only
                // the caller's own handle is believed, and only about the
                // caller's own descriptor: a false claim costs it the fd.)
                if let (Reply::Section(grant), Some(known)) = (&outcome.reply, known_fd)
                    && known.reach >= FdReach::needed_by(grant.access)
                    && known.object == grant.object
                    && self
                        .clients
                        .get(&id)
                        .and_then(|client| client.handles.get(known.handle))
                        .is_some_and(|entry| self.public_number(entry.object) == known.object)
                {
                    outcome.fd = None;
                }
                Ok(outcome)
            }
            // Closing a pseudo-handle does nothing and succeeds.
            Request::Close { handle } | Request::CloseNoReply { handle }
                if handle == CURRENT_PROCESS || handle == CURRENT_THREAD =>
            {
                Ok(Outcome::reply(Reply::Value(0)))
            }
            Request::Close { handle } | Request::CloseNoReply { handle } => {
                let ticket = self.close(id, handle)?;
                Ok(Outcome::reply(Reply::Value(ticket)))
            }
            Request::CloseRing => self.close_ring(id),
            Request::Doorbell => self.doorbell(id),
            Request::QueryHandle { handle } => {
                let entry = *self
                    .client(id)
                    .handles
                    .get(handle)
                    .ok_or_else(|| not_open(handle))?;
                self.grant_reply(id, entry.object, handle, entry.access, false)
            }
            Request::Spawn {
                program,
                args,
                env,
                cwd,
                inherit_handles,
                stdio,
                flags,
            } => self.spawn(
                id,
                &program,
                &args,
                &env,
                &cwd,
                (inherit_handles, flags),
                stdio,
                fds,
            ),
            Request::OpenProcess {
                pid,
                access,
                inherit,
            } => self.open_process(id, pid, access, inherit),
            Request::Terminate { handle, exit_code } => self.terminate(id, handle, exit_code),
            Request::Duplicate {
                source_process,
                source,
                target_process,
                access,
                inherit,
                options,
            } => self.duplicate(
                id,
                source_process,
                source,
                target_process,
                access,
                inherit,
                options,
            ),
            Request::HandleFlags {
                handle,
                mask,
                flags,
            } => self.handle_flags(id, handle, mask, flags),
            Request::CreateThread { inherit } => self.create_thread(id, inherit),
            Request::ListProcesses { after } => Ok(Outcome::reply(self.list_processes(after))),
            Request::ListHandles { pid, after } => self.list_handles(id, pid, after),
            Request::Security {
                handle,
                set,
                which,
                sddl,
            } => self.object_security(id, handle, set, which, &sddl),
            Request::Namespace {
                op,
                boundary,
                sids,
                alias,
                sddl,
                id: ns,
                destroy,
            } => self.namespace_request(id, op, &boundary, &sids, &alias, &sddl, ns, destroy),
            Request::CreateJob {
                name,
                access,
                inherit,
                security,
            } => self.create_job(id, &name, access, inherit, &security),
            Request::OpenFile {
                access,
                share,
                inherit,
                delete_on_close,
                name,
            } => {
                // The file first, then (delete on close) its directory.
                let dir = if delete_on_close { fds.pop() } else { None };
                let fd = fds.pop().expect("the file's fd, checked above");
                self.open_file(id, access, share, inherit, fd, dir.map(|d| (d, name)))
            }
            Request::ListFiles => Ok(self.list_files(id)),
            Request::FileControl {
                op,
                handle,
                value,
                name,
            } => {
                let dir = fds.pop();
                let file = fds.pop();
                self.file_control(
                    id,
                    op,
                    handle,
                    value,
                    file.zip(dir).map(|(f, d)| (f, d, name)),
                )
            }
            Request::JobControl {
                op,
                job,
                process,
                values,
            } => self.job_control(id, op, job, process, &values),
            Request::SyncRemote {
                op,
                token,
                tid,
                register,
                handles,
                values,
                due,
                period,
            } => self.sync_remote(
                id,
                op,
                (token, tid),
                register,
                &handles,
                &values,
                (due, period),
            ),
            Request::CreateSync {
                name,
                init,
                access,
                inherit,
                owner_token,
                owner_tid,
                security,
            } => {
                let owner = (owner_token, owner_tid);
                self.create_sync(id, &name, init, access, inherit, owner, &security)
            }
            Request::ListObjects { after, limit } => {
                let limit = limit.clamp(1, MAX_LIST_ENTRIES) as usize;
                let range = self.names.range::<String, _>((
                    std::ops::Bound::Excluded(&after),
                    std::ops::Bound::Unbounded,
                ));
                let mut entries = Vec::with_capacity(limit);
                let mut more = false;
                // Stop well before the reply could outgrow one message: paths and
                // properties are at most MAX_STRING_LEN bytes each.
                let budget = MAX_MESSAGE_SIZE - 4 * MAX_STRING_LEN;
                let mut used = 0;
                for (_, oid) in range.filter(|(path, _)| self.visible_to(id, path)) {
                    if entries.len() == limit || used > budget {
                        more = true;
                        break;
                    }
                    let entry = self.entry(*oid);
                    used += 32
                        + entry.path.len()
                        + entry
                            .properties
                            .iter()
                            .map(|(k, v)| 4 + k.len() + v.len())
                            .sum::<usize>();
                    entries.push(entry);
                }
                Ok(Outcome::reply(Reply::Objects { entries, more }))
            }
            Request::StatObject { name } => {
                let path = if name.starts_with('\\') {
                    name
                } else {
                    self.resolve_name(id, &name)?
                        .path
                        .ok_or_else(|| Failure::new(ERROR_INVALID_NAME, "empty object name"))?
                };
                let oid = *self
                    .names
                    .get(&path)
                    .filter(|_| self.visible_to(id, &path))
                    .ok_or_else(|| {
                        Failure::new(ERROR_FILE_NOT_FOUND, format!("no object named {path}"))
                    })?;
                Ok(Outcome::reply(Reply::Object(self.entry(oid))))
            }
            Request::Status => Ok(Outcome::reply(Reply::Status(self.status()))),
            Request::Shutdown if self.system && self.clients[&id].uid != 0 => Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "only root may stop the system-wide broker",
            )),
            Request::Shutdown => Ok(Outcome {
                reply: Reply::Done,
                fd: None,
                shutdown: true,
            }),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    fn create_section(
        &mut self,
        id: ClientId,
        name: &str,
        fl_protect: u32,
        size: u64,
        inherit: bool,
        file: Option<(crate::closer::ClientFd, crate::closer::ClientFd)>,
        sddl: &str,
    ) -> Result<Outcome, Failure> {
        let (protection, attributes) = parse_protection(fl_protect)
            .map_err(|code| Failure::new(code, format!("invalid protection {fl_protect:#x}")))?;
        let resolved = self.resolve_name(id, name)?;
        let path = resolved.path;
        let access = AccessMask(protection.creator_access());
        // As on Windows: an existing section is returned whatever size and
        // protection were asked for now.
        if let Some(existing) = self.existing(path.as_deref(), ObjectType::Section)? {
            let access = self.check_access(id, existing, access.0)?;
            return self.grant(id, existing, access, inherit, true);
        }
        self.check_create_global(id, resolved.global, name)?;
        self.check_namespace_create(id, resolved.namespace)?;
        // The descriptor matters only for a new object (an existing one keeps its own).
        let security = self.security_for_new(id, sddl)?;
        // A file-backed section's size is known once the file is seen;
        // a size of 0 (the file's) is charged as what it turns out to be.
        self.check_quota(id, Charge::section(size))?;
        let section = match file {
            None => Section::new_anonymous(size, protection, attributes)?,
            Some((fd, read_only)) => {
                Section::new_file_backed(fd, read_only, size, protection, attributes)?
            }
        };
        let charge = Charge::section(section.size);
        self.check_quota(id, charge)?;
        let node = section.file_node();
        let oid = self.insert_object(
            ObjectType::Section,
            path,
            Body::Section(section),
            Some((id, charge)),
            security,
            self.domain_of(id),
        );
        if let Some(node) = node {
            // A mapping is a user of its file, as on Windows.
            self.mapped_files.entry(node).or_default().push(oid);
        }
        self.ledger_note(oid);
        self.grant(id, oid, access, inherit, false)
    }

    /// The live object named `path`, if any, provided it has the type a
    /// `Create*` call asks for (`ERROR_INVALID_HANDLE` when another type holds
    /// the name).
    fn existing(
        &self,
        path: Option<&str>,
        wanted: ObjectType,
    ) -> Result<Option<ObjectId>, Failure> {
        let Some(&existing) = path.and_then(|p| self.names.get(p)) else {
            return Ok(None);
        };
        let object_type = self.objects[&existing].object_type;
        if object_type != wanted {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!(
                    "{} is a {object_type}, not a {wanted}",
                    path.unwrap_or_default()
                ),
            ));
        }
        Ok(Some(existing))
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    fn create_sync(
        &mut self,
        id: ClientId,
        name: &str,
        init: SyncInit,
        access: u32,
        inherit: bool,
        (owner_token, owner_tid): (u32, u32),
        sddl: &str,
    ) -> Result<Outcome, Failure> {
        let object_type = init.object_type();
        init.validate().map_err(|code| {
            Failure::new(code, format!("invalid {object_type} arguments {init:?}"))
        })?;
        let resolved = self.resolve_name(id, name)?;
        let path = resolved.path;
        // An existing object is returned as it is: the creation arguments
        // (initial state, counts, initial ownership) are ignored, as on Windows.
        if let Some(existing) = self.existing(path.as_deref(), object_type)? {
            let access = self.check_access(id, existing, access)?;
            return self.grant(id, existing, access, inherit, true);
        }
        let access = object_type.map_generic(access);
        let client = &self.clients[&id];
        let owner = match init {
            SyncInit::Mutex { owned: true } => {
                let token = Token::from_raw(owner_token)
                    .filter(|t| t.tag() == client.tag)
                    .ok_or_else(|| {
                        Failure::new(
                            ERROR_INVALID_PARAMETER,
                            "initial mutex owner is not a thread of the calling process",
                        )
                    })?;
                Some(Actor {
                    token,
                    pid: client.pid,
                    tid: owner_tid,
                })
            }
            _ => None,
        };
        self.check_create_global(id, resolved.global, name)?;
        self.check_namespace_create(id, resolved.namespace)?;
        let security = self.security_for_new(id, sddl)?;
        self.check_quota(id, Charge::sync_object())?;
        let shared_name = resolved.global || resolved.namespace.is_some();
        let state = self.new_state(id, shared_name, |arena| arena.allocate(init, owner))?;
        let body = Body::Sync {
            slot: state.slot,
            kind: Kind::from_init(init),
        };
        let oid = self.insert_state_object(id, object_type, path, body, security, state);
        self.grant(id, oid, access, inherit, false)
    }

    /// The state of a new waitable object of client `id` set up by `init`
    /// in its arena: the client's domain's, or (named where other users may
    /// open it, `shared_name`, on the system broker) a solo arena of its
    /// own, so that they map that page read-only and nothing of the
    /// creator's domain.
    fn new_state(
        &mut self,
        id: ClientId,
        shared_name: bool,
        init: impl FnOnce(&mut SyncArena) -> Result<u32, Failure>,
    ) -> Result<NewState, Failure> {
        let domain = self.domain_of(id);
        let shared = self.system && shared_name;
        if shared {
            self.check_shared_sync(domain)?;
            self.check_descriptors()?;
            let mut arena = SyncArena::new_solo()?;
            let slot = init(&mut arena)?;
            Ok(NewState {
                slot,
                domain,
                solo: Some(arena),
            })
        } else {
            let slot = init(self.arena_mut(domain)?)?;
            Ok(NewState {
                slot,
                domain,
                solo: None,
            })
        }
    }

    /// Adds a new object whose state [`Self::new_state`] made, charged to
    /// client `id` as a sync object.
    fn insert_state_object(
        &mut self,
        id: ClientId,
        object_type: ObjectType,
        path: Option<String>,
        body: Body,
        security: Rc<SecurityDescriptor>,
        state: NewState,
    ) -> ObjectId {
        let oid = self.insert_object(
            object_type,
            path,
            body,
            Some((id, Charge::sync_object())),
            security,
            state.domain,
        );
        if let Some(arena) = state.solo {
            self.solo.insert(oid, arena);
            *self.solo_per_user.entry(state.domain).or_default() += 1;
        }
        self.ledger_note(oid);
        oid
    }

    /// What the process of client `id` holds: charges are kept by pid, not
    /// by connection, so that neither several connections nor a new one
    /// escape them; they last as long as the objects do.
    fn usage_of(&self, id: ClientId) -> Usage {
        let pid = self.clients[&id].pid;
        self.usage.get(&pid).copied().unwrap_or_default()
    }

    /// Checks, before anything is made, that client `id` may create an
    /// object costing `charge`: within its quotas, and (for a section) with
    /// the broker's descriptor reserve left.
    fn check_quota(&self, id: ClientId, charge: Charge) -> Result<(), Failure> {
        let usage = self.usage_of(id);
        usage.check(charge)?;
        if charge.sections > 0 {
            self.check_descriptors()?;
        }
        if charge.sync_objects > 0
            && let Some(sync) = self.sync.get(&self.domain_of(id))
            && sync.available() < quota::RESERVED_SLOTS
            && usage.sync_objects >= quota::get().sync_objects / 16
        {
            return Err(Failure::new(
                ERROR_NO_SYSTEM_RESOURCES,
                "the synchronization arena is nearly full; what is left is kept for processes that hold few objects",
            ));
        }
        Ok(())
    }

    /// Checks that user `uid` may have one more sync object shared with
    /// other users (each has a page, a mapping and a descriptor of the
    /// broker's own), and the broker one more.
    fn check_shared_sync(&self, uid: u32) -> Result<(), Failure> {
        let mine = self.solo_per_user.get(&uid).copied().unwrap_or(0);
        if mine >= quota::SHARED_SYNC_PER_USER || self.solo.len() >= quota::SHARED_SYNC_TOTAL {
            return Err(Failure::new(
                ERROR_NO_SYSTEM_RESOURCES,
                format!(
                    "too many synchronization objects shared between users ({mine} of this \
                     user's, {} in all; at most {} and {})",
                    self.solo.len(),
                    quota::SHARED_SYNC_PER_USER,
                    quota::SHARED_SYNC_TOTAL
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the broker may take two more descriptors (a new section
    /// or solo arena, and its read-only fd) and keep its reserve.
    fn check_descriptors(&self) -> Result<(), Failure> {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        // Each section and solo arena holds one or two fds (two at most
        // for the new one); each connection one. Counted exactly only when
        // the bound says it may be close.
        // Each connection holds its socket and its process's pidfd, and
        // its doorbell if it has one.
        let clients = 2 * self.clients.len() as u64 + self.doorbells.len() as u64;
        // (Solo arenas taken back after a crash hold one too.)
        let adopted_solo = self.adopted.values().filter(|a| a.is_solo()).count();
        let holders = self.live_sections + (self.solo.len() + adopted_solo) as u64;
        let bound = 2 * (holders + 1) + clients;
        let in_use = if bound.saturating_add(quota::RESERVED_FDS) <= limit {
            bound
        } else {
            let sections: u64 = self
                .objects
                .values()
                .map(|o| match &o.body {
                    Body::Section(section) => section.fds_held(),
                    Body::File(_) => 1,
                    _ => 0,
                })
                .sum();
            let solo: u64 = self
                .solo
                .values()
                .chain(self.adopted.values().filter(|a| a.is_solo()))
                .map(SyncArena::fds_held)
                .sum();
            sections + solo + 2 + clients
        };
        if in_use.saturating_add(quota::RESERVED_FDS) > limit {
            return Err(Failure::new(
                ERROR_NO_SYSTEM_RESOURCES,
                "the broker keeps its remaining file descriptors for other processes",
            ));
        }
        Ok(())
    }

    /// Adds a new object; `charge` (creator and cost, checked with
    /// [`Self::check_quota`]) is taken from the creator until the object dies.
    fn insert_object(
        &mut self,
        object_type: ObjectType,
        path: Option<String>,
        body: Body,
        charge: Option<(ClientId, Charge)>,
        security: Rc<SecurityDescriptor>,
        domain: u32,
    ) -> ObjectId {
        let charge = charge.map(|(creator, cost)| {
            let pid = self.clients[&creator].pid;
            self.usage.entry(pid).or_default().take(cost);
            if cost.sections > 0 {
                self.live_sections += 1;
            }
            (pid, cost)
        });
        let oid = self.next_object;
        self.next_object += 1;
        if let Some(path) = &path {
            self.names.insert(path.clone(), oid);
        }
        // handle_count starts at 0; grant() adds the creator's handle.
        self.objects.insert(
            oid,
            Object {
                object_type,
                path,
                handle_count: 0,
                body,
                charged_to: charge,
                security,
                domain,
                adopted_arena: None,
            },
        );
        oid
    }

    fn open(
        &mut self,
        id: ClientId,
        object_type: ObjectType,
        name: &str,
        access: u32,
        inherit: bool,
    ) -> Result<Outcome, Failure> {
        let Some(path) = self.resolve_name(id, name)?.path else {
            // The empty name names the directory itself, which is not of the type asked for.
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                "the empty name is not an object",
            ));
        };
        let oid = self
            .existing(Some(&path), object_type)?
            .ok_or_else(|| Failure::new(ERROR_FILE_NOT_FOUND, format!("no object named {path}")))?;
        let access = self.check_access(id, oid, access)?;
        self.grant(id, oid, access, inherit, false)
    }

    /// Adds a handle to `oid` in client `id`'s table and builds the reply.
    fn grant(
        &mut self,
        id: ClientId,
        oid: ObjectId,
        access: AccessMask,
        inherit: bool,
        existed: bool,
    ) -> Result<Outcome, Failure> {
        let inserted = self.client(id).handles.insert(HandleEntry {
            object: oid,
            access,
            inherit,
            protect: false,
        });
        let handle = match inserted {
            Ok(handle) => handle,
            Err(failure) => {
                // A new object nobody got a handle to must not linger.
                self.destroy_if_unreferenced(oid);
                return Err(failure);
            }
        };
        self.objects
            .get_mut(&oid)
            .expect("object present")
            .handle_count += 1;
        self.ledger_grant(id, oid, access.0);
        match self.grant_reply(id, oid, handle, access, existed) {
            Ok(outcome) => Ok(outcome),
            Err(failure) => {
                // Undo: the caller must not be left with a handle it never learned of.
                self.client(id).handles.remove(handle);
                self.release(oid);
                Err(failure)
            }
        }
    }

    /// The reply for a new handle: what the client needs to use the object,
    /// with the fd behind it (a section's file, or the sync arena the first
    /// time this client gets a sync object).
    fn grant_reply(
        &mut self,
        id: ClientId,
        oid: ObjectId,
        handle: Handle,
        access: AccessMask,
        existed: bool,
    ) -> Result<Outcome, Failure> {
        match &self.objects[&oid].body {
            Body::Section(section) => {
                // The fd is what the kernel enforces: a handle that may not
                // map the section gets one that maps nothing (O_PATH), so it
                // can still be queried, duplicated and closed.
                let fd = match FdReach::needed_by(access.0) {
                    FdReach::Query => section.fd_for_query()?,
                    reach => section.fd_for(reach == FdReach::Write)?,
                };
                Ok(Outcome {
                    reply: Reply::Section(SectionGrant {
                        handle,
                        existed,
                        access: access.0,
                        info: section.info(),
                        object: self.public_number(oid),
                    }),
                    fd: Some(fd),
                    shutdown: false,
                })
            }
            Body::File(open) => Self::file_grant(open, handle, access),
            body => {
                let (slot, kind) = body.sync_slot().expect("not a section or file");
                let writable = self.maps_writable(id, oid);
                let arena = self.arena_of(oid).expect("a sync object has an arena");
                if !writable && arena.slots() != objmgr_sync::arena::SOLO_SLOTS {
                    return Err(Failure::new(
                        ERROR_ACCESS_DENIED,
                        "the synchronization object lives in another user's own domain; \
                         to share one between users, name it in Global\\ or a private namespace",
                    ));
                }
                let (arena_id, arena_slots) = (arena.id, arena.slots());
                let solo = arena.is_solo();
                let arena_fd = arena.fd_for(writable)?;
                let client = self.client(id);
                let fd = if solo {
                    Some(arena_fd)
                } else if client.arenas_sent.contains(&arena_id) {
                    None
                } else {
                    client.arenas_sent.push(arena_id);
                    Some(arena_fd)
                };
                Ok(Outcome {
                    reply: Reply::Sync(SyncGrant {
                        handle,
                        existed,
                        access: access.0,
                        kind: kind.code(),
                        slot,
                        arena_id,
                        arena_slots,
                        writable,
                    }),
                    fd,
                    shutdown: false,
                })
            }
        }
    }

    /// Whether client `id` maps object `oid`'s state writable: a process of
    /// the object's domain (and root, who could write any process's memory
    /// anyway) does; another user's maps a solo arena read-only and asks
    /// the broker for changes (`SyncRemote`).
    fn maps_writable(&self, id: ClientId, oid: ObjectId) -> bool {
        let client_uid = self.clients[&id].uid;
        !self.system || client_uid == self.objects[&oid].domain || client_uid == 0
    }

    /// The arena object `oid`'s state lives in, if it has state.
    fn arena_of(&self, oid: ObjectId) -> Option<&SyncArena> {
        let object = self.objects.get(&oid)?;
        object.body.sync_slot()?;
        if let Some(arena) = object.adopted_arena {
            return self.adopted.get(&arena);
        }
        self.solo
            .get(&oid)
            .or_else(|| self.sync.get(&object.domain))
    }

    fn entry(&self, oid: ObjectId) -> ObjectEntry {
        let object = &self.objects[&oid];
        let section = match &object.body {
            Body::Section(section) => section,
            Body::File(open) => {
                return ObjectEntry {
                    path: object.path.clone().unwrap_or_default(),
                    object_type: object.object_type,
                    handle_count: object.handle_count,
                    size: 0,
                    properties: vec![
                        ("access".to_owned(), format!("{:#x}", open.access)),
                        ("share".to_owned(), format!("{:#x}", open.share)),
                    ],
                };
            }
            body => {
                let slot = body.sync_slot().expect("not a section or file").0;
                return ObjectEntry {
                    path: object.path.clone().unwrap_or_default(),
                    object_type: object.object_type,
                    handle_count: object.handle_count,
                    size: 0,
                    properties: self
                        .arena_of(oid)
                        .map(|sync| sync.describe(slot))
                        .unwrap_or_default()
                        .into_iter()
                        .chain(self.job_properties(oid))
                        .chain(security_properties(&object.security))
                        .collect(),
                };
            }
        };
        let mut properties = vec![
            (
                "protection".to_owned(),
                section.protection.name().to_owned(),
            ),
            ("backing".to_owned(), section.backing()),
        ];
        if section.attributes.large_pages {
            properties.push(("large_pages".to_owned(), "yes".to_owned()));
        }
        properties.extend(security_properties(&object.security));
        ObjectEntry {
            path: object.path.clone().unwrap_or_default(),
            object_type: object.object_type,
            handle_count: object.handle_count,
            size: section.size,
            properties,
        }
    }

    pub fn status(&self) -> BrokerStatus {
        BrokerStatus {
            pid: std::process::id(),
            protocol_version: PROTOCOL_VERSION,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            socket: self.socket.clone(),
            clients: self.clients.len() as u32,
            objects: self.objects.len() as u32,
            named_objects: self.names.len() as u32,
            handles: self.clients.values().map(|c| c.handles.live as u64).sum(),
            idle_timeout_ms: self.idle_timeout_ms,
            processes_tracked: self.processes.len() as u32,
            pending_tables: self.pending.len() as u32,
            requests: Opcode::ALL
                .iter()
                .zip(self.requests)
                .map(|(op, n)| (op.name().to_owned(), n))
                .collect(),
            paged_requests: self.paged_requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use objmgr_proto::access::{SECTION_MAP_READ, SECTION_MAP_WRITE};
    use objmgr_proto::wire::KnownFd;
    use std::os::fd::AsFd;

    fn root_token() -> security::Token {
        security::Token::for_unix(0, 0, &[], None)
    }

    fn greeted_broker(clients: &[ClientId]) -> Broker {
        let mut broker = Broker::new("test".into(), 0);
        for &id in clients {
            broker
                .add_client(id, 100 + id as u32, 0, root_token())
                .unwrap();
            broker
                .handle(
                    id,
                    Request::Hello {
                        version: PROTOCOL_VERSION,
                    },
                    vec![],
                )
                .unwrap();
        }
        broker
    }

    fn create(
        broker: &mut Broker,
        id: ClientId,
        name: &str,
        size: u64,
    ) -> Result<SectionGrant, Failure> {
        let request = Request::CreateSection {
            name: name.into(),
            protection: 4,
            size,
            inherit: false,
            from_file: false,
            security: String::new(),
        };
        match broker.handle(id, request, vec![])?.reply {
            Reply::Section(grant) => Ok(grant),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn open(
        broker: &mut Broker,
        id: ClientId,
        object_type: ObjectType,
        name: &str,
    ) -> Result<Outcome, Failure> {
        broker.handle(
            id,
            Request::Open {
                object_type,
                name: name.into(),
                access: 0xF001F,
                inherit: false,
                known_fd: None,
            },
            vec![],
        )
    }

    #[test]
    fn requests_before_hello_are_protocol_violations() {
        let mut broker = Broker::new("test".into(), 0);
        broker.add_client(1, 1, 0, root_token()).unwrap();
        let failure = broker.handle(1, Request::Status, vec![]).unwrap_err();
        assert!(failure.disconnect);
        let failure = broker
            .handle(1, Request::Hello { version: 999 }, vec![])
            .unwrap_err();
        assert_eq!(failure.code, ERROR_REVISION_MISMATCH);
    }

    #[test]
    fn handle_values_are_multiples_of_four_and_reused() {
        let mut broker = greeted_broker(&[1]);
        let a = create(&mut broker, 1, "", 4096).unwrap().handle;
        let b = create(&mut broker, 1, "", 4096).unwrap().handle;
        assert_eq!((a, b), (Handle(4), Handle(8)));
        broker
            .handle(1, Request::Close { handle: a }, vec![])
            .unwrap();
        assert_eq!(create(&mut broker, 1, "", 4096).unwrap().handle, Handle(4));
        broker
            .handle(1, Request::Close { handle: b }, vec![])
            .unwrap();
        for bad in [Handle(0), Handle(6), Handle(4000), b] {
            let failure = broker
                .handle(1, Request::Close { handle: bad }, vec![])
                .unwrap_err();
            assert_eq!(failure.code, ERROR_INVALID_HANDLE, "{bad:?}");
            assert!(
                !failure.disconnect,
                "a bad handle is an error, not a protocol violation"
            );
        }
    }

    #[test]
    fn one_namespace_for_every_type() {
        let mut broker = greeted_broker(&[1, 2]);
        let first = create(&mut broker, 1, "Global\\shared", 4096).unwrap();
        assert!(!first.existed);
        let second = create(&mut broker, 2, "Global\\shared", 1 << 20).unwrap();
        assert!(second.existed);
        assert_eq!(
            second.info.size, 4096,
            "creation arguments of an existing object are ignored"
        );
        for other in ObjectType::ALL
            .into_iter()
            .filter(|t| *t != ObjectType::Section)
        {
            let failure = open(&mut broker, 2, other, "Global\\shared").unwrap_err();
            assert_eq!(failure.code, ERROR_INVALID_HANDLE, "{other:?}");
        }
        assert_eq!(
            open(&mut broker, 2, ObjectType::Section, "Global\\missing")
                .unwrap_err()
                .code,
            ERROR_FILE_NOT_FOUND
        );
        assert_eq!(
            open(&mut broker, 2, ObjectType::Section, "")
                .unwrap_err()
                .code,
            ERROR_INVALID_HANDLE
        );
        assert_eq!(
            open(&mut broker, 2, ObjectType::Section, "Nope\\x")
                .unwrap_err()
                .code,
            ERROR_PATH_NOT_FOUND
        );
        // Global\x and Local\x are different objects.
        assert!(
            !create(&mut broker, 2, "Local\\shared", 4096)
                .unwrap()
                .existed
        );
    }

    #[test]
    fn last_close_or_exit_destroys_and_frees_the_name() {
        let mut broker = greeted_broker(&[1, 2]);
        let a = create(&mut broker, 1, "x", 4096).unwrap();
        let _b = open(&mut broker, 2, ObjectType::Section, "x").unwrap();
        broker
            .handle(1, Request::Close { handle: a.handle }, vec![])
            .unwrap();
        assert!(
            open(&mut broker, 1, ObjectType::Section, "x").is_ok(),
            "client 2 still holds it"
        );
        broker.remove_client(2);
        broker.remove_client(1);
        assert_eq!(broker.status().objects, 0);
        broker.add_client(3, 3, 0, root_token()).unwrap();
        broker
            .handle(
                3,
                Request::Hello {
                    version: PROTOCOL_VERSION,
                },
                vec![],
            )
            .unwrap();
        assert!(!create(&mut broker, 3, "x", 4096).unwrap().existed);
    }

    #[test]
    fn read_only_handles_get_read_only_fds() {
        let mut broker = greeted_broker(&[1]);
        create(&mut broker, 1, "ro", 4096).unwrap();
        let outcome = broker
            .handle(
                1,
                Request::Open {
                    object_type: ObjectType::Section,
                    name: "ro".into(),
                    access: 4,
                    inherit: false,
                    known_fd: None,
                },
                vec![],
            )
            .unwrap();
        let fd = outcome.fd.expect("section replies carry an fd");
        let mode = rustix::fs::fcntl_getfl(&*fd).unwrap() & rustix::fs::OFlags::RWMODE;
        assert_eq!(mode, rustix::fs::OFlags::RDONLY);
    }

    #[test]
    fn an_open_sends_no_fd_only_for_a_section_the_caller_keeps_one_of() {
        let mut broker = greeted_broker(&[1]);
        let kept = create(&mut broker, 1, "kept", 4096).unwrap().handle;
        let other = create(&mut broker, 1, "other", 4096).unwrap().handle;
        let number = |broker: &mut Broker, handle| {
            let oid = broker.client(1).handles.get(handle).unwrap().object;
            broker.public_number(oid)
        };
        let (section, other_section) = (number(&mut broker, kept), number(&mut broker, other));
        let mut open = |name: &str, access, known: Option<(Handle, FdReach, u64)>| {
            let request = Request::Open {
                object_type: ObjectType::Section,
                name: name.into(),
                access,
                inherit: false,
                known_fd: known.map(|(handle, reach, object)| KnownFd {
                    handle,
                    reach,
                    object,
                }),
            };
            broker.handle(1, request, vec![]).unwrap().fd.is_some()
        };
        let (read, write) = (SECTION_MAP_READ, FdReach::Write);
        assert!(open("kept", read, None), "no hint");
        assert!(
            !open("kept", read, Some((kept, write, section))),
            "the caller's fd of the same section"
        );
        assert!(
            !open("kept", read, Some((kept, FdReach::Read, section))),
            "enough for reading"
        );
        assert!(
            open(
                "kept",
                SECTION_MAP_WRITE,
                Some((kept, FdReach::Read, section))
            ),
            "not enough for writing"
        );
        assert!(
            open("kept", read, Some((kept, FdReach::Query, section))),
            "maps nothing"
        );
        assert!(
            open("kept", read, Some((other, write, other_section))),
            "another section"
        );
        assert!(
            open("kept", read, Some((kept, write, other_section))),
            "the handle names another section than the caller believes"
        );
        assert!(
            open("kept", read, Some((Handle(0x7ffc), write, section))),
            "no handle"
        );
    }

    #[test]
    fn a_doorbell_comes_after_the_page_and_once_and_its_requests_are_copied_out() {
        use objmgr_sync::close_ring::CloseRing;
        let mut broker = greeted_broker(&[1, 2]);
        let early = broker.handle(1, Request::Doorbell, vec![]).unwrap_err();
        assert_eq!(early.code, ERROR_INVALID_FUNCTION, "no page yet");
        let page = broker
            .handle(1, Request::CloseRing, vec![])
            .unwrap()
            .fd
            .unwrap();
        let bell = broker
            .handle(1, Request::Doorbell, vec![])
            .unwrap()
            .fd
            .unwrap();
        let again = broker.handle(1, Request::Doorbell, vec![]).unwrap_err();
        assert_eq!(again.code, ERROR_ALREADY_EXISTS);
        // An eventfd: eight bytes written ring it.
        assert_eq!(rustix::io::write(&*bell, &1u64.to_ne_bytes()), Ok(8));
        // A request in client 1's page is client 1's alone.
        let process = CloseRing::map(page.as_fd()).unwrap();
        assert!(process.post_request(9, &Request::Status.encode(9)));
        let mut buf = vec![0u8; 1024];
        assert_eq!(broker.take_page_request(2, &mut buf), None);
        let len = broker.take_page_request(1, &mut buf).unwrap().unwrap();
        assert_eq!(Request::decode(&buf[..len]).unwrap(), (9, Request::Status));
        assert!(broker.post_page_reply(1, 9, Some(b"answer")));
        assert!(
            !broker.post_page_reply(2, 9, Some(b"answer")),
            "2 has no page"
        );
        // A client gone takes its doorbell with it: a new connection with
        // its id (never reused by the server) could have one again.
        broker.remove_client(1);
        assert!(!broker.doorbells.contains(&1));
    }

    #[test]
    fn closes_left_in_a_close_ring_are_done_at_the_next_drain() {
        use objmgr_sync::close_ring::{CloseRing, RingClose};
        let mut broker = greeted_broker(&[1, 2]);
        let first = create(&mut broker, 1, "ringed", 4096).unwrap().handle;
        let second = open(&mut broker, 1, ObjectType::Section, "ringed").unwrap();
        let Reply::Section(second) = second.reply else {
            panic!("not a section");
        };
        let ringed = second.object;
        let outcome = broker.handle(1, Request::CloseRing, vec![]).unwrap();
        let fd = outcome.fd.expect("the ring's memory file");
        let again = broker.handle(1, Request::CloseRing, vec![]).unwrap_err();
        assert_eq!(again.code, ERROR_ALREADY_EXISTS, "one ring per connection");
        let ring = CloseRing::map(fd.as_fd()).unwrap();
        let close = |handle: Handle, object| RingClose {
            handle: handle.0,
            object,
        };
        assert!(
            broker.close_ring_deadline().is_none(),
            "nothing to sweep for"
        );
        broker.stale_holders.insert(2);
        assert!(broker.close_ring_deadline().is_none(), "2 has no ring");
        broker.stale_holders.insert(1);
        assert!(broker.close_ring_deadline().is_some(), "1's ring is swept");
        assert!(ring.push(close(second.handle, ringed)));
        let sections = broker.objects.len();
        broker.drain_close_rings();
        assert!(broker.client(1).handles.get(second.handle).is_none());
        // A protected handle stays open; a value that is not open, or names
        // another object than the process said, is left alone.
        broker.client(1).handles.get_mut(first).unwrap().protect = true;
        assert!(ring.push(close(first, ringed)) && ring.push(close(Handle(0x7ffc), ringed)));
        broker.drain_close_rings();
        assert!(ring.push(close(first, ringed + 1)));
        broker.client(1).handles.get_mut(first).unwrap().protect = false;
        broker.drain_close_rings();
        assert_eq!(broker.objects.len(), sections, "still held");
        assert!(ring.push(close(first, ringed)));
        broker.drain_close_rings();
        assert_eq!(broker.objects.len(), sections - 1, "the last handle closed");
        // Another process's values in this ring close only this one's.
        let theirs = create(&mut broker, 2, "theirs", 4096).unwrap();
        assert!(ring.push(close(theirs.handle, theirs.object)));
        broker.drain_close_rings();
        assert!(broker.client(2).handles.get(theirs.handle).is_some());
        broker.remove_client(1);
        assert!(broker.close_rings.is_empty());
        assert!(broker.close_ring_deadline().is_none());
    }

    fn create_sync(
        broker: &mut Broker,
        id: ClientId,
        name: &str,
        init: SyncInit,
        owner_token: u32,
    ) -> Result<Outcome, Failure> {
        broker.handle(
            id,
            Request::CreateSync {
                name: name.into(),
                init,
                access: objmgr_proto::sync::creator_access(init.object_type()),
                inherit: false,
                owner_token,
                owner_tid: 7,
                security: String::new(),
            },
            vec![],
        )
    }

    fn sync_grant(outcome: &Outcome) -> SyncGrant {
        match outcome.reply {
            Reply::Sync(grant) => grant,
            ref other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sync_objects_get_slots_and_the_arena_once_per_client() {
        let mut broker = greeted_broker(&[1, 2]);
        let event = SyncInit::Event {
            manual_reset: false,
            signaled: true,
        };
        let first = create_sync(&mut broker, 1, "ev", event, 0).unwrap();
        assert!(first.fd.is_some(), "the first sync reply carries the arena");
        let grant = sync_grant(&first);
        assert!(!grant.existed && grant.slot != 0);
        let second = create_sync(&mut broker, 1, "", event, 0).unwrap();
        assert!(second.fd.is_none(), "the arena is sent once per connection");
        assert_ne!(sync_grant(&second).slot, grant.slot);
        // Another process gets the same object, and the arena with it.
        let opened = open(&mut broker, 2, ObjectType::Event, "ev").unwrap();
        assert!(opened.fd.is_some());
        assert_eq!(sync_grant(&opened).slot, grant.slot);
        // Same name, same type: the existing object, arguments ignored.
        let again = create_sync(&mut broker, 2, "ev", SyncInit::Mutex { owned: false }, 0);
        assert_eq!(again.unwrap_err().code, ERROR_INVALID_HANDLE);
        let again = create_sync(&mut broker, 2, "ev", event, 0).unwrap();
        assert!(sync_grant(&again).existed);
        // Sections and sync objects collide both ways.
        assert_eq!(
            create(&mut broker, 1, "ev", 4096).unwrap_err().code,
            ERROR_INVALID_HANDLE
        );
        create(&mut broker, 1, "sec", 4096).unwrap();
        assert_eq!(
            create_sync(&mut broker, 1, "sec", event, 0)
                .unwrap_err()
                .code,
            ERROR_INVALID_HANDLE
        );
        let bad = SyncInit::Semaphore {
            initial: 2,
            maximum: 1,
        };
        assert_eq!(
            create_sync(&mut broker, 1, "", bad, 0).unwrap_err().code,
            ERROR_INVALID_PARAMETER
        );
    }

    #[test]
    fn a_mutex_owner_must_be_a_thread_of_the_caller() {
        let mut broker = greeted_broker(&[1, 2]);
        let tag_of = |b: &Broker, id| b.clients[&id].tag;
        let other = Token::new(tag_of(&broker, 2), 0).unwrap().raw();
        let owned = SyncInit::Mutex { owned: true };
        assert_eq!(
            create_sync(&mut broker, 1, "m", owned, other)
                .unwrap_err()
                .code,
            ERROR_INVALID_PARAMETER
        );
        let mine = Token::new(tag_of(&broker, 1), 3).unwrap().raw();
        create_sync(&mut broker, 1, "m", owned, mine).unwrap();
        let entry = broker.entry(broker.names["\\Sessions\\1\\BaseNamedObjects\\m"]);
        assert!(
            entry
                .properties
                .contains(&("owner".to_owned(), "101/7".to_owned())),
            "{entry:?}"
        );
        // The owner dies: the mutex is abandoned for the next waiter.
        open(&mut broker, 2, ObjectType::Mutex, "m").unwrap();
        broker.remove_client(1);
        let entry = broker.entry(broker.names["\\Sessions\\1\\BaseNamedObjects\\m"]);
        assert!(
            entry
                .properties
                .contains(&("abandoned".to_owned(), "yes".to_owned())),
            "{entry:?}"
        );
    }

    #[test]
    fn destroyed_sync_objects_free_their_slots_and_tags_are_reused_late() {
        let mut broker = greeted_broker(&[1]);
        let init = SyncInit::Timer { manual_reset: true };
        let first = sync_grant(&create_sync(&mut broker, 1, "t", init, 0).unwrap());
        broker
            .handle(
                1,
                Request::Close {
                    handle: first.handle,
                },
                vec![],
            )
            .unwrap();
        assert!(broker.names.is_empty());
        let second = sync_grant(&create_sync(&mut broker, 1, "t", init, 0).unwrap());
        assert_eq!(second.slot, first.slot, "the freed slot is reused");
        let tag = broker.clients[&1].tag;
        broker.remove_client(1);
        broker.add_client(9, 9, 0, root_token()).unwrap();
        assert_ne!(
            broker.clients[&9].tag, tag,
            "a dead client's tag is not reused at once"
        );
    }

    #[test]
    fn duplicate_handle_within_a_process_honours_access_and_close_source() {
        use objmgr_proto::process::{DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS};
        use objmgr_proto::wire::CURRENT_PROCESS;
        let mut broker = greeted_broker(&[1]);
        let grant = create(&mut broker, 1, "d", 4096).unwrap();
        let dup = |broker: &mut Broker, source, access, options| {
            broker.handle(
                1,
                Request::Duplicate {
                    source_process: CURRENT_PROCESS,
                    source,
                    target_process: CURRENT_PROCESS,
                    access,
                    inherit: false,
                    options,
                },
                vec![],
            )
        };
        // Reduced access is granted.
        let read_only = match dup(
            &mut broker,
            grant.handle,
            objmgr_proto::access::SECTION_MAP_READ,
            0,
        )
        .unwrap()
        .reply
        {
            Reply::Value(v) => Handle(v),
            other => panic!("{other:?}"),
        };
        // More than the source has: only what the descriptor grants.
        let oid = broker.names["\\Sessions\\1\\BaseNamedObjects\\d"];
        Rc::make_mut(&mut broker.objects.get_mut(&oid).unwrap().security).dacl =
            security::Dacl::Aces(vec![security::Ace::allow(
                objmgr_proto::access::SECTION_MAP_READ,
                security::Sid::everyone(),
            )]);
        assert_eq!(
            dup(&mut broker, read_only, SECTION_MAP_WRITE, 0)
                .unwrap_err()
                .code,
            ERROR_ACCESS_DENIED
        );
        assert_eq!(broker.objects[&oid].handle_count, 2);
        // Close-source moves the handle: the count stays.
        dup(
            &mut broker,
            read_only,
            0,
            DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE,
        )
        .unwrap();
        assert_eq!(broker.objects[&oid].handle_count, 2);
        assert_eq!(
            dup(&mut broker, read_only, 0, DUPLICATE_SAME_ACCESS)
                .unwrap_err()
                .code,
            ERROR_INVALID_HANDLE
        );
        // A non-process handle as the target process.
        let failure = broker
            .handle(
                1,
                Request::Duplicate {
                    source_process: CURRENT_PROCESS,
                    source: grant.handle,
                    target_process: grant.handle,
                    access: 0,
                    inherit: false,
                    options: DUPLICATE_SAME_ACCESS,
                },
                vec![],
            )
            .unwrap_err();
        assert_eq!(failure.code, ERROR_INVALID_HANDLE);
    }

    #[test]
    fn bad_process_requests_are_errors_not_crashes() {
        let mut broker = greeted_broker(&[1]);
        let grant = create(&mut broker, 1, "", 4096).unwrap();
        let requests = [
            Request::Terminate {
                handle: grant.handle,
                exit_code: 1,
            },
            Request::Terminate {
                handle: Handle(400),
                exit_code: 1,
            },
            Request::OpenProcess {
                pid: 0,
                access: 0,
                inherit: false,
            },
            Request::OpenProcess {
                pid: i32::MAX as u32,
                access: 0,
                inherit: false,
            },
            Request::OpenProcess {
                pid: u32::MAX,
                access: 0,
                inherit: false,
            },
            Request::HandleFlags {
                handle: Handle(404),
                mask: 3,
                flags: 3,
            },
            Request::ListHandles { pid: 1, after: 0 },
            Request::Spawn {
                program: String::new(),
                args: vec![],
                env: vec![],
                cwd: String::new(),
                inherit_handles: true,
                stdio: 0,
                flags: 0,
            },
            Request::Spawn {
                program: "/nonexistent/program".into(),
                args: vec![],
                env: vec!["=bad".into(), "novalue".into()],
                cwd: String::new(),
                inherit_handles: false,
                stdio: 0,
                flags: 0,
            },
        ];
        for request in requests {
            let failure = broker.handle(1, request.clone(), vec![]).unwrap_err();
            assert!(!failure.disconnect, "{request:?}");
        }
        // A Spawn whose stdio mask promises fds it does not carry.
        let failure = broker
            .handle(
                1,
                Request::Spawn {
                    program: "/bin/true".into(),
                    args: vec![],
                    env: vec![],
                    cwd: String::new(),
                    inherit_handles: false,
                    stdio: 0b111,
                    flags: 0,
                },
                vec![],
            )
            .unwrap_err();
        assert!(failure.disconnect);
    }
}
