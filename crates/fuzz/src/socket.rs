//! The `socket` target: a real broker process (this program, started in the
//! broker's role) and hostile clients on its socket. Each case connects one
//! to three clients, each maybe saying `Hello`, and sends, interleaved
//! across them, messages the input chooses (mutated requests,
//! random bytes, empty or oversized messages, descriptors of every kind,
//! more than a message may carry), some of them left in the client's page
//! with its doorbell rung (or not) instead of sent, reads whatever comes
//! back and hangs up.
//! The broker must stay alive and keep answering a well-behaved client.
//! (What would stop the broker or act on this process is not sent: see
//! [`objmgr_fuzz::harmless`].)
//!
//! The broker's state carries over from case to case, so a failure is saved
//! with the cases before it: replaying them in order on a new broker
//! reproduces it.

use std::io::{BufRead, BufReader, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use objmgr_fuzz::input::Choices;
use objmgr_proto::wire::{self, Opcode, PROTOCOL_VERSION, Request};
use objmgr_sync::close_ring::CloseRing;
use rustix::net::{
    self, AddressFamily, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
    SocketAddrUnix, SocketType,
};

/// The environment variable that makes this program run as the broker.
pub const BROKER_ROLE_ENV: &str = "OBJMGR_FUZZ_BROKER";

/// Cases kept for a replay of a failure.
const KEPT: usize = 64;

/// A broker of the driver's own, killed on drop.
pub struct Broker {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Broker {
    pub fn start() -> std::io::Result<Broker> {
        let dir = std::env::temp_dir().join(format!("objmgr-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let socket = dir.join("broker.sock");
        let mut child = Command::new(std::env::current_exe()?)
            .env(BROKER_ROLE_ENV, std::process::id().to_string())
            .env("OBJMGR_LOG", "off")
            // Cases connect one after another from this one process, faster
            // than the broker may see the last ones hang up.
            .args(["--quota", "connections=100000"])
            .args(["--idle-timeout", "never", "--socket"])
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut ready)?;
        if !ready.starts_with(objmgr_server::READY_LINE) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!("the broker said {ready:?}")));
        }
        Ok(Broker { child, dir, socket })
    }

    /// Whether the broker still runs and answers `Hello` and `Status` to a
    /// new client within 5 s (well within the driver's 10 s hang watchdog).
    pub fn healthy(&mut self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the broker exited: {status}"));
            }
            match self.status() {
                Ok(()) => return Ok(()),
                Err(why) if std::time::Instant::now() >= deadline => return Err(why),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// One well-behaved client's `Hello` and `Status`, each given 1 s.
    fn status(&self) -> Result<(), String> {
        let fd = self.connect().map_err(|e| format!("cannot connect: {e}"))?;
        rustix::io::ioctl_fionbio(&fd, false).map_err(|e| format!("blocking mode: {e}"))?;
        let timeout = Some(Duration::from_secs(1));
        for direction in [net::sockopt::Timeout::Recv, net::sockopt::Timeout::Send] {
            let _ = net::sockopt::set_socket_timeout(&fd, direction, timeout);
        }
        let mut buf = vec![0u8; wire::MAX_MESSAGE_SIZE + 1];
        for (seq, request, op) in [
            (
                1,
                Request::Hello {
                    version: PROTOCOL_VERSION,
                },
                Opcode::Hello,
            ),
            (2, Request::Status, Opcode::Status),
        ] {
            net::send(&fd, &request.encode(seq), SendFlags::NOSIGNAL)
                .map_err(|e| format!("sending {op:?}: {e}"))?;
            let (n, _) = net::recv(&fd, &mut buf, RecvFlags::empty())
                .map_err(|e| format!("no answer to {op:?}: {e}"))?;
            match wire::decode_reply(op, &buf[..n]) {
                Ok((s, Ok(_))) if s == seq => {}
                other => return Err(format!("bad answer to {op:?}: {other:?}")),
            }
        }
        Ok(())
    }

    fn connect(&self) -> std::io::Result<OwnedFd> {
        // Non-blocking: a full backlog fails at once rather than hanging.
        let fd = net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            net::SocketFlags::CLOEXEC | net::SocketFlags::NONBLOCK,
            None,
        )?;
        net::connect(&fd, &SocketAddrUnix::new(&self.socket)?)?;
        Ok(fd)
    }

    /// Runs one case against the broker: one to three clients at once,
    /// their messages interleaved, so that the broker reads from several
    /// connections in one turn (and serves some while others wait).
    pub fn case(&self, data: &[u8]) {
        let mut choices = Choices::new(data);
        let clients: Vec<OwnedFd> = (0..=choices.below(3))
            .filter_map(|_| self.connect().ok())
            .collect();
        if clients.is_empty() {
            return;
        }
        for fd in &clients {
            if choices.below(8) != 0 {
                let hello = Request::Hello {
                    version: PROTOCOL_VERSION,
                };
                let _ = net::send(
                    fd,
                    &hello.encode(1),
                    SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
                );
            }
        }
        // Some clients get their page and doorbell, and leave some of their
        // messages there.
        let lanes: Vec<Option<Lane>> = clients
            .iter()
            .map(|fd| (choices.below(3) == 0).then(|| Lane::ask(fd)).flatten())
            .collect();
        for seq in 2..2 + choices.below(12) as u32 {
            let which = choices.below(clients.len());
            let fd = &clients[which];
            let mut message = message(&mut choices, seq);
            if Request::decode(&message).is_ok_and(|(_, request)| !objmgr_fuzz::harmless(&request))
            {
                // It would stop the broker or act on this process: no bug.
                message = Request::Status.encode(seq);
            }
            if let Some(lane) = &lanes[which]
                && choices.bool()
            {
                // Any number in the page's sequence word: a repeat of the
                // last one is no new request.
                let page_seq = match choices.below(4) {
                    0 => choices.below(4) as u32,
                    _ => seq,
                };
                lane.post(page_seq, &message, choices.below(4) != 0);
                if choices.below(4) == 0 {
                    lane.drain_bell();
                }
                continue;
            }
            let fds = descriptors(&mut choices);
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !borrowed.is_empty() {
                control.push(SendAncillaryMessage::ScmRights(&borrowed));
            }
            let _ = net::sendmsg(
                fd,
                &[IoSlice::new(&message)],
                &mut control,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            );
            if choices.bool() {
                drain(fd);
            }
        }
        // Sometimes hang up at once, sometimes after the answers came.
        if choices.bool() {
            std::thread::sleep(Duration::from_micros(200));
            clients.iter().for_each(drain);
        }
    }

    /// Stops the broker and removes its directory.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One message: a request made from choices and mutated, random bytes, an
/// empty message or one over the size limit.
fn message(choices: &mut Choices<'_>, seq: u32) -> Vec<u8> {
    match choices.below(8) {
        0 => (0..choices.below(64)).map(|_| choices.byte()).collect(),
        1 => Vec::new(),
        2 => vec![choices.byte(); wire::MAX_MESSAGE_SIZE + 1 + choices.below(4)],
        _ => {
            let mut bytes = choices.request().encode(seq);
            if choices.bool() {
                choices.mutate(&mut bytes);
            }
            bytes
        }
    }
}

/// Descriptors to attach: none mostly, else of every kind, sometimes more
/// than a message may carry.
fn descriptors(choices: &mut Choices<'_>) -> Vec<OwnedFd> {
    if choices.below(4) != 0 {
        return Vec::new();
    }
    (0..=choices.below(6))
        .filter_map(|_| -> Option<OwnedFd> {
            match choices.below(5) {
                0 => {
                    let fd =
                        rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
                    let _ = rustix::fs::ftruncate(&fd, u64::from(choices.byte()) * 512);
                    Some(fd)
                }
                1 => rustix::fs::open(
                    "/dev/null",
                    rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .ok(),
                2 => rustix::pipe::pipe().ok().map(|(r, _w)| r),
                3 => rustix::fs::open(
                    std::env::temp_dir(),
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                )
                .ok(),
                _ => net::socketpair(
                    AddressFamily::UNIX,
                    SocketType::SEQPACKET,
                    net::SocketFlags::CLOEXEC,
                    None,
                )
                .ok()
                .map(|(a, _b)| a),
            }
        })
        .collect()
}

/// A hostile client's page and doorbell.
struct Lane {
    page: CloseRing,
    bell: OwnedFd,
}

impl Lane {
    /// Asks for the page and the doorbell (refused unless the client said
    /// `Hello`).
    fn ask(fd: &OwnedFd) -> Option<Lane> {
        let page = CloseRing::map(ask_fd(fd, Request::CloseRing, 0x7000_0001)?.as_fd()).ok()?;
        let bell = ask_fd(fd, Request::Doorbell, 0x7000_0002)?;
        Some(Lane { page, bell })
    }

    /// Empties the doorbell, blocking (a broker that read it could be made
    /// to wait here for ever): made blocking, then read while it holds a
    /// count.
    fn drain_bell(&self) {
        let _ = rustix::fs::fcntl_setfl(&self.bell, rustix::fs::OFlags::empty());
        let mut poll = [rustix::event::PollFd::new(
            &self.bell,
            rustix::event::PollFlags::IN,
        )];
        let now = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut poll, Some(&now)).is_ok_and(|n| n > 0) {
            let _ = rustix::io::read(&self.bell, &mut [0u8; 8]);
        }
    }

    /// Leaves `message` in the page (if it fits) and rings, maybe.
    fn post(&self, seq: u32, message: &[u8], ring: bool) {
        if self.page.post_request(seq, message) && ring {
            let _ = rustix::io::write(&self.bell, &1u64.to_ne_bytes());
        }
    }
}

/// Sends `request` and waits (a second at most) for the descriptor its
/// answer carries, reading past the answer to `Hello`.
fn ask_fd(fd: &OwnedFd, request: Request, seq: u32) -> Option<OwnedFd> {
    net::send(fd, &request.encode(seq), SendFlags::NOSIGNAL).ok()?;
    let mut buf = vec![0u8; wire::MAX_MESSAGE_SIZE + 1];
    for _ in 0..2 {
        let mut poll = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let second = rustix::time::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut poll, Some(&second)).ok()?;
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = net::RecvAncillaryBuffer::new(&mut space);
        let got = net::recvmsg(
            fd,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        )
        .ok()?;
        if got.bytes == 0 {
            return None;
        }
        let fd = control.drain().find_map(|message| match message {
            net::RecvAncillaryMessage::ScmRights(mut rights) => rights.next(),
            _ => None,
        });
        if fd.is_some() {
            return fd;
        }
    }
    None
}

