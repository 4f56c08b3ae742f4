//! The broker's event loop: accepts connections, checks peers, reads
//! requests, writes replies (with fds), notices clients that go away, and
//! exits when asked or when idle.
//!
//! One thread, one `epoll`: every request is small and never blocks, so the
//! loop needs no locks, and a misbehaving client can only get itself
//! disconnected.

use objmgr_proto::Win32Error;
use objmgr_proto::error::{ERROR_ACCESS_DENIED, ERROR_NO_SYSTEM_RESOURCES};
use objmgr_proto::wire::{MAX_FDS_PER_MESSAGE, MAX_MESSAGE_SIZE, Opcode, Request, encode_reply};
use rustix::event::epoll;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::collections::{HashMap, VecDeque};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::broker::{Broker, ClientId, JOB_TIME_CHECK};
use crate::log::{debug, error, info, warning};
use crate::{Config, Failure};
use objmgr_proto::rendezvous::StartLock;

const LISTENER: u64 = 0;
/// Events taken from one `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// Extra non-blocking looks for ready connections before serving requests.
/// Looking stops as soon as a look finds nothing new; the bound only keeps
/// clients that never stop sending from postponing every answer forever.
const MAX_LOOKS: usize = 64;
/// Closes read from one connection before others get their turn.
const MAX_CLOSES_PER_READ: usize = 1024;
/// Event tokens with this bit are process exits: the other bits are the
/// broker's record id of the process.
const PID_WATCH: u64 = 1 << 63;
/// How long a new connection has to say `Hello` before it is closed: a
/// connection that never speaks only holds the broker's resources.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// The token of the pipe that `SIGTERM` and `SIGINT` write to.
const SIGNALS: u64 = 1 << 62;
/// Event tokens with this bit are doorbells (a request waits in the
/// connection's page): the other bits are the connection's id.
const DOORBELL: u64 = 1 << 61;

/// The time left until `deadline` (zero if it has passed).
fn time_until(deadline: Instant) -> rustix::time::Timespec {
    rustix::time::Timespec::try_from(deadline.saturating_duration_since(Instant::now())).unwrap_or(
        rustix::time::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        },
    )
}

/// The shorter of an `epoll_wait` timeout (`None`: forever) and `other`.
fn sooner(
    timeout: Option<rustix::time::Timespec>,
    other: rustix::time::Timespec,
) -> Option<rustix::time::Timespec> {
    match timeout {
        Some(t) if (t.tv_sec, t.tv_nsec) <= (other.tv_sec, other.tv_nsec) => Some(t),
        _ => Some(other),
    }
}

/// Makes `SIGTERM` and `SIGINT` readable on the returned socket instead of
/// killing the broker, so that the loop stops cleanly (the socket file
/// removed) when it sees them.
fn stop_signals() -> std::io::Result<std::os::unix::net::UnixStream> {
    let (read, write) = std::os::unix::net::UnixStream::pair()?;
    read.set_nonblocking(true)?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    Ok(read)
}

/// Runs `f`, which serves one client; a panic in it is logged and becomes
/// `None`, so that only that client is dropped and the broker serves on.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            // The hook logged the message and where it happened.
            error!("{what} panicked; dropping that client");
            None
        }
    }
}

/// A bound, listening broker socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// The socket file's device and inode, so that on exit the broker
    /// removes its own socket and never one another broker bound since.
    file_id: Option<(u64, u64)>,
}

impl Listener {
    /// A socket systemd made and listens on (socket activation): served as
    /// it is, and its file left to systemd on exit.
    pub fn activated(fd: OwnedFd, path: &Path) -> std::io::Result<Listener> {
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
        Ok(Listener {
            fd,
            path: path.to_owned(),
            file_id: None,
        })
    }

    /// Whether the broker made the socket file (and removes it on exit).
    pub fn owns_file(&self) -> bool {
        self.file_id.is_some()
    }
}

/// Device and inode of the file at `path`, not following a symlink.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// The outcome of trying to bind the broker socket.
#[derive(Debug)]
pub enum Bound {
    Listening(Listener),
    /// Another broker answers on that socket already.
    AlreadyRunning,
}

