//! The broker's wire protocol: framing and message encoding (no I/O).
//!
//! See `docs/PROTOCOL.md` for the full description. In short: one
//! `SOCK_SEQPACKET` message per request and per reply, little-endian fields,
//! file descriptors attached with `SCM_RIGHTS`, and a `Hello` exchange that
//! pins the protocol version before anything else.

use crate::access::ObjectType;
use crate::section::FdReach;
use crate::sync::SyncInit;
use std::fmt;

/// The protocol version this build speaks. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 14;
/// The longest list of numbers a message carries (a wait's 64 objects).
pub const MAX_U32S: usize = 64;
/// The longest list of 64-bit numbers a message carries (a job's process
/// ids, and a little more).
pub const MAX_U64S: usize = crate::job::MAX_PROCESS_IDS + 16;
/// The largest message either side sends or accepts, in bytes.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// The most file descriptors one message may carry.
pub const MAX_FDS_PER_MESSAGE: usize = 3;
/// The longest string field, in bytes.
pub const MAX_STRING_LEN: usize = 4096;
/// The most objects one `ListObjects` reply carries.
pub const MAX_LIST_ENTRIES: u32 = 256;

/// A handle value, as the broker assigns it in one process's handle table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Handle(pub u32);

/// Why a message could not be decoded. The broker disconnects a client that
/// sends one; the client treats one as a broken broker connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    TrailingBytes,
    UnknownOpcode(u16),
    BadField(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("message truncated"),
            WireError::TrailingBytes => f.write_str("trailing bytes after message"),
            WireError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            WireError::BadField(what) => write!(f, "invalid field: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Appends little-endian fields to a message buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            buf: Vec::with_capacity(128),
        }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u16` count, then that many strings.
    /// A list of at most [`MAX_U32S`] numbers (more are cut off: no
    /// request needs them).
    pub fn u32s(&mut self, v: &[u32]) -> &mut Self {
        let v = &v[..v.len().min(MAX_U32S)];
        self.u8(v.len() as u8);
        for &x in v {
            self.u32(x);
        }
        self
    }

    /// A list of at most [`MAX_U64S`] numbers (more are cut off).
    pub fn u64s(&mut self, v: &[u64]) -> &mut Self {
        let v = &v[..v.len().min(MAX_U64S)];
        self.u16(v.len() as u16);
        for &x in v {
            self.u64(x);
        }
        self
    }

    pub fn strs(&mut self, v: &[String]) -> &mut Self {
        self.u16(v.len().min(u16::MAX as usize) as u16);
        for s in v.iter().take(u16::MAX as usize) {
            self.str(s);
        }
        self
    }

    /// A string: `u16` byte length, then UTF-8 bytes (cut at `MAX_STRING_LEN`
    /// on a character boundary, so a sender never builds an undecodable message).
    pub fn str(&mut self, v: &str) -> &mut Self {
        let mut end = v.len().min(MAX_STRING_LEN);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.buf.extend_from_slice(&v.as_bytes()[..end]);
        self
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian fields from a received message.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadField("bool")),
        }
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>, WireError> {
        let n = self.u8()? as usize;
        if n > MAX_U32S {
            return Err(WireError::BadField("list length"));
        }
        (0..n).map(|_| self.u32()).collect()
    }

    pub fn u64s(&mut self) -> Result<Vec<u64>, WireError> {
        let n = self.u16()? as usize;
        if n > MAX_U64S {
            return Err(WireError::BadField("list length"));
        }
        (0..n).map(|_| self.u64()).collect()
    }

    pub fn strs(&mut self) -> Result<Vec<String>, WireError> {
        let n = self.u16()?;
        // Each string takes at least its 2-byte length: bound the allocation
        // by what the message can hold.
        let mut v = Vec::with_capacity(usize::from(n).min(MAX_MESSAGE_SIZE / 2));
        for _ in 0..n {
            v.push(self.str()?);
        }
        Ok(v)
    }

    pub fn str(&mut self) -> Result<String, WireError> {
        let len = self.u16()? as usize;
        if len > MAX_STRING_LEN {
            return Err(WireError::BadField("string length"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::BadField("string encoding"))
    }
    pub fn object_type(&mut self) -> Result<ObjectType, WireError> {
        ObjectType::from_code(self.u8()?).ok_or(WireError::BadField("object type"))
    }
    /// Fails unless every byte was consumed.
    pub fn end(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }
}

/// Request opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Opcode {
    Hello = 1,
    CreateSection = 2,
    Open = 3,
    Close = 4,
    QueryHandle = 5,
    ListObjects = 6,
    StatObject = 7,
    Status = 8,
    Shutdown = 9,
    CreateSync = 10,
    Spawn = 11,
    OpenProcess = 12,
    Terminate = 13,
    Duplicate = 14,
    HandleFlags = 15,
    CreateThread = 16,
    ListProcesses = 17,
    ListHandles = 18,
    CloseNoReply = 19,
    Security = 20,
    Namespace = 21,
    SyncRemote = 22,
    CreateJob = 23,
    JobControl = 24,
    OpenFile = 25,
    FileControl = 26,
    ListFiles = 27,
    Reclaim = 28,
    CloseRing = 29,
    Doorbell = 30,
}

impl Opcode {
    pub const ALL: [Opcode; 30] = [
        Opcode::Hello,
        Opcode::CreateSection,
        Opcode::Open,
        Opcode::Close,
        Opcode::QueryHandle,
        Opcode::ListObjects,
        Opcode::StatObject,
        Opcode::Status,
        Opcode::Shutdown,
        Opcode::CreateSync,
        Opcode::Spawn,
        Opcode::OpenProcess,
        Opcode::Terminate,
        Opcode::Duplicate,
        Opcode::HandleFlags,
        Opcode::CreateThread,
        Opcode::ListProcesses,
        Opcode::ListHandles,
        Opcode::CloseNoReply,
        Opcode::Security,
        Opcode::Namespace,
        Opcode::SyncRemote,
        Opcode::CreateJob,
        Opcode::JobControl,
        Opcode::OpenFile,
        Opcode::FileControl,
        Opcode::ListFiles,
        Opcode::Reclaim,
        Opcode::CloseRing,
        Opcode::Doorbell,
    ];

    pub fn from_code(code: u16) -> Option<Opcode> {
        Self::ALL.into_iter().find(|op| *op as u16 == code)
    }

    /// A stable name, used for the broker's request counters.
    pub const fn name(self) -> &'static str {
        match self {
            Opcode::Hello => "hello",
            Opcode::CreateSection => "create_section",
            Opcode::Open => "open",
            Opcode::Close => "close",
            Opcode::QueryHandle => "query_handle",
            Opcode::ListObjects => "list_objects",
            Opcode::StatObject => "stat_object",
            Opcode::Status => "status",
            Opcode::Shutdown => "shutdown",
            Opcode::CreateSync => "create_sync",
            Opcode::Spawn => "spawn",
            Opcode::OpenProcess => "open_process",
            Opcode::Terminate => "terminate",
            Opcode::Duplicate => "duplicate",
            Opcode::HandleFlags => "handle_flags",
            Opcode::CreateThread => "create_thread",
            Opcode::ListProcesses => "list_processes",
            Opcode::ListHandles => "list_handles",
            Opcode::CloseNoReply => "close_no_reply",
            Opcode::Security => "security",
            Opcode::Namespace => "namespace",
            Opcode::SyncRemote => "sync_remote",
            Opcode::CreateJob => "create_job",
            Opcode::JobControl => "job_control",
            Opcode::OpenFile => "open_file",
            Opcode::FileControl => "file_control",
            Opcode::ListFiles => "list_files",
            Opcode::Reclaim => "reclaim",
            Opcode::CloseRing => "close_ring",
            Opcode::Doorbell => "doorbell",
        }
    }
}

/// A request from a client to the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// First message on every connection.
    Hello { version: u32 },
    /// `CreateFileMapping`. With `from_file`, the message carries the file's
    /// fd and the same file opened read-only. `security`: the descriptor
    /// asked for, as SDDL (empty: the creator's default).
    CreateSection {
        name: String,
        protection: u32,
        size: u64,
        inherit: bool,
        from_file: bool,
        security: String,
    },
    /// `Open*` by name, for any type.
    Open {
        object_type: ObjectType,
        name: String,
        access: u32,
        inherit: bool,
        /// A section handle of the caller's that may name the same section,
        /// whose descriptor the caller keeps: if it does name it, and that
        /// descriptor is enough for `access`, the reply carries none (the
        /// caller uses the one it has).
        known_fd: Option<KnownFd>,
    },
    /// `CloseHandle`.
    Close { handle: Handle },
    /// `CloseHandle` of a handle the client knows is open and not protected
    /// from close: the broker sends no reply (and ignores a failure). The
    /// broker reads every such close already sent before it serves any other
    /// request, so a close is in effect for everyone once it has been sent.
    CloseNoReply { handle: Handle },
    /// Section facts and fd for a handle the client has no cache entry for.
    QueryHandle { handle: Handle },
    /// Named objects whose path sorts after `after`, at most `limit` of them.
    ListObjects { after: String, limit: u32 },
    /// One named object, by the name a user would give (`Global\x`, `x`) or by path.
    StatObject { name: String },
    /// Broker facts and counters.
    Status,
    /// Ask the broker to exit now.
    Shutdown,
    /// `CreateEvent`, `CreateMutex`, `CreateSemaphore`, `CreateWaitableTimer`
    /// (and their `Ex` forms). `owner` is the creating thread's token and tid,
    /// the initial owner of a mutex created owned.
    CreateSync {
        name: String,
        init: SyncInit,
        access: u32,
        inherit: bool,
        owner_token: u32,
        owner_tid: u32,
        /// The descriptor asked for, as SDDL (empty: the creator's default).
        security: String,
    },
    /// `CreateProcess`: the broker starts the program as its own child (so it
    /// can report the exit code). `stdio` bit `i` set: fd `i` (stdin, stdout,
    /// stderr, in order) is attached; unset: `/dev/null`.
    Spawn {
        program: String,
        args: Vec<String>,
        env: Vec<String>,
        cwd: String,
        inherit_handles: bool,
        stdio: u8,
        /// `CreateProcess` flags the broker acts on
        /// (`CREATE_BREAKAWAY_FROM_JOB`).
        flags: u32,
    },
    /// `OpenProcess`.
    OpenProcess {
        pid: u32,
        access: u32,
        inherit: bool,
    },
    /// `TerminateProcess`.
    Terminate { handle: Handle, exit_code: u32 },
    /// `DuplicateHandle`. Process handles may be [`CURRENT_PROCESS`].
    Duplicate {
        source_process: Handle,
        source: Handle,
        target_process: Handle,
        access: u32,
        inherit: bool,
        options: u32,
    },
    /// `GetHandleInformation` (`mask` 0) / `SetHandleInformation`.
    HandleFlags {
        handle: Handle,
        mask: u32,
        flags: u32,
    },
    /// A thread object for a thread the client is about to start.
    CreateThread { inherit: bool },
    /// Connected processes with a pid above `after`, for `objmgr ps`; as
    /// many as fit one reply (ask again after the last one; none left: empty).
    ListProcesses { after: u32 },
    /// One process's handles with values above `after`, as many as fit.
    ListHandles { pid: u32, after: u32 },
    /// Private namespaces: `CreatePrivateNamespace` (`op` 0),
    /// `OpenPrivateNamespace` (1) with a boundary (name and SIDs, as
    /// strings) and the alias this process will name objects in it by;
    /// `ClosePrivateNamespace` (2) of namespace `id` (`destroy`:
    /// `PRIVATE_NAMESPACE_FLAG_DESTROY`). Reply: `Value`, the namespace id.
    Namespace {
        op: u8,
        boundary: String,
        sids: Vec<String>,
        alias: String,
        sddl: String,
        id: u32,
        destroy: bool,
    },
    /// `GetKernelObjectSecurity` (`set` false) or `SetKernelObjectSecurity`
    /// (`set` true) on a handle: the parts in `which`
    /// (`*_SECURITY_INFORMATION`), as SDDL. The reply is the descriptor's
    /// parts in `which` as they are (after the change), as [`Reply::Text`].
    Security {
        handle: Handle,
        set: bool,
        which: u32,
        sddl: String,
    },
    /// An operation on synchronization objects the client maps read-only
    /// (state in another user's domain): the broker does it for the calling
    /// thread, as far as the handles' rights allow.
    SyncRemote {
        op: RemoteOp,
        /// The calling thread's token (its process's tag and its number;
        /// refused unless the tag is the connection's) and its tid (shown
        /// as a mutex owner).
        token: u32,
        tid: u32,
        /// A wait attempt: count the thread as a waiter on the objects
        /// before the attempt, and for as long as it takes nothing (until
        /// [`RemoteOp::WaitEnd`]). A first attempt, or a poll, does not.
        register: bool,
        /// The objects: one for a signal, 1 to 64 for a wait attempt, none
        /// for [`RemoteOp::WaitEnd`] and [`RemoteOp::AbandonThread`].
        handles: Vec<Handle>,
        /// `ReleaseSemaphore`: the count. (A wait attempt sends none: the
        /// broker keeps the values the thread sleeps on, against which
        /// pulses count.)
        values: Vec<u32>,
        /// `SetTimer`: the due time (monotonic ns) and period (ns).
        due: u64,
        period: u64,
    },
    /// `CreateJobObject`. Reply: a sync grant (a job is waitable).
    CreateJob {
        name: String,
        access: u32,
        inherit: bool,
        /// The descriptor asked for, as SDDL (empty: the creator's default).
        security: String,
    },
    /// An operation on the job behind `job`: see [`JobOp`]. Reply:
    /// [`Reply::Numbers`].
    JobControl {
        op: JobOp,
        job: Handle,
        /// A process handle (`Assign`, `Contains`; [`CURRENT_PROCESS`]
        /// allowed).
        process: Handle,
        /// `Terminate`: the exit code; `SetLimits`: the information class
        /// and then the limits ([`crate::job::JobLimits::to_values`]);
        /// `SetEndOfJob`: the action.
        values: Vec<u64>,
    },
    /// `CreateFile`: the client opened the file itself (with its own
    /// rights) and attaches the fd; the broker checks the share modes of
    /// every open of that file (device and inode) and keeps the fd, so
    /// that the handle can be inherited and duplicated. Reply: a file grant.
    OpenFile {
        /// Specific rights (`FILE_READ_DATA`, ..., `DELETE`).
        access: u32,
        share: u32,
        inherit: bool,
        /// `FILE_FLAG_DELETE_ON_CLOSE`: the request also carries an `O_PATH`
        /// fd of the file's directory, and `name` is the file's name in it.
        delete_on_close: bool,
        name: String,
    },
    /// The files open through objmgr (the caller's own; root: all), for
    /// `objmgr ls --files`: as many as fit one reply. Reply: `Objects`.
    ListFiles,
    /// One step of a process taking its handles back from a broker that
    /// died (see [`ReclaimStep`]). Reply: `Done`.
    Reclaim { step: ReclaimStep },
    /// The process's close ring for this session (see
    /// `objmgr_sync::close_ring`): closes that free nothing are left there
    /// instead of sent. Reply: `Done`, with the ring's memory file; one per
    /// connection (`ERROR_ALREADY_EXISTS` if asked again).
    CloseRing,
    /// The connection's doorbell: an `eventfd` the broker watches, which
    /// the process rings after it put a request in its page (the close
    /// ring's second page) instead of sending it; the answer comes in the
    /// third page (see `objmgr_sync::close_ring`). Reply: `Done`, with the
    /// `eventfd`; one per connection, after its close ring
    /// (`ERROR_ALREADY_EXISTS` if asked again, `ERROR_INVALID_FUNCTION`
    /// without a ring).
    Doorbell,
    /// A check or change of an open file: see [`FileOp`]. Reply: `Done`.
    FileControl {
        op: FileOp,
        handle: Handle,
        value: u64,
        /// `MayDelete`: the file's name in the directory whose `O_PATH` fd
        /// comes second.
        name: String,
    },
}

/// What one [`Request::Reclaim`] re-announces to the broker that replaced
/// a dead one: `Begin`, then every `Arena` and handle, then `End` (see
/// `docs/PROTOCOL.md`, section 9). Refused unless the broker is recovering
/// and the lost broker's journal names the calling process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReclaimStep {
    /// The tag the process had with the lost broker: its threads' mutex
    /// ownerships carry it, so it keeps it.
    Begin { tag: u16 },
    /// A sync arena that following `Sync` steps name by `id`; its fd is
    /// attached.
    Arena { id: u64, slots: u32 },
    /// A paging-file-backed section handle; the section's fd is attached.
    Section {
        held: HeldHandle,
        protection: u32,
        attributes: u32,
        size: u64,
    },
    /// A mutex, event, semaphore, timer or (of a thread the process
    /// started) thread handle: slot `slot` of arena `arena`.
    Sync {
        held: HeldHandle,
        arena: u64,
        slot: u32,
    },
    /// A file handle (`CreateFile` on a regular file or a pipe end); the fd
    /// of its open (the open file description the open was made with) is
    /// attached. Handles of one open (copies the process made of its own
    /// handle) name the same `open`, a number the process chooses, and
    /// give the open's own access and share mode.
    File {
        held: HeldHandle,
        open: u32,
        open_access: u32,
        share: u32,
    },
    /// A handle to a section over a file (`CreateFileMapping` with a file
    /// handle); the fd the process maps it by is attached. Handles of one
    /// section name the same `section`, a number the process chooses
    /// (a named section is also known by its name).
    FileSection {
        held: HeldHandle,
        section: u32,
        protection: u32,
        attributes: u32,
        size: u64,
    },
    /// Every handle is announced: the process is back.
    End,
    /// The process had `tag` but takes nothing back (it holds something no
    /// broker can take back, and its session ended): the broker need not
    /// wait for it, and abandons what its threads owned.
    Leave { tag: u16 },
}

/// A handle as a process takes it back (see [`ReclaimStep`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldHandle {
    pub handle: Handle,
    pub access: u32,
    /// `HANDLE_FLAG_INHERIT`, `HANDLE_FLAG_PROTECT_FROM_CLOSE`.
    pub flags: u32,
    /// The name it was created or opened by (empty: none).
    pub name: String,
}

impl HeldHandle {
    fn encode(&self, e: &mut Encoder) {
        e.u32(self.handle.0)
            .u32(self.access)
            .u32(self.flags)
            .str(&self.name);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<HeldHandle, WireError> {
        Ok(HeldHandle {
            handle: Handle(d.u32()?),
            access: d.u32()?,
            flags: d.u32()?,
            name: d.str()?,
        })
    }
}

impl ReclaimStep {
    /// How many descriptors the step's message carries.
    pub fn fds(&self) -> usize {
        match self {
            ReclaimStep::Arena { .. } | ReclaimStep::Section { .. } | ReclaimStep::File { .. } => 1,
            // The fd it maps by, and the file opened read-only.
            ReclaimStep::FileSection { .. } => 2,
            _ => 0,
        }
    }
}

fn encode_reclaim(e: &mut Encoder, step: &ReclaimStep) {
    match step {
        ReclaimStep::Begin { tag } => {
            e.u8(0).u16(*tag);
        }
        ReclaimStep::Arena { id, slots } => {
            e.u8(1).u64(*id).u32(*slots);
        }
        ReclaimStep::Section {
            held,
            protection,
            attributes,
            size,
        } => {
            e.u8(2);
            held.encode(e);
            e.u32(*protection).u32(*attributes).u64(*size);
        }
        ReclaimStep::Sync { held, arena, slot } => {
            e.u8(3);
            held.encode(e);
            e.u64(*arena).u32(*slot);
        }
        ReclaimStep::End => {
            e.u8(4);
        }
        ReclaimStep::Leave { tag } => {
            e.u8(5).u16(*tag);
        }
        ReclaimStep::File {
            held,
            open,
            open_access,
            share,
        } => {
            e.u8(6);
            held.encode(e);
            e.u32(*open).u32(*open_access).u32(*share);
        }
        ReclaimStep::FileSection {
            held,
            section,
            protection,
            attributes,
            size,
        } => {
            e.u8(7);
            held.encode(e);
            e.u32(*section).u32(*protection).u32(*attributes).u64(*size);
        }
    }
}

fn decode_reclaim(d: &mut Decoder<'_>) -> Result<ReclaimStep, WireError> {
    Ok(match d.u8()? {
        0 => ReclaimStep::Begin { tag: d.u16()? },
        1 => ReclaimStep::Arena {
            id: d.u64()?,
            slots: d.u32()?,
        },
        2 => ReclaimStep::Section {
            held: HeldHandle::decode(d)?,
            protection: d.u32()?,
            attributes: d.u32()?,
            size: d.u64()?,
        },
        3 => ReclaimStep::Sync {
            held: HeldHandle::decode(d)?,
            arena: d.u64()?,
            slot: d.u32()?,
        },
        4 => ReclaimStep::End,
        5 => ReclaimStep::Leave { tag: d.u16()? },
        6 => ReclaimStep::File {
            held: HeldHandle::decode(d)?,
            open: d.u32()?,
            open_access: d.u32()?,
            share: d.u32()?,
        },
        7 => ReclaimStep::FileSection {
            held: HeldHandle::decode(d)?,
            section: d.u32()?,
            protection: d.u32()?,
            attributes: d.u32()?,
            size: d.u64()?,
        },
        _ => return Err(WireError::BadField("reclaim step")),
    })
}

/// What [`Request::FileControl`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileOp {
    /// `SetEndOfFile` to length `value`: refused with
    /// `ERROR_USER_MAPPED_FILE` while a section maps the file past it.
    MayTruncate = 1,
    /// `DeleteFile`: the request carries `O_PATH` fds of the file and of
    /// its directory; refused with `ERROR_SHARING_VIOLATION` while an open
    /// does not share deleting. Reply `Value`: 0, the caller removes the
    /// name now (nothing has the file open); 1, the delete is pending: the
    /// broker removes the name when the last open closes, and refuses new
    /// opens meanwhile (`ERROR_ACCESS_DENIED`). (`handle` is 0.)
    MayDelete = 2,
    /// Whether the removal of a name whose ticket (`value`) a `Close`
    /// answered is done: the broker removes names off its own thread, and
    /// the closing process waits for this before its `CloseHandle` returns.
    /// Reply `Value`: 1 done (or unknown), 0 not yet. (`handle` is 0.)
    RemovalDone = 3,
}

impl FileOp {
    const ALL: [FileOp; 3] = [FileOp::MayTruncate, FileOp::MayDelete, FileOp::RemovalDone];

    pub fn from_code(code: u8) -> Option<FileOp> {
        Self::ALL.into_iter().find(|op| *op as u8 == code)
    }
}

/// A new handle to an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileGrant {
    pub handle: Handle,
    pub access: u32,
    pub share: u32,
}

/// What [`Request::JobControl`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum JobOp {
    /// `AssignProcessToJobObject`.
    Assign = 1,
    /// `TerminateJobObject`.
    Terminate = 2,
    /// `SetInformationJobObject` with a limit class.
    SetLimits = 3,
    /// The limits (reply: `JobLimits` values).
    QueryLimits = 4,
    /// The accounting (reply: `JobAccounting` values).
    QueryAccounting = 5,
    /// The member processes (reply: assigned count, then pids).
    QueryProcessIds = 6,
    /// `IsProcessInJob` (`job` 0: any job). Reply: 1 or 0.
    Contains = 7,
    /// `JobObjectEndOfJobTimeInformation`.
    SetEndOfJob = 8,
}

impl JobOp {
    const ALL: [JobOp; 8] = [
        JobOp::Assign,
        JobOp::Terminate,
        JobOp::SetLimits,
        JobOp::QueryLimits,
        JobOp::QueryAccounting,
        JobOp::QueryProcessIds,
        JobOp::Contains,
        JobOp::SetEndOfJob,
    ];

    pub fn from_code(code: u8) -> Option<JobOp> {
        Self::ALL.into_iter().find(|op| *op as u8 == code)
    }
}

/// What [`Request::SyncRemote`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RemoteOp {
    /// One attempt of `WaitForMultipleObjects` (any).
    WaitAny = 1,
    /// One attempt of a wait-all, likewise.
    WaitAll = 2,
    /// The thread's wait is over: no longer count it as a waiter.
    WaitEnd = 3,
    SetEvent = 4,
    ResetEvent = 5,
    PulseEvent = 6,
    ReleaseSemaphore = 7,
    ReleaseMutex = 8,
    SetTimer = 9,
    CancelTimer = 10,
    /// The thread exits: abandon the mutexes it owns.
    AbandonThread = 11,
}

impl RemoteOp {
    const ALL: [RemoteOp; 11] = [
        RemoteOp::WaitAny,
        RemoteOp::WaitAll,
        RemoteOp::WaitEnd,
        RemoteOp::SetEvent,
        RemoteOp::ResetEvent,
        RemoteOp::PulseEvent,
        RemoteOp::ReleaseSemaphore,
        RemoteOp::ReleaseMutex,
        RemoteOp::SetTimer,
        RemoteOp::CancelTimer,
        RemoteOp::AbandonThread,
    ];

    pub fn from_code(code: u8) -> Option<RemoteOp> {
        Self::ALL.into_iter().find(|op| *op as u8 == code)
    }
}

/// The result of [`Request::SyncRemote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteReply {
    pub outcome: RemoteOutcome,
    /// `ReleaseSemaphore`: the previous count; `ReleaseMutex`: 1 when the
    /// thread no longer owns the mutex.
    pub value: u32,
    /// A wait that took objects: which are mutexes the thread newly owns.
    pub new_owner_mask: u64,
    /// A wait attempt that took nothing: the values it decided on (sleep
    /// on exactly these), one per handle.
    pub observed: Vec<u32>,
}

impl RemoteReply {
    /// The reply as the broker leaves it in a connection's page for a
    /// process whose broker died before it answered (see
    /// `objmgr_sync::close_ring::Progress`): outcome, index, value, the
    /// owner mask (low word first), and 1 (a result is there).
    pub fn to_words(&self) -> [u32; 6] {
        let (outcome, index) = self.outcome.code();
        let mask = self.new_owner_mask;
        [
            u32::from(outcome),
            index,
            self.value,
            mask as u32,
            (mask >> 32) as u32,
            1,
        ]
    }

    /// The reply [`RemoteReply::to_words`] left, if any (without the
    /// values a wait that took nothing decided on).
    pub fn from_words(words: [u32; 6]) -> Option<RemoteReply> {
        let [outcome, index, value, low, high, present] = words;
        if present != 1 {
            return None;
        }
        let outcome = RemoteOutcome::from_code(u8::try_from(outcome).ok()?, index)?;
        Some(RemoteReply {
            outcome,
            value,
            new_owner_mask: u64::from(low) | (u64::from(high) << 32),
            observed: Vec::new(),
        })
    }
}

impl RemoteOutcome {
    /// The wire code, and the object's index.
    fn code(self) -> (u8, u32) {
        match self {
            RemoteOutcome::Done => (0, 0),
            RemoteOutcome::NotYet => (1, 0),
            RemoteOutcome::Busy => (2, 0),
            RemoteOutcome::Object(n) => (3, n),
            RemoteOutcome::Abandoned(n) => (4, n),
        }
    }

    fn from_code(code: u8, index: u32) -> Option<RemoteOutcome> {
        Some(match code {
            0 => RemoteOutcome::Done,
            1 => RemoteOutcome::NotYet,
            2 => RemoteOutcome::Busy,
            3 => RemoteOutcome::Object(index),
            4 => RemoteOutcome::Abandoned(index),
            _ => return None,
        })
    }
}

/// How a [`Request::SyncRemote`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// A signal done; or nothing to report.
    Done,
    /// A wait attempt found nothing to take (the thread is registered).
    NotYet,
    /// Another thread holds a slot lock (a wait-all checking it, or a
    /// stopped process): nothing done; try again shortly.
    Busy,
    /// The wait took object `n` (wait-all: all of them; `n` = 0).
    Object(u32),
    /// The wait took abandoned mutex `n`.
    Abandoned(u32),
}