/// Reads whatever the broker has answered, without waiting.
fn drain(fd: &OwnedFd) {
    let mut buf = vec![0u8; wire::MAX_MESSAGE_SIZE + 1];
    while let Ok((n, _)) = net::recv(fd, &mut buf, RecvFlags::DONTWAIT) {
        if n == 0 {
            return;
        }
    }
}

/// The last cases run, for a replay of a failure: each as a length (4
/// bytes, little-endian) and its bytes.
#[derive(Default)]
pub struct Kept(std::collections::VecDeque<Vec<u8>>);

impl Kept {
    pub fn push(&mut self, case: &[u8]) {
        if self.0.len() == KEPT {
            self.0.pop_front();
        }
        self.0.push_back(case.to_vec());
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for case in &self.0 {
            out.extend_from_slice(&(case.len() as u32).to_le_bytes());
            out.extend_from_slice(case);
        }
        out
    }
}

/// The cases of a saved sequence.
pub fn decode_kept(bytes: &[u8]) -> Vec<&[u8]> {
    let mut cases = Vec::new();
    let mut rest = bytes;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        cases.push(&tail[..len]);
        rest = &tail[len..];
    }
    cases
}

/// Replays a saved sequence on a new broker: `Err` says how it failed.
pub fn replay(bytes: &[u8]) -> Result<(), String> {
    let mut broker = Broker::start().map_err(|e| format!("cannot start a broker: {e}"))?;
    for case in decode_kept(bytes) {
        broker.case(case);
    }
    let health = broker.healthy();
    broker.stop();
    health
}