fn seqpacket_socket() -> rustix::io::Result<OwnedFd> {
    net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
}

/// Binds and listens on `path`, replacing a stale socket file left by a dead
/// broker but never one that a live broker answers on.
pub fn bind(path: &Path) -> std::io::Result<Bound> {
    let addr = SocketAddrUnix::new(path)?;
    for _ in 0..2 {
        let fd = seqpacket_socket()?;
        match net::bind(&fd, &addr) {
            Ok(()) => {
                net::listen(&fd, 128)?;
                return Ok(Bound::Listening(Listener {
                    fd,
                    path: path.to_owned(),
                    file_id: file_id(path),
                }));
            }
            Err(Errno::ADDRINUSE) => {
                let probe = net::socket_with(
                    AddressFamily::UNIX,
                    SocketType::SEQPACKET,
                    SocketFlags::CLOEXEC,
                    None,
                )?;
                if net::connect(&probe, &addr).is_ok() {
                    return Ok(Bound::AlreadyRunning);
                }
                // Nobody answers: a broker died without cleaning up. Only a
                // socket is ever replaced; anything else there is someone's
                // file, and an error.
                let meta = std::fs::symlink_metadata(path)?;
                if !meta.file_type().is_socket() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!(
                            "{} exists and is not a socket; the broker will not replace it",
                            path.display()
                        ),
                    ));
                }
                let _ = std::fs::remove_file(path);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other(format!(
        "cannot bind {}",
        path.display()
    )))
}

struct Connection {
    fd: OwnedFd,
    /// A request read but not yet answered.
    waiting: Option<Waiting>,
    /// The connection's doorbell, once it asked for one (`Request::Doorbell`).
    /// Watched edge-triggered and never read: the process shares the
    /// eventfd's file (and its `O_NONBLOCK`), so a read by the broker could
    /// be made to block; the rings before each look are one event.
    doorbell: Option<std::rc::Rc<OwnedFd>>,
    /// The doorbell rang since the page was last looked at.
    rang: bool,
    /// The sequence number of the last request read from the connection,
    /// on its socket or in its page: a request in the page is taken only if
    /// its number is newer (one the process left there and then sent on its
    /// socket instead is never taken too).
    last_seq: u32,
}

/// A decoded request and the fds that came with it.
struct Waiting {
    seq: u32,
    request: Request,
    fds: Vec<OwnedFd>,
    /// It came in the connection's page (its answer goes there too).
    paged: bool,
}

/// Forgets a connection whose client went away (or broke the protocol); its
/// handles close with it.
fn hang_up(
    epoll_fd: &OwnedFd,
    connections: &mut HashMap<ClientId, Connection>,
    broker: &mut Broker,
    id: ClientId,
) {
    if let Some(conn) = connections.remove(&id) {
        let _ = epoll::delete(epoll_fd, &conn.fd);
        // (Explicitly: the process holds the doorbell too, and epoll forgets
        // a descriptor only when every copy of it is closed.)
        if let Some(bell) = &conn.doorbell {
            let _ = epoll::delete(epoll_fd, &**bell);
        }
    }
    guarded("cleaning up after a client", || broker.remove_client(id));
}