/// `GetCurrentProcess()`: `(HANDLE)-1`.
pub const CURRENT_PROCESS: Handle = Handle(u32::MAX);
/// `GetCurrentThread()`: `(HANDLE)-2`.
pub const CURRENT_THREAD: Handle = Handle(u32::MAX - 1);

impl Request {
    /// Whether the request means the same to every broker session: it names
    /// no handle, thread token or other state of the connection it is sent
    /// on, and does nothing outside the broker. Such a request may be sent
    /// again on a new connection when the broker died before it answered
    /// (its effects died with that broker, so none can happen twice; a
    /// `Spawn` would start a second process, and is not one of them).
    pub fn independent_of_session(&self) -> bool {
        match self {
            Request::CreateSection { .. }
            | Request::Open { .. }
            | Request::ListObjects { .. }
            | Request::StatObject { .. }
            | Request::Status
            | Request::CreateJob { .. }
            | Request::OpenFile { .. }
            | Request::ListFiles
            | Request::OpenProcess { .. }
            | Request::ListProcesses { .. } => true,
            // An initial owner is a thread token of this session.
            Request::CreateSync { owner_token, .. } => *owner_token == 0,
            _ => false,
        }
    }

    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Hello { .. } => Opcode::Hello,
            Request::CreateSection { .. } => Opcode::CreateSection,
            Request::Open { .. } => Opcode::Open,
            Request::Close { .. } => Opcode::Close,
            Request::CloseNoReply { .. } => Opcode::CloseNoReply,
            Request::QueryHandle { .. } => Opcode::QueryHandle,
            Request::ListObjects { .. } => Opcode::ListObjects,
            Request::StatObject { .. } => Opcode::StatObject,
            Request::Status => Opcode::Status,
            Request::Shutdown => Opcode::Shutdown,
            Request::CreateSync { .. } => Opcode::CreateSync,
            Request::Spawn { .. } => Opcode::Spawn,
            Request::OpenProcess { .. } => Opcode::OpenProcess,
            Request::Terminate { .. } => Opcode::Terminate,
            Request::Duplicate { .. } => Opcode::Duplicate,
            Request::HandleFlags { .. } => Opcode::HandleFlags,
            Request::CreateThread { .. } => Opcode::CreateThread,
            Request::ListProcesses { .. } => Opcode::ListProcesses,
            Request::ListHandles { .. } => Opcode::ListHandles,
            Request::Security { .. } => Opcode::Security,
            Request::Namespace { .. } => Opcode::Namespace,
            Request::SyncRemote { .. } => Opcode::SyncRemote,
            Request::CreateJob { .. } => Opcode::CreateJob,
            Request::JobControl { .. } => Opcode::JobControl,
            Request::OpenFile { .. } => Opcode::OpenFile,
            Request::FileControl { .. } => Opcode::FileControl,
            Request::ListFiles => Opcode::ListFiles,
            Request::Reclaim { .. } => Opcode::Reclaim,
            Request::CloseRing => Opcode::CloseRing,
            Request::Doorbell => Opcode::Doorbell,
        }
    }

    /// Whether the request may be sent again to a broker that took the
    /// session over from one that died before it answered: it acts only
    /// inside the broker on state the session brought back (or on none),
    /// so what the dead broker may have done of it died with it. Not:
    /// anything that acts on processes or other processes' handles, files
    /// or jobs (no session holding those is taken over), closes (handled
    /// where they are sent), and the session's own framing.
    /// (Every request is named: a new one must be decided on.)
    pub fn repeatable_after_rejoin(&self) -> bool {
        match self {
            Request::CreateSection { .. }
            | Request::CreateSync { .. }
            | Request::CreateThread { .. }
            | Request::CreateJob { .. }
            | Request::Open { .. }
            | Request::OpenFile { .. }
            | Request::OpenProcess { .. }
            | Request::QueryHandle { .. }
            | Request::HandleFlags { .. }
            | Request::Security { .. }
            | Request::Namespace { .. }
            | Request::ListObjects { .. }
            | Request::ListHandles { .. }
            | Request::ListFiles
            | Request::ListProcesses { .. }
            | Request::StatObject { .. }
            | Request::Status => true,
            Request::Hello { .. }
            | Request::Reclaim { .. }
            | Request::Close { .. }
            | Request::CloseNoReply { .. }
            | Request::Shutdown
            | Request::Spawn { .. }
            | Request::Terminate { .. }
            | Request::Duplicate { .. }
            | Request::SyncRemote { .. }
            | Request::JobControl { .. }
            | Request::FileControl { .. }
            | Request::CloseRing
            | Request::Doorbell => false,
        }
    }

    /// Whether the broker answers this request (every request but
    /// [`Request::CloseNoReply`]).
    pub fn expects_reply(&self) -> bool {
        !matches!(self, Request::CloseNoReply { .. })
    }

    /// Encodes with the frame header (`opcode: u16, flags: u16, seq: u32`).
    pub fn encode(&self, seq: u32) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u16(self.opcode() as u16).u16(0).u32(seq);
        match self {
            Request::Hello { version } => {
                e.u32(*version);
            }
            Request::CreateSection {
                name,
                protection,
                size,
                inherit,
                from_file,
                security,
            } => {
                e.str(name)
                    .u32(*protection)
                    .u64(*size)
                    .bool(*inherit)
                    .bool(*from_file)
                    .str(security);
            }
            Request::Open {
                object_type,
                name,
                access,
                inherit,
                known_fd,
            } => {
                let known = known_fd.unwrap_or(KnownFd {
                    handle: Handle(0),
                    reach: FdReach::Query,
                    object: 0,
                });
                debug_assert!(known_fd.is_none() || known.handle.0 != 0, "no handle is 0");
                e.u8(object_type.code())
                    .str(name)
                    .u32(*access)
                    .bool(*inherit)
                    .u32(known.handle.0)
                    .u8(known.reach.code())
                    .u64(known.object);
            }
            Request::Close { handle }
            | Request::CloseNoReply { handle }
            | Request::QueryHandle { handle } => {
                e.u32(handle.0);
            }
            Request::ListObjects { after, limit } => {
                e.str(after).u32(*limit);
            }
            Request::StatObject { name } => {
                e.str(name);
            }
            Request::Status
            | Request::Shutdown
            | Request::ListFiles
            | Request::CloseRing
            | Request::Doorbell => {}
            Request::CreateSync {
                name,
                init,
                access,
                inherit,
                owner_token,
                owner_tid,
                security,
            } => {
                e.str(name);
                encode_init(&mut e, *init);
                e.u32(*access)
                    .bool(*inherit)
                    .u32(*owner_token)
                    .u32(*owner_tid)
                    .str(security);
            }
            Request::Spawn {
                program,
                args,
                env,
                cwd,
                inherit_handles,
                stdio,
                flags,
            } => {
                e.str(program).strs(args).strs(env).str(cwd);
                e.bool(*inherit_handles).u8(*stdio).u32(*flags);
            }
            Request::OpenProcess {
                pid,
                access,
                inherit,
            } => {
                e.u32(*pid).u32(*access).bool(*inherit);
            }
            Request::Terminate { handle, exit_code } => {
                e.u32(handle.0).u32(*exit_code);
            }
            Request::Duplicate {
                source_process,
                source,
                target_process,
                access,
                inherit,
                options,
            } => {
                e.u32(source_process.0)
                    .u32(source.0)
                    .u32(target_process.0)
                    .u32(*access)
                    .bool(*inherit)
                    .u32(*options);
            }
            Request::HandleFlags {
                handle,
                mask,
                flags,
            } => {
                e.u32(handle.0).u32(*mask).u32(*flags);
            }
            Request::CreateThread { inherit } => {
                e.bool(*inherit);
            }
            Request::ListProcesses { after } => {
                e.u32(*after);
            }
            Request::Security {
                handle,
                set,
                which,
                sddl,
            } => {
                e.u32(handle.0).bool(*set).u32(*which).str(sddl);
            }
            Request::Namespace {
                op,
                boundary,
                sids,
                alias,
                sddl,
                id,
                destroy,
            } => {
                e.u8(*op)
                    .str(boundary)
                    .strs(sids)
                    .str(alias)
                    .str(sddl)
                    .u32(*id)
                    .bool(*destroy);
            }
            Request::ListHandles { pid, after } => {
                e.u32(*pid).u32(*after);
            }
            Request::SyncRemote {
                op,
                token,
                tid,
                register,
                handles,
                values,
                due,
                period,
            } => {
                e.u8(*op as u8).u32(*token).u32(*tid).bool(*register);
                e.u32s(&handles.iter().map(|h| h.0).collect::<Vec<_>>())
                    .u32s(values)
                    .u64(*due)
                    .u64(*period);
            }
            Request::CreateJob {
                name,
                access,
                inherit,
                security,
            } => {
                e.str(name).u32(*access).bool(*inherit).str(security);
            }
            Request::JobControl {
                op,
                job,
                process,
                values,
            } => {
                e.u8(*op as u8).u32(job.0).u32(process.0).u64s(values);
            }
            Request::OpenFile {
                access,
                share,
                inherit,
                delete_on_close,
                name,
            } => {
                e.u32(*access)
                    .u32(*share)
                    .bool(*inherit)
                    .bool(*delete_on_close)
                    .str(name);
            }
            Request::FileControl {
                op,
                handle,
                value,
                name,
            } => {
                e.u8(*op as u8).u32(handle.0).u64(*value).str(name);
            }
            Request::Reclaim { step } => encode_reclaim(&mut e, step),
        }
        e.finish()
    }

    /// Decodes a request; returns it with its sequence number.
    pub fn decode(buf: &[u8]) -> Result<(u32, Request), WireError> {
        let mut d = Decoder::new(buf);
        let code = d.u16()?;
        let _flags = d.u16()?;
        let seq = d.u32()?;
        let op = Opcode::from_code(code).ok_or(WireError::UnknownOpcode(code))?;
        let request = match op {
            Opcode::Hello => Request::Hello { version: d.u32()? },
            Opcode::CreateSection => Request::CreateSection {
                name: d.str()?,
                protection: d.u32()?,
                size: d.u64()?,
                inherit: d.bool()?,
                from_file: d.bool()?,
                security: d.str()?,
            },
            Opcode::Open => Request::Open {
                object_type: d.object_type()?,
                name: d.str()?,
                access: d.u32()?,
                inherit: d.bool()?,
                known_fd: match (d.u32()?, d.u8()?, d.u64()?) {
                    (0, 0, 0) => None,
                    (0, ..) => return Err(WireError::BadField("known descriptor")),
                    (handle, reach, object) => Some(KnownFd {
                        handle: Handle(handle),
                        reach: FdReach::from_code(reach)
                            .ok_or(WireError::BadField("descriptor reach"))?,
                        object,
                    }),
                },
            },
            Opcode::Close => Request::Close {
                handle: Handle(d.u32()?),
            },
            Opcode::CloseNoReply => Request::CloseNoReply {
                handle: Handle(d.u32()?),
            },
            Opcode::QueryHandle => Request::QueryHandle {
                handle: Handle(d.u32()?),
            },
            Opcode::ListObjects => Request::ListObjects {
                after: d.str()?,
                limit: d.u32()?,
            },
            Opcode::StatObject => Request::StatObject { name: d.str()? },
            Opcode::Status => Request::Status,
            Opcode::Shutdown => Request::Shutdown,
            Opcode::ListFiles => Request::ListFiles,
            Opcode::CloseRing => Request::CloseRing,
            Opcode::Doorbell => Request::Doorbell,
            Opcode::Reclaim => Request::Reclaim {
                step: decode_reclaim(&mut d)?,
            },
            Opcode::CreateSync => Request::CreateSync {
                name: d.str()?,
                init: decode_init(&mut d)?,
                access: d.u32()?,
                inherit: d.bool()?,
                owner_token: d.u32()?,
                owner_tid: d.u32()?,
                security: d.str()?,
            },
            Opcode::Spawn => Request::Spawn {
                program: d.str()?,
                args: d.strs()?,
                env: d.strs()?,
                cwd: d.str()?,
                inherit_handles: d.bool()?,
                stdio: d.u8()?,
                flags: d.u32()?,
            },
            Opcode::OpenProcess => Request::OpenProcess {
                pid: d.u32()?,
                access: d.u32()?,
                inherit: d.bool()?,
            },
            Opcode::Terminate => Request::Terminate {
                handle: Handle(d.u32()?),
                exit_code: d.u32()?,
            },
            Opcode::Duplicate => Request::Duplicate {
                source_process: Handle(d.u32()?),
                source: Handle(d.u32()?),
                target_process: Handle(d.u32()?),
                access: d.u32()?,
                inherit: d.bool()?,
                options: d.u32()?,
            },
            Opcode::HandleFlags => Request::HandleFlags {
                handle: Handle(d.u32()?),
                mask: d.u32()?,
                flags: d.u32()?,
            },
            Opcode::CreateThread => Request::CreateThread { inherit: d.bool()? },
            Opcode::ListProcesses => Request::ListProcesses { after: d.u32()? },
            Opcode::Namespace => Request::Namespace {
                op: d.u8()?,
                boundary: d.str()?,
                sids: d.strs()?,
                alias: d.str()?,
                sddl: d.str()?,
                id: d.u32()?,
                destroy: d.bool()?,
            },
            Opcode::Security => Request::Security {
                handle: Handle(d.u32()?),
                set: d.bool()?,
                which: d.u32()?,
                sddl: d.str()?,
            },
            Opcode::ListHandles => Request::ListHandles {
                pid: d.u32()?,
                after: d.u32()?,
            },
            Opcode::SyncRemote => Request::SyncRemote {
                op: RemoteOp::from_code(d.u8()?).ok_or(WireError::BadField("remote op"))?,
                token: d.u32()?,
                tid: d.u32()?,
                register: d.bool()?,
                handles: d.u32s()?.into_iter().map(Handle).collect(),
                values: d.u32s()?,
                due: d.u64()?,
                period: d.u64()?,
            },
            Opcode::CreateJob => Request::CreateJob {
                name: d.str()?,
                access: d.u32()?,
                inherit: d.bool()?,
                security: d.str()?,
            },
            Opcode::JobControl => Request::JobControl {
                op: JobOp::from_code(d.u8()?).ok_or(WireError::BadField("job op"))?,
                job: Handle(d.u32()?),
                process: Handle(d.u32()?),
                values: d.u64s()?,
            },
            Opcode::OpenFile => Request::OpenFile {
                access: d.u32()?,
                share: d.u32()?,
                inherit: d.bool()?,
                delete_on_close: d.bool()?,
                name: d.str()?,
            },
            Opcode::FileControl => Request::FileControl {
                op: FileOp::from_code(d.u8()?).ok_or(WireError::BadField("file op"))?,
                handle: Handle(d.u32()?),
                value: d.u64()?,
                name: d.str()?,
            },
        };
        d.end()?;
        Ok((seq, request))
    }
}

