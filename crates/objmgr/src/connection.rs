//! The client's connection to the broker: finding it, starting it on demand,
//! and one request/reply exchange at a time.
//!
//! One connection serves the whole process (handles are per process, as on
//! Windows). It is created on first use, and again after `fork()` — a forked
//! child starts with no handles and its own connection — or after the broker
//! went away: the process's handles go to the broker that replaces it (see
//! [`crate::reclaim`]), or, if they cannot, die with the old one.

use crate::error::{ERROR_BROKEN_PIPE, ERROR_RETRY, ERROR_SERVICE_NOT_ACTIVE, Error, Result};
use crate::reclaim::Holdings;
use crate::sys;
use objmgr_proto::Win32Error;
use objmgr_proto::rendezvous::{self, SocketLocation};
use objmgr_proto::wire::{
    self, Handle, MAX_FDS_PER_MESSAGE, MAX_MESSAGE_SIZE, PROTOCOL_VERSION, RemoteOutcome,
    RemoteReply, Reply, Request,
};
use objmgr_sync::close_ring::{CloseRing, PagedReply, RingClose};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::cell::{Cell, RefCell};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How long a request is sent again while the broker answers `ERROR_RETRY`
/// (longer than a broker's recovery lasts).
const RETRY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Requests a connection sends on its socket before it asks for its
/// doorbell, to send the rest through its page: the two requests that set
/// the page up (about 16 µs on one CPU) cost what five answers through it
/// save (about 3 µs each), so a process that asks the broker only a few
/// times never pays for them.
const REQUESTS_BEFORE_DOORBELL: u32 = 4;

/// How long a process sleeps on its page for an answer before it looks
/// whether the broker is still there (a broker that died never answers in
/// the page; its socket says so).
const PAGE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// A connected, greeted broker session.
#[derive(Debug)]
pub(crate) struct Connection {
    socket: OwnedFd,
    seq: u32,
    recv_buf: Vec<u8>,
    /// This process's tag in shared sync state, from the broker's `Hello`
    /// (or the lost broker's, kept when a new one took the handles back).
    tag: u16,
    /// Which connection of the process's life this is (for its watcher).
    serial: u64,
    /// A connection to the system broker (its sessions go to the broker its
    /// service manager starts when it dies, never to a per-user one).
    system: bool,
    /// Where closes that free nothing go (asked for at the first such close).
    close_ring: CloseRingState,
    /// Whether the last request sent reached the broker's socket (one whose
    /// send failed did not: it may be sent to a new broker, whatever it is).
    delivered: bool,
    /// The socket's file (device, inode): a forked child closes its copy
    /// only while the number still names it.
    socket_identity: Option<(u64, u64)>,
    /// Requests sent on the socket so far (until the doorbell is asked for).
    requests: u32,
    /// The doorbell rung for requests left in the page (see
    /// `Request::Doorbell`).
    doorbell: Doorbell,
}

/// A connection's doorbell.
#[derive(Debug)]
enum Doorbell {
    NotAsked,
    Ready(Bell),
    /// The broker gave none (or it is being asked for): requests are sent.
    Unavailable,
}

/// A connection's close ring (see `objmgr_sync::close_ring`).
#[derive(Debug)]
enum CloseRingState {
    NotAsked,
    Mapped(CloseRing),
    /// The broker gave none, or it could not be mapped: closes are sent.
    Unavailable,
}

/// A doorbell's descriptor, whose number the fork handler knows: a forked
/// child must not ring its parent's broker (with the page, which it does
/// not inherit, it could ask as its parent).
#[derive(Debug)]
struct Bell(OwnedFd);

/// The doorbell's descriptor number, for the fork handler (-1: none).
static DOORBELL_FD: AtomicI32 = AtomicI32::new(-1);

impl Bell {
    fn new(fd: OwnedFd) -> Bell {
        DOORBELL_FD.store(fd.as_raw_fd(), Ordering::Release);
        Bell(fd)
    }