/// Runs the loop until shutdown or idle exit. On the way out it takes the
/// rendezvous lock with `exit_lock`, removes the socket file, and returns the
/// lock still held so the caller can finish cleaning up under it.
pub fn serve(
    listener: Listener,
    config: &Config,
    exit_lock: &dyn Fn() -> Option<StartLock>,
) -> std::io::Result<Option<StartLock>> {
    let epoll_fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &epoll_fd,
        &listener.fd,
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )?;
    let idle_ms = config
        .idle_timeout
        .map_or(0, |d| d.as_millis().max(1) as u64);
    let signals = stop_signals()?;
    epoll::add(
        &epoll_fd,
        &signals,
        epoll::EventData::new_u64(SIGNALS),
        epoll::EventFlags::IN,
    )?;
    let mut broker = Broker::new(listener.path.display().to_string(), idle_ms);
    broker.system = config.system;
    broker.admin_gid = config.admin_gid;
    broker.open_journal(&listener.path);
    let mut connections: HashMap<ClientId, Connection> = HashMap::new();

    let mut idle_since = Some(Instant::now());
    let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS_PER_WAIT);
    let mut recv_buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    let mut acceptor = Acceptor {
        listener: &listener,
        epoll_fd: &epoll_fd,
        next_client: 1,
        my_uid: rustix::process::getuid().as_raw(),
        spare: open_spare(),
        hello_deadlines: VecDeque::new(),
    };
    let held_lock;
    let mut last_job_check = Instant::now();

    loop {
        let timeout = match (config.idle_timeout, idle_since) {
            _ if broker.has_watches() => Some(rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            }),
            (Some(limit), Some(since)) => Some(time_until(since + limit)),
            _ => None,
        };
        // Wake for the first `Hello` deadline too, to look at job members'
        // user time while a limit is set, and for the end of a recovery
        // after a crash.
        let hello = acceptor
            .hello_deadlines
            .front()
            .map(|&(deadline, _)| deadline);
        let job_check = broker
            .job_check_due()
            .then(|| last_job_check + JOB_TIME_CHECK);
        let timeout = [
            hello,
            job_check,
            broker.recovery_deadline(),
            broker.close_ring_deadline(),
        ]
        .into_iter()
        .flatten()
        .map(time_until)
        .fold(timeout, sooner);
        events.clear();
        match epoll::wait(
            &epoll_fd,
            rustix::buffer::spare_capacity(&mut events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        // Phase 1: read everything already sent. Closes that need no reply
        // take effect now, and so do hang-ups; each connection's first
        // request that needs a reply waits for phase 2. Before any request is
        // served, the broker looks again (without blocking) until a look
        // finds nothing new: whatever another process sent, or its death,
        // before that request was sent is then in effect, whichever
        // connection it came on (the order Windows guarantees: once
        // `CloseHandle` returns, or a process has exited, everyone sees its
        // handles closed).
        let mut waiting: Vec<ClientId> = Vec::new();
        let mut looks = 0;
        let mut shutdown = false;
        loop {
            let mut progress = false;
            for event in events.iter() {
                let token = event.data.u64();
                if token == SIGNALS {
                    info!("stopping on a signal");
                    shutdown = true;
                    continue;
                }
                if token & PID_WATCH != 0 {
                    guarded("a process exit", || {
                        broker.process_exited(token & !PID_WATCH)
                    });
                    progress = true;
                    continue;
                }
                if token == LISTENER {
                    accept_all(&mut acceptor, &mut broker, &mut connections);
                    progress = true;
                    continue;
                }
                if token & DOORBELL != 0 {
                    let id = token & !DOORBELL;
                    let Some(conn) = connections.get_mut(&id) else {
                        continue;
                    };
                    conn.rang = true;
                    if conn.waiting.is_some() {
                        // (Only a process that breaks the protocol rings
                        // while it waits for an answer: its page is looked
                        // at on its socket's next turn.)
                        continue;
                    }
                    progress = true;
                    match read_page(conn, id, &mut broker, &mut recv_buf) {
                        Read::Drained | Read::More => {}
                        Read::Waiting => waiting.push(id),
                        Read::Closed => hang_up(&epoll_fd, &mut connections, &mut broker, id),
                    }
                    continue;
                }
                let Some(conn) = connections.get_mut(&token) else {
                    continue;
                };
                if conn.waiting.is_some() {
                    // Read up to its request; the rest waits for the answer,
                    // unless the client is gone: a dead process's handles
                    // must close before anything sent after its death is
                    // served, and its request can have no answer.
                    let gone =
                        epoll::EventFlags::HUP | epoll::EventFlags::RDHUP | epoll::EventFlags::ERR;
                    let flags = event.flags;
                    if flags.intersects(gone) {
                        hang_up(&epoll_fd, &mut connections, &mut broker, token);
                        progress = true;
                    }
                    continue;
                }
                progress = true;
                match read_page(conn, token, &mut broker, &mut recv_buf) {
                    Read::Drained | Read::More => {}
                    Read::Waiting => waiting.push(token),
                    Read::Closed => hang_up(&epoll_fd, &mut connections, &mut broker, token),
                }
            }
            let batch_full = events.len() == events.capacity();
            if (waiting.is_empty() && !batch_full) || !progress || looks >= MAX_LOOKS {
                break;
            }
            looks += 1;
            events.clear();
            let no_wait = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            loop {
                match epoll::wait(
                    &epoll_fd,
                    rustix::buffer::spare_capacity(&mut events),
                    Some(&no_wait),
                ) {
                    Ok(_) => break,
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Closes left in close rings were made before anything read above
        // was sent: in effect before any request is answered (and within
        // this wake, so an object they free does not outlive it).
        guarded("the close rings", || broker.drain_close_rings());
        // Phase 2: answer the requests.
        for token in waiting {
            let Some(conn) = connections.get_mut(&token) else {
                continue;
            };
            match serve_waiting(conn, token, &mut broker, &epoll_fd) {
                ConnState::Open => {}
                ConnState::Shutdown => shutdown = true,
                ConnState::Closed => hang_up(&epoll_fd, &mut connections, &mut broker, token),
            }
        }
        // Connections that let their time to say `Hello` run out.
        let now = Instant::now();
        while let Some(&(deadline, id)) = acceptor.hello_deadlines.front() {
            if deadline > now {
                break;
            }
            acceptor.hello_deadlines.pop_front();
            // One whose Hello is waiting to be read (the broker was busy)
            // is not silent: it is served in the next round.
            let has_sent = connections.get(&id).is_some_and(|conn| {
                conn.waiting.is_some()
                    || net::recv(
                        &conn.fd,
                        &mut [0u8; 1],
                        RecvFlags::PEEK | RecvFlags::DONTWAIT,
                    )
                    .is_ok_and(|(n, _)| n > 0)
            });
            if connections.contains_key(&id) && !broker.is_greeted(id) && !has_sent {
                warning!(
                    "{}: no Hello within {HELLO_TIMEOUT:?}; closing the connection",
                    broker.describe_client(id)
                );
                hang_up(&epoll_fd, &mut connections, &mut broker, id);
            }
        }
        guarded("the recovery after a crash", || {
            broker.check_recovery();
            broker.check_late();
        });
        if broker.job_check_due() && last_job_check.elapsed() >= JOB_TIME_CHECK {
            guarded("job time limits", || broker.check_job_times());
            last_job_check = Instant::now();
        }
        // Processes the broker must now hear about when they exit.
        for watch in broker.take_watches() {
            let added = epoll::add(
                &epoll_fd,
                &*watch.fd,
                epoll::EventData::new_u64(PID_WATCH | watch.record),
                epoll::EventFlags::IN,
            );
            if added.is_err() {
                // Out of epoll memory or watches: unwatched, the process's
                // exit would never be seen. Try again soon.
                broker.retry_watch(watch);
            }
        }
        if shutdown {
            held_lock = exit_lock();
            break;
        }
        if !broker.busy() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if let Some(limit) = config.idle_timeout
                && since.elapsed() >= limit
            {
                // Under the lock no client can be starting a broker; a last look
                // for one that connected just now: serve it rather than exit.
                let lock = exit_lock();
                accept_all(&mut acceptor, &mut broker, &mut connections);
                if !broker.busy() {
                    held_lock = lock;
                    break;
                }
                idle_since = None;
            }
        } else {
            idle_since = None;
        }
    }
    broker.close_journal();
    // Remove the socket before the connections close, so a client that sees its
    // connection drop and retries finds no dead socket to connect to.
    if listener.file_id.is_some() && file_id(&listener.path) == listener.file_id {
        let _ = std::fs::remove_file(&listener.path);
    }
    Ok(held_lock)
}

/// What accepting connections needs besides the broker and its tables.
struct Acceptor<'a> {
    listener: &'a Listener,
    epoll_fd: &'a OwnedFd,
    next_client: ClientId,
    my_uid: u32,
    /// See [`open_spare`].
    spare: Option<OwnedFd>,
    /// When each new connection must have said `Hello`, oldest first.
    hello_deadlines: VecDeque<(Instant, ClientId)>,
}

/// Accepts every pending connection.
fn accept_all(
    acceptor: &mut Acceptor<'_>,
    broker: &mut Broker,
    connections: &mut HashMap<ClientId, Connection>,
) {
    let Acceptor {
        listener,
        epoll_fd,
        next_client,
        my_uid,
        spare,
        hello_deadlines,
    } = acceptor;
    let (listener, epoll_fd, my_uid) = (*listener, *epoll_fd, *my_uid);
    loop {
        let fd = match net::accept_with(&listener.fd, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)
        {
            Ok(fd) => fd,
            Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
            Err(Errno::MFILE) | Err(Errno::NFILE) => {
                // Out of fds: the pending connection would keep the listener
                // readable forever and spin the loop. Free the spare fd, take
                // the connection and hang up on it (its client sees an error,
                // not a hang), then keep the spare for next time.
                drop(spare.take());
                if let Ok(refused) = net::accept_with(&listener.fd, SocketFlags::CLOEXEC) {
                    refuse(
                        refused.as_fd(),
                        ERROR_NO_SYSTEM_RESOURCES,
                        "the broker has run out of file descriptors",
                    );
                }
                *spare = open_spare();
                return;
            }
            Err(_) => return, // EAGAIN: nothing more to accept.
        };
        let Ok(peer) = objmgr_proto::rendezvous::peer_of(fd.as_fd()) else {
            continue;
        };
        // The per-user broker serves its own uid only (root may always inspect).
        if !broker.system && peer.uid != my_uid && peer.uid != 0 {
            refuse(
                fd.as_fd(),
                ERROR_ACCESS_DENIED,
                &format!(
                    "this broker serves uid {my_uid} only; the caller is uid {}",
                    peer.uid
                ),
            );
            continue;
        }
        // A process the broker cannot see (outside its pid namespace) could
        // not be told apart from others, watched or spawned for: refused.
        let Some(pid) = peer.pid else {
            refuse(
                fd.as_fd(),
                ERROR_ACCESS_DENIED,
                "the caller's process is outside the broker's pid namespace",
            );
            continue;
        };
        let id = *next_client;
        *next_client += 1;
        // The groups it had when it connected (a pid can be reused since);
        // /proc only on kernels without SO_PEERGROUPS (before Linux 4.13).
        // A token is fixed when the process connects, as a Windows token is
        // at logon.
        let groups = objmgr_proto::rendezvous::peer_groups(fd.as_fd()).unwrap_or_else(|_| {
            crate::broker::proc_ids(pid)
                .map(|ids| ids.groups)
                .unwrap_or_default()
        });
        let token =
            objmgr_proto::security::Token::for_unix(peer.uid, peer.gid, &groups, broker.admin_gid);
        match guarded("a new connection", || {
            broker.add_client(id, pid, peer.uid, token)
        }) {
            Some(Ok(())) => {}
            Some(Err(failure)) => {
                refuse(fd.as_fd(), failure.code, &failure.context);
                continue;
            }
            None => continue,
        }
        if epoll::add(
            epoll_fd,
            &fd,
            epoll::EventData::new_u64(id),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )
        .is_err()
        {
            guarded("a refused connection", || broker.remove_client(id));
            refuse(
                fd.as_fd(),
                ERROR_NO_SYSTEM_RESOURCES,
                "the broker cannot watch one more connection",
            );
            continue;
        }
        connections.insert(
            id,
            Connection {
                fd,
                waiting: None,
                doorbell: None,
                rang: false,
                last_seq: 0,
            },
        );
        hello_deadlines.push_back((Instant::now() + HELLO_TIMEOUT, id));
    }
}

/// Answers a refused connection's coming `Hello` with `code` and why (the
/// caller's first request is always `Hello`, sequence 1), so that the
/// client can say more than "hung up"; the connection is then dropped.
fn refuse(fd: BorrowedFd<'_>, code: Win32Error, why: &str) {
    let peer = objmgr_proto::rendezvous::peer_of(fd)
        .map(|p| format!("pid {:?} uid {}", p.pid, p.uid))
        .unwrap_or_else(|_| "an unknown peer".to_owned());
    warning!("refused a connection from {peer}: {why}");
    let reply = encode_reply(Opcode::Hello, 1, Err((code.code(), why)));
    send_reply(fd, &reply, None);
}

/// An fd kept in reserve so that a connection can still be accepted (and
/// refused) when the broker has run out of descriptors.
fn open_spare() -> Option<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

enum ConnState {
    Open,
    Closed,
    Shutdown,
}

enum Read {
    /// Nothing more to read for now.
    Drained,
    /// More may follow: the connection had its turn.
    More,
    /// A request that needs an answer is waiting in `Connection::waiting`.
    Waiting,
    /// The client hung up or broke the protocol.
    Closed,
}

/// Reads what a client has sent: closes that need no reply are carried out
/// at once; reading stops at the first request that needs an answer.
fn read_connection(
    conn: &mut Connection,
    id: ClientId,
    broker: &mut Broker,
    buf: &mut [u8],
) -> Read {
    for _ in 0..MAX_CLOSES_PER_READ {
        let mut cmsg_space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut cmsg_space);
        let msg = loop {
            let received = net::recvmsg(
                &conn.fd,
                &mut [IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            match received {
                Ok(msg) => break msg,
                Err(Errno::AGAIN) => return Read::Drained,
                Err(Errno::INTR) => continue,
                Err(_) => return Read::Closed,
            }
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        // The fds of a message refused here are a client's: closed off the
        // broker's thread (closing a file can wait on its file system).
        let refused = |fds: Vec<OwnedFd>| {
            fds.into_iter().for_each(crate::closer::close_later);
            Read::Closed
        };
        if msg.bytes == 0 {
            return refused(fds);
        }
        if msg
            .flags
            .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
            || msg.bytes > MAX_MESSAGE_SIZE
        {
            // Oversized message or too many fds: not our protocol.
            warning!(
                "{}: oversized message; dropping it",
                broker.describe_client(id)
            );
            return refused(fds);
        }
        let (seq, request) = match Request::decode(&buf[..msg.bytes]) {
            Ok(decoded) => decoded,
            Err(e) => {
                // Garbage: disconnect; other clients are unaffected.
                warning!(
                    "{}: undecodable request ({e}); dropping it",
                    broker.describe_client(id)
                );
                return refused(fds);
            }
        };
        conn.last_seq = seq;
        if request.expects_reply() {
            // (A process that waits for an answer on its socket has nothing
            // left in its page.)
            conn.rang = false;
            conn.waiting = Some(Waiting {
                seq,
                request,
                fds,
                paged: false,
            });
            return Read::Waiting;
        }
        // Nobody waits for the outcome; a client that closes what it does
        // not hold only fails itself.
        let op = request.opcode();
        match guarded("a request", || broker.handle(id, request, fds)) {
            None => return Read::Closed,
            Some(Err(failure)) => {
                log_failure(broker, id, op, &failure);
                if failure.disconnect {
                    return Read::Closed;
                }
            }
            Some(Ok(_)) => {}
        }
    }
    // At the bound: level-triggered epoll reports the rest, and a ring
    // waits for it; unless there is no rest (a ring would wait for ever).
    match net::recv(
        &conn.fd,
        &mut [0u8; 1],
        RecvFlags::PEEK | RecvFlags::DONTWAIT,
    ) {
        Err(Errno::AGAIN) => Read::Drained,
        _ => Read::More,
    }
}

/// Takes the request a client left in its page once its doorbell rang,
/// after what it sent on its socket before it (which must take effect
/// first; if a read of the socket stops at its bound, the page waits for
/// the socket's next turn, which ends here).
fn read_page(conn: &mut Connection, id: ClientId, broker: &mut Broker, buf: &mut [u8]) -> Read {
    match read_connection(conn, id, broker, buf) {
        Read::Drained => {}
        other => return other,
    }
    if !std::mem::take(&mut conn.rang) {
        return Read::Drained;
    }
    let len = match broker.take_page_request(id, buf) {
        None => return Read::Drained,
        Some(Ok(len)) => len,
        Some(Err(())) => {
            warning!(
                "{}: a request longer than its page; dropping it",
                broker.describe_client(id)
            );
            return Read::Closed;
        }
    };
    match Request::decode(&buf[..len]) {
        // Not newer than what the connection sent last: left there, then
        // sent on the socket instead (or a lie).
        Ok((seq, _)) if (seq.wrapping_sub(conn.last_seq) as i32) <= 0 => Read::Drained,
        // (One that needs descriptors has none, and is refused as such.)
        Ok((seq, request)) if request.expects_reply() => {
            conn.last_seq = seq;
            broker.note_paged_request();
            conn.waiting = Some(Waiting {
                seq,
                request,
                fds: Vec::new(),
                paged: true,
            });
            Read::Waiting
        }
        Ok((_, request)) => {
            warning!(
                "{}: {:?} left in its page; dropping it",
                broker.describe_client(id),
                request.opcode()
            );
            Read::Closed
        }
        Err(e) => {
            warning!(
                "{}: undecodable request in its page ({e}); dropping it",
                broker.describe_client(id)
            );
            Read::Closed
        }
    }
}

/// Answers the request waiting on a connection.
fn serve_waiting(
    conn: &mut Connection,
    id: ClientId,
    broker: &mut Broker,
    epoll_fd: &OwnedFd,
) -> ConnState {
    let Some(Waiting {
        seq,
        request,
        fds,
        paged,
    }) = conn.waiting.take()
    else {
        return ConnState::Open;
    };
    let op = request.opcode();
    let remote = matches!(request, Request::SyncRemote { .. });
    broker.note_began(id, seq, remote);
    let Some(mut result) = guarded("a request", || broker.handle(id, request, fds)) else {
        return ConnState::Closed;
    };
    if op == Opcode::Doorbell
        && let Ok(outcome) = &result
        && let Some(bell) = &outcome.fd
    {
        match epoll::add(
            epoll_fd,
            &**bell,
            epoll::EventData::new_u64(DOORBELL | id),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        ) {
            Ok(()) => conn.doorbell = Some(bell.clone()),
            Err(e) => {
                broker.forget_doorbell(id);
                result = Err(Failure::new(
                    crate::errno(e),
                    "watching the connection's doorbell",
                ));
            }
        }
    }
    if let Err(failure) = &result {
        log_failure(broker, id, op, failure);
    }
    broker.note_finished(id, seq, result.as_ref().ok().map(|outcome| &outcome.reply));
    let (bytes, fd_out, shutdown, disconnect) = match result {
        Ok(outcome) => (
            encode_reply(op, seq, Ok(&outcome.reply)),
            outcome.fd,
            outcome.shutdown,
            false,
        ),
        Err(Failure {
            code,
            context,
            disconnect,
        }) => (
            encode_reply(op, seq, Err((code.code(), &context))),
            None,
            false,
            disconnect,
        ),
    };
    // A request that came in the page is answered there, unless its
    // answer carries a descriptor or is too long: the page then says it is
    // on the socket, once it is.
    let in_page = paged && fd_out.is_none() && broker.post_page_reply(id, seq, Some(&bytes));
    if !in_page {
        if !send_reply(conn.fd.as_fd(), &bytes, fd_out.as_deref()) {
            warning!(
                "{}: cannot take its reply (not reading?); dropping it",
                broker.describe_client(id)
            );
            return ConnState::Closed;
        }
        if paged {
            broker.post_page_reply(id, seq, None);
        }
    }
    if disconnect {
        return ConnState::Closed;
    }
    if shutdown {
        return ConnState::Shutdown;
    }
    ConnState::Open
}

/// Logs a failed request: protocol violations, failed spawns and refusals
/// (access denied, over quota, out of resources) as warnings; the everyday
/// failures (no such name, bad parameter, ...) as debug.
fn log_failure(broker: &Broker, id: ClientId, op: Opcode, failure: &Failure) {
    use objmgr_proto::error::ERROR_NOT_ENOUGH_QUOTA;
    let who = broker.describe_client(id);
    let code = failure.code;
    if failure.disconnect {
        warning!("{who}: {op:?}: {} ({code}); dropping it", failure.context);
    } else if op == Opcode::Spawn {
        warning!("{who}: failed spawn: {} ({code})", failure.context);
    } else if [
        ERROR_ACCESS_DENIED,
        ERROR_NOT_ENOUGH_QUOTA,
        ERROR_NO_SYSTEM_RESOURCES,
    ]
    .contains(&code)
    {
        warning!("{who}: {op:?} refused: {} ({code})", failure.context);
    } else {
        debug!("{who}: {op:?} refused: {} ({code})", failure.context);
    }
}

/// Sends one reply without blocking. A client whose socket buffer is full is
/// not reading its replies; it is disconnected rather than allowed to stall
/// the broker.
fn send_reply(fd: BorrowedFd<'_>, bytes: &[u8], attach: Option<&OwnedFd>) -> bool {
    let mut cmsg_space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut cmsg_space);
    let borrowed;
    if let Some(attach) = attach {
        borrowed = [attach.as_fd()];
        control.push(SendAncillaryMessage::ScmRights(&borrowed));
    }
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    loop {
        // Without a descriptor, a plain send (the kernel reads no message
        // header): most replies.
        let sent = if attach.is_some() {
            net::sendmsg(fd, &[IoSlice::new(bytes)], &mut control, flags)
        } else {
            net::send(fd, bytes, flags)
        };
        match sent {
            Ok(_) => return true,
            Err(Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_left_in_the_page_and_sent_on_the_socket_instead_is_served_once() {
        use objmgr_proto::wire::PROTOCOL_VERSION;
        use objmgr_sync::close_ring::CloseRing;
        let mut broker = Broker::new("test".into(), 0);
        let root = objmgr_proto::security::Token::for_unix(0, 0, &[], None);
        broker.add_client(1, 101, 0, root).unwrap();
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
        };
        broker.handle(1, hello, vec![]).unwrap();
        let ring_fd = broker.handle(1, Request::CloseRing, vec![]).unwrap().fd;
        let page = CloseRing::map(ring_fd.unwrap().as_fd()).unwrap();
        let (ours, theirs) = net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let mut conn = Connection {
            fd: ours,
            waiting: None,
            doorbell: None,
            rang: false,
            last_seq: 0,
        };
        let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
        // Request 5 left in the page, whose ring failed: sent on the socket
        // as 6, while a ring of an earlier close is still noted.
        assert!(page.post_request(5, &Request::Status.encode(5)));
        net::send(&theirs, &Request::Status.encode(6), SendFlags::empty()).unwrap();
        conn.rang = true;
        let read = read_page(&mut conn, 1, &mut broker, &mut buf);
        assert!(matches!(read, Read::Waiting));
        let waiting = conn.waiting.take().unwrap();
        assert_eq!((waiting.seq, waiting.paged), (6, false));
        // The next ring (a close) does not take 5 from the page.
        conn.rang = true;
        assert!(matches!(
            read_page(&mut conn, 1, &mut broker, &mut buf),
            Read::Drained
        ));
        assert!(conn.waiting.is_none(), "served twice");
        // A newer request left there is taken.
        assert!(page.post_request(7, &Request::Status.encode(7)));
        conn.rang = true;
        let read = read_page(&mut conn, 1, &mut broker, &mut buf);
        assert!(matches!(read, Read::Waiting));
        let waiting = conn.waiting.take().unwrap();
        assert_eq!((waiting.seq, waiting.paged), (7, true));
        // And without a ring, nothing is.
        assert!(page.post_request(8, &Request::Status.encode(8)));
        assert!(matches!(
            read_page(&mut conn, 1, &mut broker, &mut buf),
            Read::Drained
        ));
        assert!(conn.waiting.is_none());
    }

    #[test]
    fn a_panic_while_serving_one_client_is_contained() {
        assert_eq!(guarded("a request", || 7), Some(7));
        let caught: Option<()> = guarded("a request", || panic!("bad request"));
        assert_eq!(caught, None);
    }
}