fn encode_init(e: &mut Encoder, init: SyncInit) {
    let (flag_a, flag_b, initial, maximum) = match init {
        SyncInit::Event {
            manual_reset,
            signaled,
        } => (manual_reset, signaled, 0, 0),
        SyncInit::Mutex { owned } => (false, owned, 0, 0),
        SyncInit::Semaphore { initial, maximum } => (false, false, initial, maximum),
        SyncInit::Timer { manual_reset } => (manual_reset, false, 0, 0),
    };
    e.u8(init.object_type().code())
        .bool(flag_a)
        .bool(flag_b)
        .u32(initial)
        .u32(maximum);
}

fn decode_init(d: &mut Decoder<'_>) -> Result<SyncInit, WireError> {
    let object_type = d.object_type()?;
    let (flag_a, flag_b, initial, maximum) = (d.bool()?, d.bool()?, d.u32()?, d.u32()?);
    Ok(match object_type {
        ObjectType::Event => SyncInit::Event {
            manual_reset: flag_a,
            signaled: flag_b,
        },
        ObjectType::Mutex => SyncInit::Mutex { owned: flag_b },
        ObjectType::Semaphore => SyncInit::Semaphore { initial, maximum },
        ObjectType::WaitableTimer => SyncInit::Timer {
            manual_reset: flag_a,
        },
        _ => return Err(WireError::BadField("synchronization object type")),
    })
}