    /// Rings it: false if it cannot be rung (the process closed it, or
    /// its count is full: the broker never reads it, and a write that
    /// fails is no event).
    fn ring(&self) -> bool {
        loop {
            match rustix::io::write(&self.0, &1u64.to_ne_bytes()) {
                Ok(_) => return true,
                Err(Errno::INTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        // (Before the number is freed; a forked child's handler took it.)
        let _ = DOORBELL_FD.compare_exchange(
            self.0.as_raw_fd(),
            -1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Why an exchange failed.
enum Broken {
    /// The connection is gone (the broker hung up or is dead).
    Connection(String),
    /// The broker answered something that is no answer to the request: the
    /// connection is unusable, though the broker may have acted on it.
    Protocol(String),
    /// The request could not be sent, for a reason of this process's (no
    /// memory, too many descriptors in flight, a message too large): nothing
    /// reached the broker and the connection is fine.
    NotSent(Error),
    /// The broker answered `Hello` with an error (it refuses this process,
    /// or speaks another protocol version): trying again cannot help.
    Refused(Error),
}

impl Connection {
    /// Sends `request` (with `fds` attached) and waits for its reply. A
    /// broker that answers `ERROR_RETRY` is taking over from one that died
    /// (it waits a few seconds at most for the lost broker's processes to
    /// take their handles back): the request is sent again after a pause.
    fn exchange(
        &mut self,
        request: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(Result<Reply>, Option<OwnedFd>), Broken> {
        let mut patience = None;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            let outcome = self.exchange_once(request, fds)?;
            let Err(e) = &outcome.0 else {
                return Ok(outcome);
            };
            let now = std::time::Instant::now();
            if e.code() != ERROR_RETRY || now >= *patience.get_or_insert(now + RETRY_PATIENCE) {
                return Ok(outcome);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    fn exchange_once(
        &mut self,
        request: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(Result<Reply>, Option<OwnedFd>), Broken> {
        let posted = fds.is_empty()
            && request.expects_reply()
            && self.post(request).inspect_err(|_| {
                // (Lost while the page was set up: this request never left.)
                self.delivered = false;
            })?;
        // (What the setup's own requests did is not this one's.)
        self.delivered = posted;
        if posted {
            return self.receive_paged(request);
        }
        match self.send(request, fds) {
            Ok(()) => self.delivered = true,
            Err(not_sent @ Broken::NotSent(_)) => return Err(not_sent),
            // A broker that hung up may have said why first (a refusal).
            Err(broken) => return self.receive(request, false).map_err(|_| broken),
        }
        self.receive(request, true)
    }

    /// Leaves the close of `handle` in the close ring, asking the broker for
    /// the ring first if need be: false if it cannot (the close must be
    /// sent).
    fn leave_close(&mut self, close: RingClose) -> Result<bool, Broken> {
        match self.page() {
            Ok(page) => Ok(page.is_some_and(|ring| ring.push(close))),
            // The ring could not be asked for (this process's own trouble):
            // the close is sent.
            Err(Broken::NotSent(_)) => Ok(false),
            Err(broken) => Err(broken),
        }
    }

    /// Leaves a close that may free its section in the close ring and rings
    /// the doorbell, so that the broker frees it now (it wakes to drain the
    /// rings) without reading a message: false if the connection has no
    /// doorbell or the ring is full (the close must be sent).
    fn leave_freeing_close(&mut self, close: RingClose) -> Result<bool, Broken> {
        let (CloseRingState::Mapped(ring), Doorbell::Ready(bell)) =
            (&self.close_ring, &self.doorbell)
        else {
            return Ok(false);
        };
        if !ring.push(close) {
            return Ok(false);
        }
        // In the ring, it is done before the broker serves anything; a
        // doorbell that cannot be rung only makes the freeing wait for that.
        if !bell.ring() {
            self.doorbell = Doorbell::Unavailable;
        }
        Ok(true)
    }

    /// Lets go of the parent's connection in a forked child: the page is
    /// forgotten, not unmapped (the child does not inherit it, and the range
    /// may hold another mapping by now), and the socket and doorbell are
    /// closed only if their numbers still name what was inherited (the fork
    /// handler's placeholder, or the socket itself after a bare `clone`):
    /// else the child closed them and opened files of its own there.
    fn release_in_child(mut self) {
        let page = std::mem::replace(&mut self.close_ring, CloseRingState::Unavailable);
        if let CloseRingState::Mapped(ring) = page {
            std::mem::forget(ring);
        }
        if let Doorbell::Ready(bell) = std::mem::replace(&mut self.doorbell, Doorbell::Unavailable)
        {
            // (Every eventfd has the same inode: only the placeholder tells.)
            if !sys::inherited_is_ours(bell.0.as_raw_fd(), None) {
                std::mem::forget(bell);
            }
        }
        if !sys::inherited_is_ours(self.socket.as_raw_fd(), self.socket_identity) {
            drop(std::mem::take(&mut self.recv_buf));
            std::mem::forget(self);
        }
    }

    /// The page the connection shares with its broker (its close ring),
    /// asked for the first time it is needed; `None` if the broker gave
    /// none.
    fn page(&mut self) -> Result<Option<&CloseRing>, Broken> {
        if let CloseRingState::NotAsked = self.close_ring {
            self.close_ring = match self.exchange(&Request::CloseRing, &[])? {
                // (A forked child must not ask as this process: a page that
                // would be inherited is not used.)
                (Ok(Reply::Done), Some(fd)) => match CloseRing::map(fd.as_fd()) {
                    Ok(ring) if ring.keep_from_children().is_ok() => CloseRingState::Mapped(ring),
                    _ => CloseRingState::Unavailable,
                },
                // Refused (or no fd came): closes are sent.
                _ => CloseRingState::Unavailable,
            };
        }
        Ok(match &self.close_ring {
            CloseRingState::Mapped(ring) => Some(ring),
            _ => None,
        })
    }

    /// Leaves `request` in the page and rings the doorbell, if the
    /// connection has them (asking for them first when it is time): false
    /// if it must be sent instead.
    fn post(&mut self, request: &Request) -> Result<bool, Broken> {
        // (The requests that set the page up go on the socket, and do not
        // count: asking for the page is no sign of a talkative process.)
        // (Nor do the steps of taking handles back to a new broker.)
        if matches!(
            request,
            Request::Hello { .. }
                | Request::CloseRing
                | Request::Doorbell
                | Request::Reclaim { .. }
        ) {
            return Ok(false);
        }
        if let Doorbell::NotAsked = self.doorbell {
            self.requests += 1;
            if self.requests < REQUESTS_BEFORE_DOORBELL {
                return Ok(false);
            }
            // (Its own two requests go on the socket.)
            self.doorbell = Doorbell::Unavailable;
            self.doorbell = match self.ask_doorbell() {
                Ok(Some(bell)) => Doorbell::Ready(Bell::new(bell)),
                // Not sent (this process's own trouble): the request that
                // asked goes on the socket, and the page is not asked again.
                Ok(None) | Err(Broken::NotSent(_)) => Doorbell::Unavailable,
                Err(broken) => return Err(broken),
            };
        }
        let (CloseRingState::Mapped(ring), Doorbell::Ready(bell)) =
            (&self.close_ring, &self.doorbell)
        else {
            return Ok(false);
        };
        let seq = self.seq.wrapping_add(1);
        if !ring.post_request(seq, &request.encode(seq)) {
            return Ok(false); // too long for the page
        }
        self.seq = seq;
        if !bell.ring() {
            // Sent instead (the broker takes from the page only when rung).
            self.doorbell = Doorbell::Unavailable;
            return Ok(false);
        }
        Ok(true)
    }

    /// The page (asked for if need be) and a doorbell: the doorbell's fd,
    /// or `None` if the broker gave no page or no doorbell.
    fn ask_doorbell(&mut self) -> Result<Option<OwnedFd>, Broken> {
        if self.page()?.is_none() {
            return Ok(None);
        }
        Ok(match self.exchange(&Request::Doorbell, &[])? {
            (Ok(Reply::Done), Some(bell)) => Some(bell),
            _ => None,
        })
    }

    /// The answer to `request`, left in the page: waits for it there, and
    /// takes it from the socket if the page says it is there (it carries a
    /// descriptor) or the broker hangs up.
    fn receive_paged(
        &mut self,
        request: &Request,
    ) -> Result<(Result<Reply>, Option<OwnedFd>), Broken> {
        let CloseRingState::Mapped(ring) = &self.close_ring else {
            return Err(Broken::Protocol("a paged request without a page".into()));
        };
        loop {
            match ring.wait_reply(self.seq, PAGE_PATIENCE, &mut self.recv_buf) {
                Some(PagedReply::InPage(len)) => return self.decode(request, len, None),
                Some(PagedReply::OnSocket) => break,
                None => {}
            }
            // No answer yet: is the broker still there? Anything on the
            // socket (its answer, or why it hung up) is read from there.
            match net::recv(
                &self.socket,
                &mut [0u8; 1],
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Err(Errno::AGAIN | Errno::INTR) => {}
                Ok((0, _)) => {
                    return Err(Broken::Connection(
                        "the broker closed the connection".into(),
                    ));
                }
                Ok(_) => break,
                Err(e) => {
                    return Err(Broken::Connection(format!("waiting for the broker: {e}")));
                }
            }
        }
        self.receive(request, true)
    }

    /// Decodes the answer to `request` in the first `len` bytes of the
    /// receive buffer.
    fn decode(
        &self,
        request: &Request,
        len: usize,
        received: Option<OwnedFd>,
    ) -> Result<(Result<Reply>, Option<OwnedFd>), Broken> {
        let (seq, result) = wire::decode_reply(request.opcode(), &self.recv_buf[..len])
            .map_err(|e| Broken::Protocol(format!("bad reply from the broker: {e}")))?;
        if seq != self.seq {
            return Err(Broken::Protocol("reply out of sequence".into()));
        }
        Ok((
            result.map_err(|(code, context)| Error::new(Win32Error(code), context)),
            received,
        ))
    }

    /// How far the broker got with this connection's requests, if the
    /// connection has a page.
    fn progress(&self) -> Option<objmgr_sync::close_ring::Progress> {
        match &self.close_ring {
            CloseRingState::Mapped(ring) => Some(ring.progress()),
            _ => None,
        }
    }

    /// Sends one request without waiting for anything back.
    fn send(&mut self, request: &Request, fds: &[BorrowedFd<'_>]) -> Result<(), Broken> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = request.encode(self.seq);
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        loop {
            // NOSIGNAL: a dead broker must not kill the host program with
            // SIGPIPE. Without descriptors, a plain send (no message header
            // for the kernel to read).
            let sent = if fds.is_empty() {
                net::send(&self.socket, &bytes, SendFlags::NOSIGNAL)
            } else {
                net::sendmsg(
                    &self.socket,
                    &[IoSlice::new(&bytes)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e @ (Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN)) => {
                    return Err(Broken::Connection(format!("sending to the broker: {e}")));
                }
                // A datagram that could not be sent was not sent at all.
                Err(e) => {
                    return Err(Broken::NotSent(Error::new(
                        Win32Error::from_errno(e.raw_os_error()),
                        format!("sending a request to the broker: {e}"),
                    )));
                }
            }
        }
    }

    /// The reply to `request`, the last request sent; waits for it if
    /// `wait`, else takes only one already there.
    fn receive(
        &mut self,
        request: &Request,
        wait: bool,
    ) -> Result<(Result<Reply>, Option<OwnedFd>), Broken> {
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut flags = RecvFlags::CMSG_CLOEXEC;
        if !wait {
            flags |= RecvFlags::DONTWAIT;
        }
        let mut reset_seen = false;
        let msg = loop {
            match net::recvmsg(
                &self.socket,
                &mut [IoSliceMut::new(&mut self.recv_buf)],
                &mut control,
                flags,
            ) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => continue,
                // A broker that hangs up on a request it has not read is
                // reported as a reset before the answer it sent first (a
                // refusal says why): look for that answer once.
                Err(Errno::CONNRESET) if !reset_seen => {
                    reset_seen = true;
                    flags |= RecvFlags::DONTWAIT;
                }
                Err(e) => {
                    return Err(Broken::Connection(format!(
                        "receiving from the broker: {e}"
                    )));
                }
            }
        };
        let mut received: Option<OwnedFd> = None;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                for fd in rights {
                    // One fd per reply at most; any extra is closed on drop.
                    received.get_or_insert(fd);
                }
            }
        }
        if msg.bytes == 0 {
            return Err(Broken::Connection(
                "the broker closed the connection".into(),
            ));
        }
        // A close ring or doorbell that did not fit (the process is at its
        // descriptor limit) is no broken connection: both are optional, and
        // the process is likely closing handles for just that reason.
        let optional_fd = matches!(
            request.opcode(),
            wire::Opcode::CloseRing | wire::Opcode::Doorbell
        );
        if msg.flags.contains(ReturnFlags::TRUNC)
            || (msg.flags.contains(ReturnFlags::CTRUNC) && !optional_fd)
        {
            return Err(Broken::Protocol("oversized reply from the broker".into()));
        }
        self.decode(request, msg.bytes, received)
    }
}

/// Connects to the socket at `location` and checks, before a byte is sent,
/// that a broker this user may trust is listening there.
fn connect_socket(
    location: &SocketLocation,
    dir_owner: u32,
) -> std::result::Result<OwnedFd, Unreachable> {
    let path = &location.socket;
    let fd = net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Unreachable::NoBroker(e.into()))?;
    let addr = SocketAddrUnix::new(path).map_err(|e| Unreachable::NoBroker(e.into()))?;
    net::connect(&fd, &addr).map_err(|e| Unreachable::NoBroker(e.into()))?;
    rendezvous::check_broker(fd.as_fd(), path, dir_owner).map_err(Unreachable::Untrusted)?;
    Ok(fd)
}

/// Why no connection was made.
enum Unreachable {
    /// Nobody listens there (or the socket cannot be made): a broker may be
    /// started.
    NoBroker(std::io::Error),
    /// Something there is not to be trusted: give up, say nothing to it.
    Untrusted(std::io::Error),
}

fn greet(socket: OwnedFd) -> Result<Connection, Broken> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let socket_identity = sys::file_identity(socket.as_fd());
    let mut conn = Connection {
        socket,
        seq: 0,
        recv_buf: vec![0; MAX_MESSAGE_SIZE],
        tag: 0,
        serial: SERIAL.fetch_add(1, Ordering::Relaxed) + 1,
        system: false,
        close_ring: CloseRingState::NotAsked,
        delivered: false,
        socket_identity,
        requests: 0,
        doorbell: Doorbell::NotAsked,
    };
    match conn.exchange(
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
        &[],
    )? {
        (Ok(Reply::Hello { client_tag, .. }), _) => {
            conn.tag = client_tag;
            Ok(conn)
        }
        (Ok(_), _) => Err(Broken::Protocol("unexpected reply to Hello".into())),
        (Err(e), _) => Err(Broken::Refused(e)),
    }
}

/// The environment variable that, when set (to anything but `0`), makes a
/// failed broker start print its reason on stderr, besides returning it.
pub const DEBUG_START_ENV: &str = "OBJMGR_DEBUG_START";

/// Starts a broker for `location` and returns once it accepts connections.
fn start_broker(location: &SocketLocation) -> Result<()> {
    let result = start_broker_inner(location);
    if let Err(e) = &result
        && std::env::var_os(DEBUG_START_ENV).is_some_and(|v| v != "0")
    {
        eprintln!("objmgr: {e}");
    }
    result
}

fn start_broker_inner(location: &SocketLocation) -> Result<()> {
    let program = rendezvous::find_broker_program(
        std::env::var_os(rendezvous::BROKER_ENV),
        rendezvous::built_in_path().map(Path::new),
        std::env::var_os("PATH"),
    )
    .map_err(|e| {
        Error::new(
            io_code(&e, ERROR_SERVICE_NOT_ACTIVE),
            format!("cannot start the objmgr broker: {e}"),
        )
    })?;
    let mut cmd = Command::new(&program);
    cmd.arg("--daemon");
    if !location.is_default {
        cmd.arg("--socket").arg(&location.socket);
    }
    let output = cmd.stdin(Stdio::null()).output().map_err(|e| {
        Error::new(
            ERROR_SERVICE_NOT_ACTIVE,
            format!("cannot start the objmgr broker {}: {e}", program.display()),
        )
    })?;
    if !output.status.success() {
        return Err(Error::new(
            ERROR_SERVICE_NOT_ACTIVE,
            format!(
                "the objmgr broker {} failed to start: {}",
                program.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// The Win32 code for a rendezvous failure: a refusal to trust something is
/// `ERROR_ACCESS_DENIED`; anything else is `otherwise`.
fn io_code(e: &std::io::Error, otherwise: Win32Error) -> Win32Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        crate::error::ERROR_ACCESS_DENIED
    } else {
        otherwise
    }
}

static AUTOSTART: AtomicBool = AtomicBool::new(true);

/// Whether this process starts a broker when none answers (default: yes).
/// Inspection tools turn it off so that looking never starts a broker.
pub fn set_autostart(enabled: bool) {
    AUTOSTART.store(enabled, Ordering::Relaxed);
}

/// How long a process waits for the system broker's service manager to
/// start a new broker after one died.
const SYSTEM_RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The system-wide broker, when one runs (its socket is there, in root's
/// directory, and root answers): every process then uses it. `None` when
/// there is none (the per-user broker is used). A broker there that refuses
/// this process is an error; so is an unsafe place named by
/// `$OBJMGR_SYSTEM_SOCKET`.
///
/// A system broker that died (killed, crashed) left its journal: its service
/// manager starts another, which is waited for up to `patience`, so that no
/// process goes on with a per-user broker meanwhile (where a name would
/// mean another object). A connection the dying broker took, and dropped,
/// is tried again too.
fn system_broker(patience: std::time::Duration) -> Result<Option<Connection>> {
    let location = rendezvous::system_location();
    let named = std::env::var_os(rendezvous::SYSTEM_SOCKET_ENV).is_some_and(|v| !v.is_empty());
    // (Its socket may be gone for a moment while one that died is
    // replaced: then its journal is there.)
    if std::fs::symlink_metadata(&location.socket).is_err() && !location.journal_path().exists() {
        return Ok(None);
    }
    let path = location.socket.display().to_string();
    let unsafe_place = |why: String| {
        Error::new(
            crate::error::ERROR_ACCESS_DENIED,
            format!("the system objmgr broker at {path}: {why}"),
        )
    };
    match rendezvous::prepare_dir(&location, false) {
        Ok(0) => {}
        Ok(owner) if named => {
            return Err(unsafe_place(format!(
                "its directory belongs to uid {owner}, not root"
            )));
        }
        Err(e) if named => return Err(unsafe_place(e.to_string())),
        _ => return Ok(None),
    }
    let waited_since = std::time::Instant::now();
    let restarting = || waited_since.elapsed() < patience && location.journal_path().exists();
    loop {
        let Ok(socket) = connect_socket(&location, 0) else {
            if restarting() {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            return Ok(None); // not running: the per-user broker serves
        };
        match rendezvous::peer_of(socket.as_fd()) {
            Ok(peer) if peer.uid == 0 => {}
            _ => return Err(unsafe_place("it does not run as root".into())),
        }
        match greet(socket) {
            Ok(conn) => {
                return Ok(Some(Connection {
                    system: true,
                    ..conn
                }));
            }
            Err(Broken::Refused(e)) => {
                return Err(Error::new(
                    e.code(),
                    format!(
                        "the system objmgr broker at {path} refused this process: {}",
                        e.context()
                    ),
                ));
            }
            Err(Broken::Connection(_) | Broken::Protocol(_)) if restarting() => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(Broken::Connection(_) | Broken::Protocol(_)) => return Ok(None),
            Err(Broken::NotSent(e)) => return Err(e),
        }
    }
}

/// Connects to the broker, starting one if none answers.
fn establish() -> Result<Connection> {
    if rendezvous::privileged_execution() {
        return Err(Error::new(
            crate::error::ERROR_ACCESS_DENIED,
            "objmgr does not run in set-user-ID, set-group-ID or file-capability programs: \
             their environment (OBJMGR_SOCKET, OBJMGR_BROKER, PATH) is their caller's",
        ));
    }
    if std::env::var_os(rendezvous::SOCKET_ENV).is_none_or(|v| v.is_empty())
        && let Some(conn) = system_broker(SYSTEM_RESTART_WAIT)?
    {
        return Ok(conn);
    }
    per_user_broker()
}

/// Connects to the per-user broker, starting one if none answers.
fn per_user_broker() -> Result<Connection> {
    let location = rendezvous::location_from_env();
    let autostart = AUTOSTART.load(Ordering::Relaxed);
    let socket_path = location.socket.display().to_string();
    let refused = |e: Error| {
        Error::new(
            e.code(),
            format!(
                "the objmgr broker at {socket_path} refused this process: {}",
                e.context()
            ),
        )
    };
    let unsafe_place = |e: std::io::Error| {
        Error::new(
            io_code(&e, ERROR_SERVICE_NOT_ACTIVE),
            format!("objmgr broker at {socket_path}: {e}"),
        )
    };
    // Nothing is sent anywhere before the directory is known to be private.
    let dir_owner = rendezvous::prepare_dir(&location, autostart).map_err(unsafe_place)?;
    match connect_socket(&location, dir_owner) {
        Ok(socket) => match greet(socket) {
            Ok(conn) => return Ok(conn),
            Err(Broken::Refused(e)) => return Err(refused(e)),
            Err(Broken::NotSent(e)) => return Err(e),
            Err(Broken::Connection(why) | Broken::Protocol(why)) if !autostart => {
                return Err(Error::new(
                    ERROR_SERVICE_NOT_ACTIVE,
                    format!("the objmgr broker did not answer: {why}"),
                ));
            }
            Err(_) => {}
        },
        Err(Unreachable::Untrusted(e)) => return Err(unsafe_place(e)),
        // Root inspecting another user's broker never starts one there.
        Err(Unreachable::NoBroker(e))
            if !autostart || (dir_owner != rendezvous::current_uid() && dir_owner != 0) =>
        {
            return Err(Error::new(
                ERROR_SERVICE_NOT_ACTIVE,
                format!("no objmgr broker is running at {socket_path}: {e}"),
            ));
        }
        Err(Unreachable::NoBroker(_)) => {}
    }
    let mut last = String::from("no attempt made");
    for _ in 0..8 {
        let dir_owner = rendezvous::prepare_dir(&location, true).map_err(unsafe_place)?;
        // Under the start-up lock, at most one process starts a broker, and
        // a broker cannot finish exiting while we connect.
        // Starting a broker takes well under a second; one that takes
        // longer than this holds every other process back.
        let patience = std::time::Duration::from_secs(30);
        let Some(lock) =
            rendezvous::StartLock::acquire(&location, patience).map_err(unsafe_place)?
        else {
            continue;
        };
        let socket = match connect_socket(&location, dir_owner) {
            Ok(socket) => socket,
            Err(Unreachable::Untrusted(e)) => return Err(unsafe_place(e)),
            Err(Unreachable::NoBroker(_)) => {
                start_broker(&location)?;
                match connect_socket(&location, dir_owner) {
                    Ok(socket) => socket,
                    Err(Unreachable::Untrusted(e)) => return Err(unsafe_place(e)),
                    Err(Unreachable::NoBroker(e)) => {
                        return Err(Error::new(
                            ERROR_SERVICE_NOT_ACTIVE,
                            format!("connecting to the objmgr broker at {socket_path}: {e}"),
                        ));
                    }
                }
            }
        };
        drop(lock);
        match greet(socket) {
            Ok(conn) => return Ok(conn),
            Err(Broken::Refused(e)) => return Err(refused(e)),
            Err(Broken::NotSent(e)) => return Err(e),
            // The broker was exiting as we connected; the next round starts another.
            Err(Broken::Connection(why) | Broken::Protocol(why)) => last = why,
        }
    }
    Err(Error::new(
        ERROR_SERVICE_NOT_ACTIVE,
        format!("cannot reach the objmgr broker at {socket_path}: {last}"),
    ))
}

/// The process-wide connection and who owns it.
#[derive(Debug)]
struct Shared {
    conn: Option<Connection>,
    /// Handles of this connection whose close may fail, so that closing one
    /// must wait for the broker's answer: those this process protected from
    /// close, and those it did not make itself (inherited, or duplicated in
    /// by another process), whose flags it did not set.
    closes_may_fail: Vec<u32>,
    /// The handles of this session, for a broker that replaces a dead one.
    held: Holdings,
    /// The tag of a session that ended with its broker (and whether that
    /// was the system broker), when no broker could be told yet that the
    /// process is not coming back: said first on the next connection to a
    /// broker of that kind, so that a broker taking over stops waiting for
    /// it (and reaps what its threads owned).
    leave_pending: Option<(u16, bool)>,
}

impl Shared {
    /// Forgets the connection; every handle of its session is gone with it.
    fn drop_connection(&mut self) {
        self.conn = None;
        self.closes_may_fail.clear();
        self.held.clear();
    }

    fn set_close_may_fail(&mut self, handle: Handle, may_fail: bool) {
        self.closes_may_fail.retain(|&h| h != handle.0);
        if may_fail {
            self.closes_may_fail.push(handle.0);
        }
    }
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    conn: None,
    closes_may_fail: Vec::new(),
    leave_pending: None,
    held: Holdings::new(),
});

thread_local! {
    /// Whether this thread holds `SHARED` (through a [`Locked`]).
    static HOLDS_SHARED: Cell<bool> = const { Cell::new(false) };
    /// The library's locks (`SHARED` first), taken by the thread calling
    /// `fork()` for the time of the fork, so that no other thread holds one
    /// when the process is copied.
    static HELD_ACROSS_FORK: RefCell<Vec<Box<dyn std::any::Any>>> =
        const { RefCell::new(Vec::new()) };
}

/// `SHARED`, locked by this thread.
/// When it is let go after a session ended under it, the sleepers of that
/// session are woken once (the watcher keeps at it, if one runs).
struct Locked(Option<MutexGuard<'static, Shared>>);

fn lock_shared() -> Locked {
    let guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    HOLDS_SHARED.set(true);
    Locked(Some(guard))
}

impl Drop for Locked {
    fn drop(&mut self) {
        HOLDS_SHARED.set(false);
        drop(self.0.take());
        // A load first: every call lets go of the lock, sessions rarely end.
        if WAKE_DUE.load(Ordering::Acquire) && WAKE_DUE.swap(false, Ordering::AcqRel) {
            objmgr_sync::lifeline::wake_sleepers_once();
        }
    }
}

impl std::ops::Deref for Locked {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Shared {
        self.0.as_mut().expect("held until dropped")
    }
}

/// Runs in the thread calling `fork()`, before the copy: takes the
/// library's locks (`SHARED`, then the arena list, then the thread numbers;
/// no other code holds one of them while taking another), so that the child
/// does not start with one locked by a thread that does not exist there (its
/// first call would wait forever). A call in flight on another thread
/// finishes first. A thread that forks while it holds `SHARED` itself
/// releases it in both processes.
extern "C" fn before_fork() {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::with_capacity(4);
    if !HOLDS_SHARED.try_with(Cell::get).unwrap_or(true) {
        held.push(Box::new(SHARED.lock().unwrap_or_else(|p| p.into_inner())));
    }
    held.push(crate::sync::lock_arenas_for_fork());
    held.push(crate::owner::lock_numbers_for_fork());
    held.push(objmgr_sync::lifeline::lock_for_fork());
    let _ = HELD_ACROSS_FORK.try_with(|slot| *slot.borrow_mut() = held);
    // (Only while there is a connection to hide from the child: a child of
    // a child keeps its parent's placeholder, which is then still known.)
    if CONNECTION_FD.load(Ordering::Acquire) >= 0 || DOORBELL_FD.load(Ordering::Acquire) >= 0 {
        sys::make_fork_placeholder();
    }
}

/// Runs in the parent after `fork()`: gives the locks back.
extern "C" fn after_fork_in_parent() {
    sys::drop_fork_placeholder();
    let _ = HELD_ACROSS_FORK.try_with(|held| held.borrow_mut().clear());
}
/// The pid that owns `SHARED.conn`; another pid means we are a forked child.
static OWNER_PID: AtomicU32 = AtomicU32::new(0);
/// Bumped whenever a new connection replaces an old one: handles from an
/// older generation belong to a broker session that is gone (or to the parent
/// of a forked child) and are invalid here.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The connection's descriptor number, for the fork handler (-1: none).
static CONNECTION_FD: AtomicI32 = AtomicI32::new(-1);

/// Runs in the child after `fork()`: the parent's connection must not stay
/// open here (the broker learns of a process's death when its connection
/// closes, and would never see the parent die while this child lives), and
/// every handle of the parent's session is invalid in the child.
extern "C" fn forked_child() {
    sys::neutralize_fds(&[&CONNECTION_FD, &DOORBELL_FD].map(|n| n.swap(-1, Ordering::AcqRel)));
    sys::drop_fork_placeholder();
    forget_watch();
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let _ = HELD_ACROSS_FORK.try_with(|held| held.borrow_mut().clear());
    objmgr_sync::lifeline::forget_other_threads();
}

/// The current handle generation without the `fork()` check: for data-plane
/// operations, which must not make a system call. It is kept where a forked
/// child reads 0, which no handle has, so the parent's handles fail there
/// at once however the child was made (without the page, after a `fork()`
/// the handler above has moved it already).
#[inline]
pub(crate) fn current_generation() -> u64 {
    match sys::fork_wiped_word() {
        Some(word) => word.load(Ordering::Acquire),
        None => GENERATION.load(Ordering::Acquire),
    }
}

/// Makes `generation` the one data-plane operations check handles against:
/// only in the process that made the connection (never in a forked child
/// before it has connected, whose wiped word keeps every inherited handle
/// invalid and sends [`generation`] to its `fork()` check).
fn publish_generation(generation: u64) {
    if let Some(word) = sys::fork_wiped_word() {
        word.store(generation, Ordering::Release);
    }
}

/// The current handle generation, after checking for `fork()`.
pub(crate) fn generation() -> u64 {
    if sys::fork_wiped_word().is_some_and(|word| word.load(Ordering::Acquire) != 0) {
        // Set by this very process when it connected: no fork to look for.
        return GENERATION.load(Ordering::Acquire);
    }
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let owner = OWNER_PID.load(Ordering::Acquire);
    if owner != 0 && owner != pid {
        // A forked child: nothing it inherited from the parent's session is its own.
        let mut shared = lock_shared();
        if OWNER_PID.load(Ordering::Acquire) != pid {
            // No handler ran if a bare `clone` made this child; if one did,
            // the child's code has run since, and may have closed what it
            // inherited and opened files of its own under those numbers.
            let socket = shared.conn.as_ref().and_then(|conn| conn.socket_identity);
            let watch = WATCH_FD.swap(-1, Ordering::AcqRel);
            if watch >= 0 {
                sys::close_inherited_if_ours(watch, socket); // a copy of the socket
            }
            objmgr_sync::lifeline::forget_other_threads();
            if let Some(conn) = shared.conn.take() {
                conn.release_in_child();
            }
            CONNECTION_FD.store(-1, Ordering::Release);
            DOORBELL_FD.store(-1, Ordering::Release);
            shared.held.release_in_child();
            shared.drop_connection();
            OWNER_PID.store(0, Ordering::Release);
            GENERATION.fetch_add(1, Ordering::AcqRel);
        }
    }
    GENERATION.load(Ordering::Acquire)
}

/// The shared state with a live connection (made now if needed), and the
/// handle generation it belongs to.
fn connected() -> Result<(Locked, u64)> {
    generation(); // drops a connection inherited across fork()
    let mut shared = lock_shared();
    // Read under the lock: another thread may have replaced the connection.
    let mut generation = GENERATION.load(Ordering::Acquire);
    if shared.conn.is_none() {
        static FORK_HANDLER: std::sync::Once = std::sync::Once::new();
        FORK_HANDLER.call_once(|| {
            sys::on_fork(before_fork, after_fork_in_parent, forked_child);
        });
        let mut conn = establish()?;
        if let Some((tag, system)) = shared.leave_pending
            && system == conn.system
        {
            shared.leave_pending = None;
            leave(&mut conn, tag);
        }
        CONNECTION_FD.store(conn.socket.as_raw_fd(), Ordering::Release);
        shared.conn = Some(conn);
        OWNER_PID.store(
            rustix::process::getpid().as_raw_nonzero().get() as u32,
            Ordering::Release,
        );
        generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
        publish_generation(generation);
        watch(shared.conn.as_ref().expect("connected"));
    }
    Ok((shared, generation))
}

/// This process's tag in shared sync state (connecting if needed), and the
/// generation it belongs to.
pub(crate) fn client_tag() -> Result<(u16, u64)> {
    let (shared, generation) = connected()?;
    Ok((shared.conn.as_ref().expect("connected").tag, generation))
}

/// Closes a handle of generation `generation` that this process holds (a
/// no-op if that broker session is gone, or this is a forked child: the
/// handle is closed already).
///
/// A handle this process made itself, and did not protect from close, cannot
/// fail to close, so the close is sent without waiting for a reply: the
/// broker carries it out before it serves any request sent after it, from
/// any process, which keeps `CloseHandle`'s guarantee (once it returns, the
/// object is closed for everyone) at the cost of one message, not a round
/// trip. Any other close waits for the broker's answer, so that a failure is
/// reported.
pub(crate) fn close_handle(handle: Handle, handle_generation: u64, what: &str) -> Result<()> {
    close(handle, handle_generation, what, false)
}

/// Closes a handle and waits until the broker has done so: what the close
/// of a file (or a section over one) needs, so that a name it removes (a
/// pending delete, `FILE_FLAG_DELETE_ON_CLOSE`) is gone when the close
/// returns, as on Windows.
pub(crate) fn close_handle_and_wait(
    handle: Handle,
    handle_generation: u64,
    what: &str,
) -> Result<()> {
    close(handle, handle_generation, what, true)
}

fn close(handle: Handle, handle_generation: u64, what: &str, wait: bool) -> Result<()> {
    if handle_generation != generation() {
        return Ok(());
    }
    let (mut shared, generation) = connected()?;
    if generation != handle_generation {
        return Ok(()); // the connection was replaced meanwhile: closed with it
    }
    let within = |e: Error| {
        Error::new(
            e.code(),
            format!("closing {what} handle {:#x}: {}", handle.0, e.context()),
        )
    };
    if wait || shared.closes_may_fail.contains(&handle.0) {
        let protected = shared.held.is_protected(handle);
        let conn = shared.conn.as_mut().expect("connected");
        let outcome = conn.exchange(&Request::Close { handle }, &[]);
        let lost = matches!(outcome, Err(Broken::Connection(_)));
        // Closed; or the broker died under the close, and the handle is not
        // taken to the next one (closed either way), unless it is protected
        // from close (the close would have failed). Refused: still open.
        if matches!(outcome, Ok((Ok(_), _))) || (lost && !protected) {
            shared.held.forget(handle);
        }
        let reply = match settle(&mut shared, outcome) {
            Ok((reply, _)) => reply.map_err(within)?,
            Err(_) if lost && !protected && still(&shared, generation) => return Ok(()),
            Err(e) => return Err(within(e)),
        };
        shared.set_close_may_fail(handle, false);
        drop(shared);
        if let Reply::Value(ticket) = reply
            && ticket != 0
            && wait
        {
            wait_for_removal(ticket);
        }
        return Ok(());
    }
    // A close that frees nothing (another handle of this process holds the
    // same section) waits in the close ring, which the broker reads before
    // it serves any request: no message, nobody woken. One that may free
    // its section goes there too if the connection has a doorbell, which
    // wakes the broker to free it at once (cheaper than a message).
    let ring_close = shared.held.ring_close(handle);
    let conn = shared.conn.as_mut().expect("connected");
    let left = match ring_close {
        Some((close, false)) => conn.leave_close(close),
        Some((close, true)) => conn.leave_freeing_close(close),
        None => Ok(false),
    };
    let sent = match left {
        Ok(true) => Ok(()),
        Ok(false) => conn.send(&Request::CloseNoReply { handle }, &[]),
        Err(broken) => Err(broken),
    };
    let lost = matches!(sent, Err(Broken::Connection(_)));
    if sent.is_ok() || lost {
        shared.held.forget(handle);
    }
    match settle(&mut shared, sent) {
        // A new broker took the session over without this handle.
        Err(_) if lost && still(&shared, generation) => Ok(()),
        other => other.map_err(within),
    }
}

/// Whether the session of `generation` still goes on (with a new broker).
fn still(shared: &Shared, generation: u64) -> bool {
    shared.conn.is_some() && GENERATION.load(Ordering::Acquire) == generation
}

/// Waits (at most a few seconds) until the broker has removed the name a
/// close made due: the broker does it off its own thread, and Windows has
/// the name gone when `CloseHandle` returns. Asked between short sleeps,
/// without holding the connection.
fn wait_for_removal(ticket: u32) {
    let request = Request::FileControl {
        op: objmgr_proto::wire::FileOp::RemovalDone,
        handle: Handle(0),
        value: u64::from(ticket),
        name: String::new(),
    };
    let mut pause = std::time::Duration::from_micros(20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match call(&request, None) {
            Ok((Reply::Value(0), ..)) => {}
            _ => return, // done, or nothing more to learn
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}

/// `QueryHandle`: what the broker knows of a handle this process holds but
/// did not make (inherited, or duplicated in by another process). Its close
/// may fail (it may be protected from close), so closing it will wait for
/// the broker's answer.
pub(crate) fn query_handle(handle: Handle) -> Result<(Reply, Option<OwnedFd>, u64)> {
    let (mut shared, generation) = connected()?;
    let (reply, fd) = exchange_locked(&mut shared, &Request::QueryHandle { handle }, &[])?;
    shared.set_close_may_fail(handle, true);
    if let Reply::Sync(grant) = &reply {
        shared.held.note_arena(grant, fd.as_ref());
    }
    shared.held.note_by_value(handle);
    Ok((reply, fd, generation))
}

/// `HandleFlags` (`Get`/`SetHandleInformation`): sets the flags in `mask` to
/// their values in `flags` and returns the flags from before. Under the same
/// lock, notes whether the handle is now protected from close, so that no
/// close on another thread can slip between the two.
pub(crate) fn handle_flags(handle: Handle, mask: u32, flags: u32) -> Result<u32> {
    let (mut shared, _) = connected()?;
    set_flags_locked(&mut shared, handle, mask, flags)
}

fn set_flags_locked(shared: &mut Shared, handle: Handle, mask: u32, flags: u32) -> Result<u32> {
    use objmgr_proto::process::HANDLE_FLAG_PROTECT_FROM_CLOSE as PROTECT;
    let request = Request::HandleFlags {
        handle,
        mask,
        flags,
    };
    let Reply::Value(before) = exchange_locked(shared, &request, &[])?.0 else {
        return Err(Error::new(
            crate::error::ERROR_INVALID_DATA,
            "unexpected reply to HandleFlags",
        ));
    };
    if mask & PROTECT != 0 {
        shared.set_close_may_fail(handle, flags & PROTECT != 0);
    } else if before & PROTECT != 0 {
        shared.set_close_may_fail(handle, true);
    }
    shared.held.set_flags(handle, mask, flags);
    Ok(before)
}

/// [`handle_flags`] for a handle of generation `handle_generation`: nothing
/// (and no connection made) if that session is gone.
pub(crate) fn handle_flags_of(
    handle: Handle,
    handle_generation: u64,
    mask: u32,
    flags: u32,
) -> Result<()> {
    if handle_generation != generation() {
        return Ok(());
    }
    let (mut shared, generation) = connected()?;
    if generation != handle_generation {
        return Ok(()); // the connection was replaced meanwhile
    }
    set_flags_locked(&mut shared, handle, mask, flags).map(|_| ())
}

/// One exchange on the locked, live connection.
fn exchange_locked(
    shared: &mut Shared,
    request: &Request,
    fds: &[BorrowedFd<'_>],
) -> Result<(Reply, Option<OwnedFd>)> {
    exchange_noting(shared, request, fds).0
}

/// How far a broker that died got with the request it was asked last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reached {
    /// It never began to serve it (or it never reached the broker): it may
    /// be sent to a new broker, whatever it is.
    NotBegun,
    /// It finished it, which left this (see `close_ring::Progress`).
    Finished([u32; objmgr_sync::close_ring::RESULT_WORDS]),
    /// It may have done it, or part of it.
    Unknown,
}

/// Requests whose outcome a process wants to learn should its broker die
/// before it answers (they act outside the broker, so they are not simply
/// sent again): the connection's page says how far the broker got.
fn acts_outside_the_broker(request: &Request) -> bool {
    matches!(
        request,
        Request::SyncRemote { .. }
            | Request::Spawn { .. }
            | Request::Terminate { .. }
            | Request::Duplicate { .. }
            | Request::JobControl { .. }
            | Request::FileControl { .. }
    )
}

/// One exchange on the locked, live connection, whose grants (and the fd
/// that came with them) the connection notes for a broker that may replace
/// this one. If the broker died under it and a new one took the session
/// over, a request that acts only inside the broker is sent again there
/// (`Request::repeatable_after_rejoin`): whatever the dead broker did of
/// it died with it. So is any request the dead broker never began to serve,
/// and a remote operation it finished gives what it left in the
/// connection's page (see [`Reached`]). Also says whether the broker was
/// lost.
fn exchange_noting(
    shared: &mut Shared,
    request: &Request,
    fds: &[BorrowedFd<'_>],
) -> (Result<(Reply, Option<OwnedFd>)>, bool) {
    let generation = GENERATION.load(Ordering::Acquire);
    // (Each time a new broker took the session over; each lost broker is
    // replaced at most `REJOIN_ATTEMPTS` times in a row anyway.)
    let mut sent_again = 0;
    loop {
        let conn = shared.conn.as_mut().expect("connected");
        let paged = match acts_outside_the_broker(request) {
            true => conn.page().err(),
            false => None,
        };
        // (A broker lost meanwhile is noticed by the exchange below.)
        if let Some(broken @ (Broken::Protocol(_) | Broken::Refused(_))) = paged
            && let Err(e) = settle::<()>(shared, Err(broken))
        {
            return (Err(e), false);
        }
        let conn = shared.conn.as_mut().expect("connected");
        let outcome = conn.exchange(request, fds);
        let lost = matches!(outcome, Err(Broken::Connection(_)));
        // (Read only when the broker was lost: not on every answer.)
        let reached = if !lost {
            Reached::Unknown
        } else {
            match (conn.delivered, conn.progress()) {
                (false, _) => Reached::NotBegun,
                (true, Some(progress)) if progress.finished == conn.seq => {
                    Reached::Finished(progress.result)
                }
                (true, Some(progress)) if progress.began != conn.seq => Reached::NotBegun,
                _ => Reached::Unknown,
            }
        };
        if lost && reached != Reached::NotBegun {
            shared.held.note_lost(request);
        }
        match settle(shared, outcome) {
            Ok((reply, mut received)) => {
                shared
                    .held
                    .note_reply(request, reply.as_ref().ok(), &mut received, fds);
                return (reply.map(|reply| (reply, received)), false);
            }
            Err(e) if lost && still(shared, generation) => {
                // A remote operation the broker finished gives its outcome;
                // one that took nothing, or found the object busy, changed
                // nothing: it is sent again.
                let finished = match reached {
                    Reached::Finished(result) if matches!(request, Request::SyncRemote { .. }) => {
                        RemoteReply::from_words(result)
                    }
                    _ => None,
                };
                let took_nothing = finished.as_ref().is_some_and(|reply| {
                    matches!(reply.outcome, RemoteOutcome::NotYet | RemoteOutcome::Busy)
                });
                if let Some(reply) = finished.filter(|_| !took_nothing) {
                    return (Ok((Reply::Remote(reply), None)), true);
                }
                let again = request.repeatable_after_rejoin()
                    || reached == Reached::NotBegun
                    || took_nothing;
                if sent_again == REJOIN_ATTEMPTS || !again {
                    return (Err(e), lost);
                }
                sent_again += 1;
            }
            Err(e) => return (Err(e), lost),
        }
    }
}

/// The watcher's descriptor (a duplicate of the connection's), for the
/// `fork()` handler: a child must not keep its parent's connection open.
static WATCH_FD: AtomicI32 = AtomicI32::new(-1);

/// Watches `conn` from a thread of its own. When the broker hangs up (it
/// exited, or was killed) the session goes to a new broker at once
/// ([`lost`]): every handle comes back, or, if they cannot, every handle of
/// the session dies at once, as if the process had lost them all (the
/// generation moves, so that every operation on one fails with
/// `ERROR_INVALID_HANDLE`, also those that never reach the broker, and
/// every wait in the process is woken to fail the same way). Either way no
/// two processes go on believing they share an object that one of them has
/// lost.
///
/// Best effort: without a thread (a limit on threads), a lost broker is
/// noticed at the next call that reaches it, as before.
fn watch(conn: &Connection) {
    let serial = conn.serial;
    let Ok(watched) = rustix::io::fcntl_dupfd_cloexec(&conn.socket, 0) else {
        return;
    };
    // (A watcher of an older connection may still be on its way out: its
    // descriptor is its own to close.)
    WATCH_FD.store(watched.as_raw_fd(), Ordering::Release);
    let watcher = std::thread::Builder::new()
        .name("objmgr-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let hung_up = wait_for_hang_up(&watched);
            let fd = watched.as_raw_fd();
            let _ = WATCH_FD.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire);
            drop(watched);
            if hung_up {
                broker_gone(serial);
            }
        });
    if watcher.is_err() {
        WATCH_FD.store(-1, Ordering::Release);
    }
}

/// Waits until `socket` hangs up (true), or until it cannot be watched any
/// more (false: `poll` failed, or the program closed the descriptor).
fn wait_for_hang_up(socket: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [PollFd::new(socket, PollFlags::RDHUP)];
        match poll(&mut fds, None) {
            Err(Errno::INTR) => continue,
            Err(_) => return false,
            Ok(_) => {}
        }
        let revents = fds[0].revents();
        if revents.contains(PollFlags::NVAL) {
            return false;
        }
        if revents.intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR) {
            return true;
        }
    }
}

/// Connection `serial` hung up: if it is still the process's, its session
/// goes to a new broker ([`rejoin`]), or is over. Either way, the waits of a
/// session that ended (here, or in [`settle`] when a call noticed first) are
/// woken.
fn broker_gone(serial: u64) {
    // First without the lock: a call that noticed first ended the session
    // already, and may hold the lock for long (it starts a new broker).
    objmgr_sync::lifeline::wake_sleepers();
    {
        let mut shared = lock_shared();
        if shared
            .conn
            .as_ref()
            .is_some_and(|conn| conn.serial == serial)
        {
            lost(&mut shared);
        }
    }
    objmgr_sync::lifeline::wake_sleepers();
}

/// The broker of the connection hung up (under `SHARED`): the session goes
/// on with a new broker if one takes every handle back ([`rejoin`]), else
/// it ends. A broker that died left its journal: the one that replaces it
/// (a per-user broker started here, or the system broker its service
/// manager starts, which is waited for) is told that a process whose
/// session ends is not coming back ([`give_up`]), so that it need not wait
/// for it.
fn lost(shared: &mut Shared) {
    let Some(old) = shared.conn.take() else {
        return end_session(shared);
    };
    CONNECTION_FD.store(-1, Ordering::Release);
    // The watcher's duplicate would keep the old socket open.
    let _ = net::shutdown(&old.socket, net::Shutdown::Both);
    // A broker that exited on purpose (stopped, idle) removed its journal:
    // none will take the handles back, so none is started for it. The
    // system broker's service manager starts a new one (see
    // `system_broker`), which does not take sections over files back.
    let system = old.system;
    let location = match system {
        true => rendezvous::system_location(),
        false => rendezvous::location_from_env(),
    };
    if !location.journal_path().exists() {
        return end_session(shared);
    }
    if system && shared.held.holds_file_sections() {
        return give_up(shared, old.tag, None, system);
    }
    // A new broker that dies while the handles are on their way to it is
    // replaced in turn (its journal names this process still).
    let mut brokers_lost = false;
    for _ in 0..REJOIN_ATTEMPTS {
        let Some(steps) = shared.held.steps(old.tag) else {
            return give_up(shared, old.tag, None, system);
        };
        match rejoin(shared, old.tag, steps, system) {
            Rejoined::Yes => return,
            Rejoined::BrokerLost => {
                brokers_lost = true;
                continue;
            }
            // Refused at once (a process that was given handles).
            Rejoined::Refused(conn) => return give_up(shared, old.tag, Some(conn), system),
            // (A new broker reaps the tag when the connection it took some
            // handles back on closed, or when the process next connects.)
            Rejoined::Failed => {
                brokers_lost = false;
                break;
            }
        }
    }
    if brokers_lost {
        // Every new broker died under it: the next one need not wait.
        give_up(shared, old.tag, None, system);
    } else {
        end_session(shared);
    }
}

/// The process does not come back to a new broker: its session ends now
/// (and its waits are woken at once), then the broker (on `conn`, or on a
/// new connection) is told that the process that had `tag` is not coming
/// back, so that it need not wait for it and may reap the tag.
fn give_up(shared: &mut Shared, tag: u16, conn: Option<Connection>, system: bool) {
    end_session(shared);
    objmgr_sync::lifeline::wake_sleepers_once();
    // (Its session is over: no waiting for a system broker to be back.)
    let conn = conn.or_else(|| new_broker(system, std::time::Duration::ZERO).ok());
    match conn {
        Some(mut conn) => leave(&mut conn, tag),
        None => shared.leave_pending = Some((tag, system)),
    }
}

/// Tells the broker on `conn` that the process that had `tag` with a broker
/// that died is not coming back.
fn leave(conn: &mut Connection, tag: u16) {
    let step = objmgr_proto::wire::ReclaimStep::Leave { tag };
    let _ = conn.exchange(&Request::Reclaim { step }, &[]);
}

/// A connection to the broker that replaces a lost one of the same kind: the
/// system broker (started again by its service manager: waited for, see
/// [`system_broker`]), or a per-user one (started if need be). A process
/// of one never goes on with the other.
fn new_broker(system: bool, patience: std::time::Duration) -> Result<Connection> {
    if system {
        return system_broker(patience)?.ok_or_else(|| {
            Error::new(
                crate::error::ERROR_BROKEN_PIPE,
                "the system objmgr broker did not come back",
            )
        });
    }
    per_user_broker()
}

/// How many new brokers a process tries to take its session to, one after
/// another, when each dies while it does.
const REJOIN_ATTEMPTS: usize = 3;

/// How [`rejoin`] went.
enum Rejoined {
    /// The new broker took every handle back.
    Yes,
    /// It refused at once (`Begin`): nothing was taken back, and this is
    /// the connection to say the process leaves on.
    Refused(Connection),
    /// It died on the way (another may be started).
    BrokerLost,
    /// No broker, or it refused a handle.
    Failed,
}

/// Takes the session to a new broker (started if need be): re-announces
/// every handle of the process (`steps`, from [`Holdings::steps`]), keeping
/// the process's tag. If the new broker takes them all, handles, the
/// generation and threads' identities stay as they were, and waits go on;
/// otherwise the caller ends the session (see [`Rejoined`]).
fn rejoin(
    shared: &mut Shared,
    tag: u16,
    steps: Vec<crate::reclaim::Step>,
    system: bool,
) -> Rejoined {
    let Ok(mut conn) = new_broker(system, SYSTEM_RESTART_WAIT) else {
        return Rejoined::Failed;
    };
    for (n, (step, fds)) in steps.into_iter().enumerate() {
        let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|fd| fd.as_fd()).collect();
        match conn.exchange(&Request::Reclaim { step }, &fds) {
            Ok((Ok(Reply::Done), _)) => {}
            Ok((Err(_), _)) if n == 0 => return Rejoined::Refused(conn),
            Err(Broken::Connection(_)) => return Rejoined::BrokerLost,
            // The new broker forgets what it took back when this
            // connection closes.
            _ => return Rejoined::Failed,
        }
    }
    conn.tag = tag;
    CONNECTION_FD.store(conn.socket.as_raw_fd(), Ordering::Release);
    watch(&conn);
    shared.conn = Some(conn);
    shared.held.forget_objects();
    Rejoined::Yes
}

/// What `pick` finds in the connection's note of `handle` (of generation
/// `handle_generation`): the descriptor a broker that replaces a dead one
/// takes the object back by, which the handle's own object shares.
pub(crate) fn held<T>(
    handle: Handle,
    handle_generation: u64,
    pick: impl FnOnce(&Holdings, Handle) -> Option<T>,
) -> Option<T> {
    let shared = lock_shared();
    still(&shared, handle_generation)
        .then(|| pick(&shared.held, handle))
        .flatten()
}

/// Ends the connection's session (under `SHARED`): its handles die, and so
/// do waits on them. First the generation moves, then the lifeline: a wait
/// that found its handles current has read the lifeline before it moved (so
/// it will not sleep, or is woken); a wait that begins after this, on a new
/// connection (made under `SHARED`), reads the moved lifeline.
///
/// The lifeline moves before the socket is shut down, which wakes the
/// watcher: its first wake (without the lock) then sees the cut. The thread
/// that holds `SHARED` also wakes the sleepers once when it lets go (see
/// [`Locked`]), in case no watcher runs.
fn end_session(shared: &mut Shared) {
    CONNECTION_FD.store(-1, Ordering::Release);
    publish_generation(GENERATION.fetch_add(1, Ordering::AcqRel) + 1);
    objmgr_sync::lifeline::begin_cut();
    WAKE_DUE.store(true, Ordering::Release);
    if let Some(conn) = &shared.conn {
        // The watcher's descriptor would keep the socket open.
        let _ = net::shutdown(&conn.socket, net::Shutdown::Both);
    }
    shared.drop_connection();
}

/// A session ended under `SHARED`: the sleepers of it are to be woken when
/// the lock is let go.
static WAKE_DUE: AtomicBool = AtomicBool::new(false);

/// Closes a watch descriptor this process inherited: its watcher thread
/// stayed in the parent.
fn forget_watch() {
    let fd = WATCH_FD.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        sys::close_inherited_fd(fd);
    }
}

/// Passes an exchange's outcome on; a broken connection is reported as
/// `ERROR_BROKEN_PIPE`. A broker that hung up hands the session to a new
/// one if it can ([`lost`]); one that answered nonsense ends it (every
/// handle of its session died with it).
fn settle<T>(shared: &mut Shared, outcome: Result<T, Broken>) -> Result<T> {
    match outcome {
        Ok(value) => Ok(value),
        Err(Broken::NotSent(e)) => Err(e),
        Err(broken) => {
            let why = match broken {
                Broken::Connection(why) => {
                    lost(shared);
                    why
                }
                Broken::Protocol(why) => {
                    // The shutdown wakes the watcher, which wakes the session's waits.
                    end_session(shared);
                    why
                }
                Broken::Refused(e) | Broken::NotSent(e) => {
                    end_session(shared);
                    e.to_string()
                }
            };
            Err(Error::new(
                ERROR_BROKEN_PIPE,
                format!("lost the connection to the objmgr broker: {why}"),
            ))
        }
    }
}

/// Sends one request to the broker (connecting, or starting it, if needed)
/// and returns the reply, any fd that came with it, and the handle generation
/// the reply belongs to.
pub(crate) fn call(
    request: &Request,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(Reply, Option<OwnedFd>, u64)> {
    call_with_fds(request, fd.as_slice())
}

/// [`call`] with up to `MAX_FDS_PER_MESSAGE` descriptors attached.
///
/// A request that means the same to any broker session, sent on a
/// connection whose broker turned out to be gone (it hung up, not: it
/// answered nonsense), is sent once more on a new connection (to a new
/// broker): losing the broker is then no error for it, whether or not the
/// watcher had noticed yet.
pub(crate) fn call_with_fds(
    request: &Request,
    fds: &[BorrowedFd<'_>],
) -> Result<(Reply, Option<OwnedFd>, u64)> {
    call_shaped(|_| request, fds)
}

/// [`call_with_fds`] with a request made by `shape` from what the session
/// holds (under the connection's lock, so that what it names stays held
/// until the reply is noted).
pub(crate) fn call_shaped<R: std::borrow::Borrow<Request>>(
    shape: impl Fn(&Holdings) -> R,
    fds: &[BorrowedFd<'_>],
) -> Result<(Reply, Option<OwnedFd>, u64)> {
    let (mut shared, generation) = connected()?;
    let request = shape(&shared.held);
    match exchange_noting(&mut shared, request.borrow(), fds) {
        (Ok((reply, received)), _) => Ok((reply, received, generation)),
        (Err(e), true) if request.borrow().independent_of_session() => {
            // The session ended with its broker: sent to the next one.
            drop(shared);
            let (mut shared, generation) = connected().map_err(|_| e)?;
            let request = shape(&shared.held);
            let (reply, received) = exchange_locked(&mut shared, request.borrow(), fds)?;
            Ok((reply, received, generation))
        }
        (Err(e), _) => Err(e),
    }
}