/// A new handle to a synchronization object: where its state lives. The first
/// such reply on a connection carries the arena's fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncGrant {
    pub handle: Handle,
    pub existed: bool,
    pub access: u32,
    /// The slot's kind code (type and manual-reset flag).
    pub kind: u32,
    /// Slot index in the arena.
    pub slot: u32,
    /// Identifies the arena, so a client maps each arena once.
    pub arena_id: u64,
    /// The arena's size in slots: `ARENA_SLOTS`, or `SOLO_SLOTS` for an
    /// object shared with other users, which has a page of its own.
    pub arena_slots: u32,
    /// Whether the arena's fd (and so the mapping) is writable: false for
    /// an object in another user's domain, which the client may only wait
    /// on in memory and changes through [`Request::SyncRemote`].
    pub writable: bool,
}

/// Facts about a section that a client needs to map it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    pub size: u64,
    /// `PAGE_*` protection it was created with.
    pub protection: u32,
    /// `SEC_*` attributes it was created with.
    pub attributes: u32,
    pub file_backed: bool,
}

/// A section handle whose fd the client keeps (see [`Request::Open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFd {
    /// Not 0.
    pub handle: Handle,
    /// What the kept fd can do.
    pub reach: FdReach,
    /// The broker's number for the section, as the client knows it (from
    /// its grant): the handle must still name that section.
    pub object: u64,
}

/// A new handle to a section. The reply carries the section's fd: read-write
/// only if the handle may write, so the kernel enforces the access too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionGrant {
    pub handle: Handle,
    /// The name existed already (`ERROR_ALREADY_EXISTS` on create).
    pub existed: bool,
    pub access: u32,
    pub info: SectionInfo,
    /// The broker's number for the section: two grants with the same number
    /// (in one broker session) are handles to one section.
    pub object: u64,
}

/// One object as `objmgr ls`/`stat` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Full namespace path (`\BaseNamedObjects\x`).
    pub path: String,
    pub object_type: ObjectType,
    pub handle_count: u32,
    /// Bytes, for sections; 0 otherwise.
    pub size: u64,
    /// Type-specific state, as name/value pairs, in display order.
    pub properties: Vec<(String, String)>,
}

/// Broker facts for `objmgr broker status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerStatus {
    pub pid: u32,
    pub protocol_version: u32,
    pub uptime_ms: u64,
    pub socket: String,
    pub clients: u32,
    pub objects: u32,
    pub named_objects: u32,
    pub handles: u64,
    /// Milliseconds the broker waits with no client before exiting; 0 = never.
    pub idle_timeout_ms: u64,
    /// Processes the broker keeps a record of (spawned, opened, or with
    /// handles waiting for them): none once every such process is gone
    /// and its handles closed.
    pub processes_tracked: u32,
    /// Handle tables waiting for a process to connect.
    pub pending_tables: u32,
    /// Requests served since start, by opcode name.
    pub requests: Vec<(String, u64)>,
    /// How many of them came in a connection's page (see
    /// [`Request::Doorbell`]) rather than on its socket.
    pub paged_requests: u64,
}

/// A successful reply's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Hello {
        version: u32,
        broker_pid: u32,
        session: u32,
        /// The tag that identifies this process in shared sync state.
        client_tag: u16,
    },
    Section(SectionGrant),
    Sync(SyncGrant),
    File(FileGrant),
    Done,
    Objects {
        entries: Vec<ObjectEntry>,
        more: bool,
    },
    Object(ObjectEntry),
    Status(BrokerStatus),
    /// `Spawn`: handles to the new process and its main thread.
    Spawned {
        process: SyncGrant,
        thread: SyncGrant,
        pid: u32,
    },
    /// `Duplicate`: the new handle value (in the target process);
    /// `HandleFlags`: the handle's flags (before a change).
    Value(u32),
    Processes(Vec<ProcessEntry>),
    Handles(Vec<HandleInfo>),
    /// `Security`: a security descriptor as SDDL.
    Text(String),
    Remote(RemoteReply),
    /// `JobControl`: numbers whose meaning depends on the operation.
    Numbers(Vec<u64>),
}

/// One connected process, for `objmgr ps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessEntry {
    pub pid: u32,
    /// Its tag in shared sync state.
    pub tag: u16,
    pub handles: u32,
    /// The executable's name (`/proc/PID/comm`).
    pub name: String,
}

/// One handle of a process, for `objmgr handles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandleInfo {
    pub value: u32,
    pub object_type: ObjectType,
    /// The object's path, or empty for an unnamed object.
    pub path: String,
    pub access: u32,
    /// `HANDLE_FLAG_*` bits.
    pub flags: u32,
}

fn encode_entry(e: &mut Encoder, entry: &ObjectEntry) {
    e.str(&entry.path)
        .u8(entry.object_type.code())
        .u32(entry.handle_count)
        .u64(entry.size)
        .u16(entry.properties.len() as u16);
    for (k, v) in &entry.properties {
        e.str(k).str(v);
    }
}

fn decode_entry(d: &mut Decoder<'_>) -> Result<ObjectEntry, WireError> {
    let path = d.str()?;
    let object_type = d.object_type()?;
    let handle_count = d.u32()?;
    let size = d.u64()?;
    let n = d.u16()?;
    let mut properties = Vec::with_capacity(n.min(64) as usize);
    for _ in 0..n {
        properties.push((d.str()?, d.str()?));
    }
    Ok(ObjectEntry {
        path,
        object_type,
        handle_count,
        size,
        properties,
    })
}

fn encode_sync_grant(e: &mut Encoder, g: &SyncGrant) {
    e.u8(GRANT_SYNC)
        .u32(g.handle.0)
        .bool(g.existed)
        .u32(g.access)
        .u32(g.kind)
        .u32(g.slot)
        .u64(g.arena_id)
        .u32(g.arena_slots)
        .bool(g.writable);
}

fn decode_grant(d: &mut Decoder<'_>) -> Result<Reply, WireError> {
    Ok(match d.u8()? {
        GRANT_SECTION => Reply::Section(SectionGrant {
            handle: Handle(d.u32()?),
            existed: d.bool()?,
            access: d.u32()?,
            info: SectionInfo {
                size: d.u64()?,
                protection: d.u32()?,
                attributes: d.u32()?,
                file_backed: d.bool()?,
            },
            object: d.u64()?,
        }),
        GRANT_FILE => Reply::File(FileGrant {
            handle: Handle(d.u32()?),
            access: d.u32()?,
            share: d.u32()?,
        }),
        GRANT_SYNC => Reply::Sync(SyncGrant {
            handle: Handle(d.u32()?),
            existed: d.bool()?,
            access: d.u32()?,
            kind: d.u32()?,
            slot: d.u32()?,
            arena_id: d.u64()?,
            arena_slots: d.u32()?,
            writable: d.bool()?,
        }),
        _ => return Err(WireError::BadField("grant kind")),
    })
}

fn decode_sync_grant(d: &mut Decoder<'_>) -> Result<SyncGrant, WireError> {
    match decode_grant(d)? {
        Reply::Sync(g) => Ok(g),
        _ => Err(WireError::BadField("expected a sync grant")),
    }
}

/// Grant replies start with which kind of object was granted.
const GRANT_SECTION: u8 = 1;
const GRANT_SYNC: u8 = 2;
const GRANT_FILE: u8 = 3;

/// The reply frame header: `opcode: u16, flags: u16, seq: u32, status: u32`.
/// A non-zero status is a Win32 error code followed by a context string.
pub fn encode_reply(op: Opcode, seq: u32, result: Result<&Reply, (u32, &str)>) -> Vec<u8> {
    let mut e = Encoder::new();
    e.u16(op as u16).u16(0).u32(seq);
    match result {
        Err((status, context)) => {
            e.u32(status).str(context);
        }
        Ok(reply) => {
            e.u32(0);
            match reply {
                Reply::Hello {
                    version,
                    broker_pid,
                    session,
                    client_tag,
                } => {
                    e.u32(*version)
                        .u32(*broker_pid)
                        .u32(*session)
                        .u16(*client_tag);
                }
                Reply::Sync(g) => encode_sync_grant(&mut e, g),
                Reply::File(g) => {
                    e.u8(GRANT_FILE).u32(g.handle.0).u32(g.access).u32(g.share);
                }
                Reply::Section(g) => {
                    e.u8(GRANT_SECTION)
                        .u32(g.handle.0)
                        .bool(g.existed)
                        .u32(g.access)
                        .u64(g.info.size)
                        .u32(g.info.protection)
                        .u32(g.info.attributes)
                        .bool(g.info.file_backed)
                        .u64(g.object);
                }
                Reply::Done => {}
                Reply::Objects { entries, more } => {
                    e.u32(entries.len() as u32);
                    for entry in entries {
                        encode_entry(&mut e, entry);
                    }
                    e.bool(*more);
                }
                Reply::Object(entry) => encode_entry(&mut e, entry),
                Reply::Spawned {
                    process,
                    thread,
                    pid,
                } => {
                    encode_sync_grant(&mut e, process);
                    encode_sync_grant(&mut e, thread);
                    e.u32(*pid);
                }
                Reply::Value(v) => {
                    e.u32(*v);
                }
                Reply::Processes(entries) => {
                    e.u32(entries.len() as u32);
                    for p in entries {
                        e.u32(p.pid).u16(p.tag).u32(p.handles).str(&p.name);
                    }
                }
                Reply::Text(text) => {
                    e.str(text);
                }
                Reply::Numbers(values) => {
                    e.u64s(values);
                }
                Reply::Remote(r) => {
                    let (code, index) = r.outcome.code();
                    e.u8(code)
                        .u32(index)
                        .u32(r.value)
                        .u64(r.new_owner_mask)
                        .u32s(&r.observed);
                }
                Reply::Handles(entries) => {
                    e.u32(entries.len() as u32);
                    for h in entries {
                        e.u32(h.value)
                            .u8(h.object_type.code())
                            .str(&h.path)
                            .u32(h.access)
                            .u32(h.flags);
                    }
                }
                Reply::Status(s) => {
                    e.u32(s.pid)
                        .u32(s.protocol_version)
                        .u64(s.uptime_ms)
                        .str(&s.socket)
                        .u32(s.clients)
                        .u32(s.objects)
                        .u32(s.named_objects)
                        .u64(s.handles)
                        .u64(s.idle_timeout_ms)
                        .u32(s.processes_tracked)
                        .u32(s.pending_tables)
                        .u16(s.requests.len() as u16);
                    for (name, count) in &s.requests {
                        e.str(name).u64(*count);
                    }
                    e.u64(s.paged_requests);
                }
            }
        }
    }
    e.finish()
}

/// A decoded reply: the sequence number and either the body or the error.
pub type DecodedReply = (u32, Result<Reply, (u32, String)>);

/// Decodes the reply to a request with opcode `op`.
pub fn decode_reply(op: Opcode, buf: &[u8]) -> Result<DecodedReply, WireError> {
    let mut d = Decoder::new(buf);
    let code = d.u16()?;
    if code != op as u16 {
        return Err(WireError::BadField("reply opcode"));
    }
    let _flags = d.u16()?;
    let seq = d.u32()?;
    let status = d.u32()?;
    if status != 0 {
        let context = d.str()?;
        d.end()?;
        return Ok((seq, Err((status, context))));
    }
    let reply = match op {
        Opcode::Hello => Reply::Hello {
            version: d.u32()?,
            broker_pid: d.u32()?,
            session: d.u32()?,
            client_tag: d.u16()?,
        },
        Opcode::CreateSection
        | Opcode::Open
        | Opcode::QueryHandle
        | Opcode::CreateSync
        | Opcode::OpenProcess
        | Opcode::CreateThread
        | Opcode::CreateJob
        | Opcode::OpenFile => decode_grant(&mut d)?,
        Opcode::FileControl => Reply::Value(d.u32()?),
        Opcode::JobControl => Reply::Numbers(d.u64s()?),
        Opcode::Spawn => Reply::Spawned {
            process: decode_sync_grant(&mut d)?,
            thread: decode_sync_grant(&mut d)?,
            pid: d.u32()?,
        },
        Opcode::Duplicate | Opcode::HandleFlags | Opcode::Namespace => Reply::Value(d.u32()?),
        Opcode::ListProcesses => {
            let n = d.u32()?;
            if n > MAX_LIST_ENTRIES * 64 {
                return Err(WireError::BadField("entry count"));
            }
            let mut entries = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                entries.push(ProcessEntry {
                    pid: d.u32()?,
                    tag: d.u16()?,
                    handles: d.u32()?,
                    name: d.str()?,
                });
            }
            Reply::Processes(entries)
        }
        Opcode::ListHandles => {
            let n = d.u32()?;
            if n > MAX_LIST_ENTRIES * 64 {
                return Err(WireError::BadField("entry count"));
            }
            let mut entries = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                entries.push(HandleInfo {
                    value: d.u32()?,
                    object_type: d.object_type()?,
                    path: d.str()?,
                    access: d.u32()?,
                    flags: d.u32()?,
                });
            }
            Reply::Handles(entries)
        }
        // A close that made a pending name's removal due answers its ticket
        // (see `FileOp::RemovalDone`), else 0.
        Opcode::Close => Reply::Value(d.u32()?),
        Opcode::CloseNoReply
        | Opcode::Shutdown
        | Opcode::Terminate
        | Opcode::Reclaim
        | Opcode::CloseRing
        | Opcode::Doorbell => Reply::Done,
        Opcode::Security => Reply::Text(d.str()?),
        Opcode::SyncRemote => {
            let (code, index) = (d.u8()?, d.u32()?);
            let outcome = RemoteOutcome::from_code(code, index)
                .ok_or(WireError::BadField("remote outcome"))?;
            Reply::Remote(RemoteReply {
                outcome,
                value: d.u32()?,
                new_owner_mask: d.u64()?,
                observed: d.u32s()?,
            })
        }
        Opcode::ListObjects | Opcode::ListFiles => {
            let n = d.u32()?;
            if n > MAX_LIST_ENTRIES {
                return Err(WireError::BadField("entry count"));
            }
            let mut entries = Vec::with_capacity(n as usize);
            for _ in 0..n {
                entries.push(decode_entry(&mut d)?);
            }
            Reply::Objects {
                entries,
                more: d.bool()?,
            }
        }
        Opcode::StatObject => Reply::Object(decode_entry(&mut d)?),
        Opcode::Status => {
            let mut s = BrokerStatus {
                pid: d.u32()?,
                protocol_version: d.u32()?,
                uptime_ms: d.u64()?,
                socket: d.str()?,
                clients: d.u32()?,
                objects: d.u32()?,
                named_objects: d.u32()?,
                handles: d.u64()?,
                idle_timeout_ms: d.u64()?,
                processes_tracked: d.u32()?,
                pending_tables: d.u32()?,
                requests: Vec::new(),
                paged_requests: 0,
            };
            let n = d.u16()?;
            for _ in 0..n {
                s.requests.push((d.str()?, d.u64()?));
            }
            s.paged_requests = d.u64()?;
            Reply::Status(s)
        }
    };
    d.end()?;
    Ok((seq, Ok(reply)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only what cannot act twice, nor name the lost session, is sent again.
    #[test]
    fn what_may_be_sent_again_to_a_new_broker() {
        let open = Request::Open {
            object_type: ObjectType::Event,
            name: "Local\\x".into(),
            access: 0x0010_0000,
            inherit: false,
            known_fd: None,
        };
        let create = |owner_token| Request::CreateSync {
            name: "Local\\m".into(),
            init: SyncInit::Mutex {
                owned: owner_token != 0,
            },
            access: 0x001F_0001,
            inherit: false,
            owner_token,
            owner_tid: 0,
            security: String::new(),
        };
        let spawn = Request::Spawn {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            cwd: String::new(),
            inherit_handles: false,
            stdio: 0,
            flags: 0,
        };
        assert!(open.independent_of_session());
        assert!(Request::Status.independent_of_session());
        assert!(create(0).independent_of_session());
        assert!(
            !create(1 << 15).independent_of_session(),
            "a thread token of the session"
        );
        assert!(
            !spawn.independent_of_session(),
            "it would start a second process"
        );
        assert!(!Request::Close { handle: Handle(4) }.independent_of_session());
        assert!(!Request::Shutdown.independent_of_session());
    }

    fn round_trip(req: Request) {
        let bytes = req.encode(7);
        assert_eq!(Request::decode(&bytes), Ok((7, req)));
    }

    #[test]
    fn requests_round_trip() {
        round_trip(Request::Hello {
            version: PROTOCOL_VERSION,
        });
        round_trip(Request::CreateSection {
            name: "Global\\x".into(),
            protection: 4,
            size: 1 << 40,
            inherit: true,
            from_file: false,
            security: "O:SYD:(A;;GA;;;WD)".into(),
        });
        round_trip(Request::Open {
            object_type: ObjectType::Section,
            name: "y".into(),
            access: 0xF001F,
            inherit: false,
            known_fd: None,
        });
        round_trip(Request::Open {
            object_type: ObjectType::Section,
            name: "y".into(),
            access: 4,
            inherit: true,
            known_fd: Some(KnownFd {
                handle: Handle(0x24),
                reach: FdReach::Write,
                object: 0x1_0000_0009,
            }),
        });
        round_trip(Request::Close { handle: Handle(4) });
        round_trip(Request::CloseNoReply { handle: Handle(8) });
        round_trip(Request::ListObjects {
            after: String::new(),
            limit: 10,
        });
        round_trip(Request::StatObject { name: "z".into() });
        round_trip(Request::Status);
        round_trip(Request::CloseRing);
        round_trip(Request::Doorbell);
        round_trip(Request::Shutdown);
        for init in [
            SyncInit::Event {
                manual_reset: true,
                signaled: false,
            },
            SyncInit::Mutex { owned: true },
            SyncInit::Semaphore {
                initial: 3,
                maximum: 9,
            },
            SyncInit::Timer {
                manual_reset: false,
            },
        ] {
            round_trip(Request::CreateSync {
                name: "Local\\s".into(),
                init,
                access: 0x1F0003,
                inherit: true,
                owner_token: 0x8001,
                owner_tid: 77,
                security: String::new(),
            });
        }
    }

    #[test]
    fn process_and_handle_requests_round_trip() {
        round_trip(Request::Spawn {
            program: "/bin/true".into(),
            args: vec!["a".into(), "b c".into()],
            env: vec!["X=1".into()],
            cwd: "/tmp".into(),
            inherit_handles: true,
            stdio: 0b101,
            flags: crate::job::CREATE_BREAKAWAY_FROM_JOB,
        });
        round_trip(Request::CreateJob {
            name: "Local\\jobs".into(),
            access: 0x1F_003F,
            inherit: true,
            security: "D:(A;;GA;;;WD)".into(),
        });
        for op in JobOp::ALL {
            round_trip(Request::JobControl {
                op,
                job: Handle(4),
                process: CURRENT_PROCESS,
                values: vec![u64::MAX, 0, 7],
            });
        }
        round_trip(Request::OpenFile {
            access: 0x1_0003,
            share: 7,
            inherit: true,
            delete_on_close: true,
            name: "a file".into(),
        });
        for op in FileOp::ALL {
            round_trip(Request::FileControl {
                op,
                handle: Handle(12),
                value: u64::MAX,
                name: "x".into(),
            });
        }
        let file = Reply::File(FileGrant {
            handle: Handle(16),
            access: 3,
            share: 1,
        });
        let bytes = encode_reply(Opcode::QueryHandle, 4, Ok(&file));
        assert_eq!(decode_reply(Opcode::QueryHandle, &bytes), Ok((4, Ok(file))));
        let numbers = Reply::Numbers((0..crate::job::MAX_PROCESS_IDS as u64).collect());
        let bytes = encode_reply(Opcode::JobControl, 9, Ok(&numbers));
        assert!(bytes.len() <= MAX_MESSAGE_SIZE);
        assert_eq!(
            decode_reply(Opcode::JobControl, &bytes),
            Ok((9, Ok(numbers)))
        );
        round_trip(Request::OpenProcess {
            pid: 42,
            access: 0x1F_FFFF,
            inherit: false,
        });
        round_trip(Request::Terminate {
            handle: Handle(8),
            exit_code: 3,
        });
        round_trip(Request::Duplicate {
            source_process: CURRENT_PROCESS,
            source: Handle(4),
            target_process: Handle(12),
            access: 4,
            inherit: true,
            options: 2,
        });
        round_trip(Request::HandleFlags {
            handle: Handle(4),
            mask: 3,
            flags: 1,
        });
        round_trip(Request::CreateThread { inherit: true });
        round_trip(Request::ListProcesses { after: 0 });
        round_trip(Request::ListHandles { pid: 7, after: 4 });
        round_trip(Request::Namespace {
            op: 1,
            boundary: "svc".into(),
            sids: vec!["S-1-1-0".into()],
            alias: "priv".into(),
            sddl: String::new(),
            id: 3,
            destroy: true,
        });
        round_trip(Request::Security {
            handle: Handle(8),
            set: true,
            which: 4,
            sddl: "D:(A;;GA;;;WD)".into(),
        });
        for op in RemoteOp::ALL {
            round_trip(Request::SyncRemote {
                op,
                token: 3,
                tid: 4567,
                register: true,
                handles: vec![Handle(4), Handle(8)],
                values: vec![0, u32::MAX],
                due: 1 << 40,
                period: 5,
            });
        }
        for step in [
            ReclaimStep::Begin { tag: 7 },
            ReclaimStep::Arena {
                id: u64::MAX,
                slots: 1 << 20,
            },
            ReclaimStep::Section {
                held: HeldHandle {
                    handle: Handle(4),
                    access: 6,
                    flags: 3,
                    name: "Local\\x".into(),
                },
                protection: 4,
                attributes: 8,
                size: 1 << 33,
            },
            ReclaimStep::Sync {
                held: HeldHandle {
                    handle: Handle(8),
                    access: 0x1F_0003,
                    flags: 0,
                    name: String::new(),
                },
                arena: 5,
                slot: 9,
            },
            ReclaimStep::File {
                held: HeldHandle {
                    handle: Handle(12),
                    access: 0x12_019F,
                    flags: 1,
                    name: String::new(),
                },
                open: u32::MAX,
                open_access: 0x12_01BF,
                share: 7,
            },
            ReclaimStep::FileSection {
                held: HeldHandle {
                    handle: Handle(16),
                    access: 4,
                    flags: 0,
                    name: "Local\\mapped".into(),
                },
                section: 3,
                protection: 4,
                attributes: 0x0800_0000,
                size: 1 << 33,
            },
            ReclaimStep::End,
            ReclaimStep::Leave { tag: u16::MAX },
        ] {
            round_trip(Request::Reclaim { step });
        }
        let mut bad_step = Request::Reclaim {
            step: ReclaimStep::End,
        }
        .encode(1);
        *bad_step.last_mut().expect("step code") = 8;
        assert_eq!(
            Request::decode(&bad_step),
            Err(WireError::BadField("reclaim step"))
        );
        // A list longer than any wait is refused, not allocated.
        let mut too_long = Request::SyncRemote {
            op: RemoteOp::WaitAny,
            token: 0,
            tid: 0,
            register: false,
            handles: vec![],
            values: vec![],
            due: 0,
            period: 0,
        }
        .encode(1);
        too_long.truncate(8 + 1 + 4 + 4 + 1); // header, op, token, tid, register
        too_long.push(65); // handles
        too_long.extend(std::iter::repeat_n(0u8, 65 * 4 + 1 + 16));
        assert_eq!(
            Request::decode(&too_long),
            Err(WireError::BadField("list length"))
        );
        let grant = SyncGrant {
            handle: Handle(4),
            existed: false,
            access: 0x1F_FFFF,
            kind: 7,
            slot: 3,
            arena_id: 9,
            arena_slots: 64,
            writable: false,
        };
        let spawned = Reply::Spawned {
            process: grant,
            thread: SyncGrant { kind: 8, ..grant },
            pid: 1234,
        };
        let bytes = encode_reply(Opcode::Spawn, 2, Ok(&spawned));
        assert_eq!(decode_reply(Opcode::Spawn, &bytes), Ok((2, Ok(spawned))));
        let handles = Reply::Handles(vec![HandleInfo {
            value: 4,
            object_type: ObjectType::Event,
            path: String::new(),
            access: 2,
            flags: 1,
        }]);
        let bytes = encode_reply(Opcode::ListHandles, 3, Ok(&handles));
        assert_eq!(
            decode_reply(Opcode::ListHandles, &bytes),
            Ok((3, Ok(handles)))
        );
    }

    #[test]
    fn replies_round_trip() {
        let grant = Reply::Section(SectionGrant {
            handle: Handle(8),
            existed: true,
            access: 6,
            info: SectionInfo {
                size: 65536,
                protection: 4,
                attributes: 0x0800_0000,
                file_backed: false,
            },
            object: 0x1_0000_0007,
        });
        let bytes = encode_reply(Opcode::Open, 3, Ok(&grant));
        assert_eq!(decode_reply(Opcode::Open, &bytes), Ok((3, Ok(grant))));
        let sync = Reply::Sync(SyncGrant {
            handle: Handle(12),
            existed: false,
            access: 0x1F0001,
            kind: 3,
            slot: 99,
            arena_id: 1 << 40,
            arena_slots: 1 << 20,
            writable: true,
        });
        let bytes = encode_reply(Opcode::Open, 6, Ok(&sync));
        assert_eq!(decode_reply(Opcode::Open, &bytes), Ok((6, Ok(sync))));
        for outcome in [
            RemoteOutcome::Done,
            RemoteOutcome::NotYet,
            RemoteOutcome::Busy,
            RemoteOutcome::Object(63),
            RemoteOutcome::Abandoned(2),
        ] {
            let remote = Reply::Remote(RemoteReply {
                outcome,
                value: 7,
                new_owner_mask: 1 << 63,
                observed: vec![1, 2, 3],
            });
            let bytes = encode_reply(Opcode::SyncRemote, 8, Ok(&remote));
            assert_eq!(
                decode_reply(Opcode::SyncRemote, &bytes),
                Ok((8, Ok(remote)))
            );
        }
        let hello = Reply::Hello {
            version: PROTOCOL_VERSION,
            broker_pid: 5,
            session: 1,
            client_tag: 65535,
        };
        let bytes = encode_reply(Opcode::Hello, 1, Ok(&hello));
        assert_eq!(decode_reply(Opcode::Hello, &bytes), Ok((1, Ok(hello))));
        let entry = ObjectEntry {
            path: "\\BaseNamedObjects\\x".into(),
            object_type: ObjectType::Section,
            handle_count: 2,
            size: 10,
            properties: vec![("protection".into(), "PAGE_READWRITE".into())],
        };
        let list = Reply::Objects {
            entries: vec![entry.clone()],
            more: false,
        };
        let bytes = encode_reply(Opcode::ListObjects, 4, Ok(&list));
        assert_eq!(decode_reply(Opcode::ListObjects, &bytes), Ok((4, Ok(list))));
        let err = encode_reply(Opcode::Open, 5, Err((2, "no such object")));
        assert_eq!(
            decode_reply(Opcode::Open, &err),
            Ok((5, Err((2, "no such object".into()))))
        );
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        assert_eq!(Request::decode(&[]), Err(WireError::Truncated));
        assert_eq!(
            Request::decode(&[0xff, 0xff, 0, 0, 0, 0, 0, 0]),
            Err(WireError::UnknownOpcode(0xffff))
        );
        let mut bytes = Request::Status.encode(1);
        bytes.push(0);
        assert_eq!(Request::decode(&bytes), Err(WireError::TrailingBytes));
        let mut bad_utf8 = Request::StatObject { name: "ab".into() }.encode(1);
        let n = bad_utf8.len();
        bad_utf8[n - 1] = 0xff;
        assert_eq!(
            Request::decode(&bad_utf8),
            Err(WireError::BadField("string encoding"))
        );
        // Every prefix of a valid message is an error, never a panic.
        let full = Request::CreateSection {
            name: "n".into(),
            protection: 4,
            size: 1,
            inherit: false,
            from_file: false,
            security: String::new(),
        }
        .encode(9);
        for cut in 0..full.len() {
            assert!(Request::decode(&full[..cut]).is_err());
        }
    }

    #[test]
    fn long_strings_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_STRING_LEN);
        let bytes = Request::StatObject { name: long }.encode(1);
        let (_, Request::StatObject { name }) = Request::decode(&bytes).unwrap() else {
            panic!()
        };
        assert!(name.len() <= MAX_STRING_LEN);
    }
}
