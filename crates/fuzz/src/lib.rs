//! Fuzz targets for objmgr's two trust boundaries: the wire decoder (every
//! byte a client sends, and every byte a broker answers) and the broker's
//! handling of requests (any sequence, from several clients that come and
//! go). Each target takes arbitrary bytes and panics on a bug: a decoder or
//! broker panic, or a request that does not survive a round trip through
//! the encoder.
//!
//! The `objmgr-fuzz` binary drives them on stable Rust (random inputs and
//! mutations, crashes saved for replay), and a third target that sends
//! hostile clients to a real broker process; the two functions here can be
//! called from a `cargo fuzz` or `cargo afl` target. See the crate's README.

pub mod input;

use std::os::fd::{AsFd, OwnedFd};

use objmgr_proto::security::Token;
use objmgr_proto::wire::{self, FileOp, Opcode, PROTOCOL_VERSION, ReclaimStep, Request};
use objmgr_server::broker::{Broker, ClientId, Outcome};
use objmgr_sync::close_ring::{CloseRing, RingClose};

use input::Choices;

/// The wire target. `data`'s first byte picks what it is: a request to
/// decode as the broker does, or a reply to decode as a client does for a
/// request of some opcode. A request that decodes must encode and decode
/// back to itself.
pub fn wire_case(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match Opcode::ALL.get(usize::from(pick)) {
        Some(&op) => {
            let _ = wire::decode_reply(op, bytes);
        }
        None => {
            if let Ok((seq, request)) = Request::decode(bytes) {
                let again = request.encode(seq);
                match Request::decode(&again) {
                    Ok(decoded) => assert_eq!(
                        decoded,
                        (seq, request),
                        "a request changed through encode + decode"
                    ),
                    Err(e) => panic!("a decoded request, encoded again, does not decode: {e:?}"),
                }
            }
        }
    }
}

/// Bytes for [`wire_case`] made from `data`: a request built from choices
/// and encoded, then mutated (or, one time in four, a reply's bytes).
pub fn wire_input(data: &[u8]) -> Vec<u8> {
    let mut choices = Choices::new(data);
    let reply = choices.below(4) == 0;
    let pick = if reply {
        choices.below(Opcode::ALL.len()) as u8
    } else {
        u8::MAX
    };
    let mut bytes = choices.request().encode(choices.u32());
    choices.mutate(&mut bytes);
    let mut input = vec![pick];
    input.extend_from_slice(&bytes);
    input
}

/// Whether a request may be sent to a broker whose clients all carry this
/// process's pid: none that acts on processes (`Spawn`, `OpenProcess`,
/// `Terminate`, the job operations that assign, limit or kill members),
/// and no `Shutdown` (a client of the broker's own user may stop it).
pub fn harmless(request: &Request) -> bool {
    use objmgr_proto::wire::JobOp;
    match request {
        Request::Spawn { .. }
        | Request::OpenProcess { .. }
        | Request::Terminate { .. }
        | Request::Shutdown => false,
        Request::JobControl { op, .. } => matches!(
            op,
            JobOp::QueryLimits | JobOp::QueryAccounting | JobOp::QueryProcessIds | JobOp::Contains
        ),
        _ => true,
    }
}

/// Clients in a broker case.
const CLIENTS: ClientId = 3;
/// Requests in a broker case at most.
const STEPS: usize = 48;

/// The broker target: three clients of one broker (one of them another
/// user's) send the requests that
/// `data` chooses, with descriptors where a request carries them; now and
/// then a client disconnects and a new one connects under its id. The
/// broker must answer every request (success or a Win32 error) without
/// panicking.
///
/// Requests that act on other processes of the machine (`Spawn`,
/// `OpenProcess`, `Terminate`, and the job operations that assign, limit or
/// kill members) are never sent: all the clients carry this process's pid.
/// Run it as an unprivileged user (the driver drops root) so that a bug
/// cannot reach beyond the process.
pub fn broker_case(data: &[u8]) {
    let mut choices = Choices::new(data);
    let mut broker = Broker::new("fuzz".into(), 0);
    if choices.below(3) == 0 {
        // A broker taking over from a dead one, whose journal names this
        // process under tags 1 to 3 (one of them as a process that died).
        let pid = std::process::id();
        let start_time = objmgr_server::journal::start_time(pid).unwrap_or(0);
        let recorded = (1..=3)
            .map(|tag| objmgr_server::journal::Recorded {
                tag,
                pid,
                start_time: start_time + u64::from(tag == 3),
                flags: if tag == 2 {
                    objmgr_server::journal::GIFTED
                } else {
                    0
                },
            })
            .collect();
        if choices.below(2) == 0 {
            // The system broker, with a ledger of objects in the fuzz's
            // arena (some of them another user's, in namespaces, or with
            // descriptors that do not parse).
            broker.start_system_recovery(recorded, fuzz_ledger(&mut choices));
        } else {
            broker.start_recovery(recorded);
        }
    }
    for id in 1..=CLIENTS {
        connect(&mut broker, id);
    }
    let mut rings = Vec::new();
    let mut numbers = Vec::new();
    for _ in 0..STEPS {
        if choices.exhausted() {
            break;
        }
        let id = 1 + choices.below(CLIENTS as usize) as ClientId;
        if choices.below(24) == 0 {
            broker.remove_client(id);
            connect(&mut broker, id);
            continue;
        }
        let mut request = choices.request();
        if let Request::Reclaim {
            step: ReclaimStep::Arena { id, .. } | ReclaimStep::Sync { arena: id, .. },
        } = &mut request
            && choices.below(2) == 0
        {
            // The arena a returning process brings, as the ledger has it.
            *id = fuzz_arena().0;
        }
        let mut fds = descriptors_for(&request);
        if choices.below(16) == 0 {
            // The wrong number of descriptors.
            if fds.pop().is_none() {
                fds.push(scratch_file());
            }
        }
        let asked_ring = matches!(request, Request::CloseRing);
        let outcome = broker.handle(id, request, fds);
        if let Ok(Outcome {
            reply: wire::Reply::Section(grant),
            ..
        }) = &outcome
        {
            numbers.push(grant.object);
        }
        // A ring the client got is written as a hostile client would:
        // handle values of its choice (a count that lies is the ring's own
        // unit test).
        if asked_ring
            && let Ok(Outcome { fd: Some(fd), .. }) = &outcome
            && let Ok(ring) = CloseRing::map(fd.as_fd())
        {
            rings.push(ring);
        }
        if let Some(ring) = rings.last()
            && choices.below(4) == 0
        {
            for _ in 0..choices.below(8) {
                let _ = ring.push(RingClose {
                    handle: choices.handle().0,
                    // A section's number as the broker gave it, or not.
                    object: match choices.below(numbers.len() + 1) {
                        0 => choices.below(16) as u64,
                        n => numbers[n - 1],
                    },
                });
            }
        }
        broker.drain_close_rings();
    }
    for id in 1..=CLIENTS {
        broker.remove_client(id);
    }
}

/// Connects client `id` and says `Hello`: this process, as this user, except
/// that the last client claims another user (so that access checks between
/// users run too).
fn connect(broker: &mut Broker, id: ClientId) {
    let other = u32::from(id == CLIENTS);
    let uid = rustix::process::getuid().as_raw().wrapping_add(other);
    let gid = rustix::process::getgid().as_raw().wrapping_add(other);
    let token = Token::for_unix(uid, gid, &[], None);
    broker
        .add_client(id, std::process::id(), uid, token)
        .expect("a fresh client is accepted");
    broker
        .handle(
            id,
            Request::Hello {
                version: PROTOCOL_VERSION,
            },
            Vec::new(),
        )
        .expect("Hello is answered");
}

/// The descriptors a request carries, as the client library sends them
/// (files are memfds here: the broker must not care where they come from).
fn descriptors_for(request: &Request) -> Vec<OwnedFd> {
    let count = match request {
        Request::CreateSection {
            from_file: true, ..
        } => 2,
        Request::OpenFile {
            delete_on_close, ..
        } => 1 + usize::from(*delete_on_close),
        Request::FileControl {
            op: FileOp::MayDelete,
            ..
        } => 2,
        Request::Reclaim {
            step: ReclaimStep::File { .. },
        } => 1,
        // A file, and the same file opened read-only.
        Request::Reclaim {
            step: ReclaimStep::FileSection { .. },
        } => {
            let file = scratch_file();
            let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
            let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
            let read_only = rustix::fs::open(path, flags, rustix::fs::Mode::empty())
                .expect("reopening a memfd read-only");
            return vec![file, read_only];
        }
        // What a returning process brings: an arena (the fuzz's own, id 1)
        // or a section's memfd, sealed as the broker seals them.
        Request::Reclaim {
            step: ReclaimStep::Arena { .. },
        } => return vec![fuzz_arena().1],
        Request::Reclaim {
            step: ReclaimStep::Section { protection, .. },
        } => return vec![sealed_section(*protection)],
        _ => 0,
    };
    (0..count).map(|_| scratch_file()).collect()
}

/// A descriptor of one domain arena (id 1) made once: arenas stay mapped
/// for a process's life, so each case cannot make its own.
fn fuzz_arena() -> (u64, OwnedFd) {
    static ARENA: std::sync::OnceLock<Option<(u64, OwnedFd)>> = std::sync::OnceLock::new();
    let arena = ARENA.get_or_init(|| {
        let arena = objmgr_server::sync::SyncArena::new().ok()?;
        Some((arena.id, arena.fd.try_clone().ok()?))
    });
    match arena
        .as_ref()
        .and_then(|(id, fd)| Some((*id, fd.try_clone().ok()?)))
    {
        Some(arena) => arena,
        None => (1, scratch_file()),
    }
}

/// A lost system broker's ledger: objects in slots 1 to 8 of the fuzz's
/// arena, of types, domains, names and descriptors `choices` picks.
fn fuzz_ledger(choices: &mut Choices<'_>) -> objmgr_server::ledger::Known {
    use objmgr_proto::access::ObjectType;
    use objmgr_server::ledger::{Entry, Identity, Known};
    let (arena, fd) = fuzz_arena();
    let Ok(stat) = rustix::fs::statx(
        &fd,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::INO,
    ) else {
        return Known::default();
    };
    let node = (stat.stx_dev_major, stat.stx_dev_minor, stat.stx_ino);
    let uid = rustix::process::getuid().as_raw();
    let types = [
        ObjectType::Event,
        ObjectType::Mutex,
        ObjectType::Semaphore,
        ObjectType::WaitableTimer,
        ObjectType::Thread,
        ObjectType::Section,
    ];
    let sddls = [
        "D:(A;;GA;;;WD)".to_owned(),
        "D:(A;;0x100000;;;WD)".to_owned(),
        format!("O:S-1-22-1-{uid}D:"),
        "not a descriptor".to_owned(),
    ];
    let paths = [
        None,
        Some("\\BaseNamedObjects\\a"),
        Some("\\BaseNamedObjects\\b"),
        Some("\\Namespaces\\1\\c"),
    ];
    Known::from_entries((1..=8u32).map(|slot| {
        let entry = Entry {
            object_type: types[choices.below(types.len())],
            domain: uid.wrapping_add(choices.below(2) as u32),
            path: paths[choices.below(paths.len())].map(str::to_owned),
            sddl: sddls[choices.below(sddls.len())].clone(),
            identity: Identity::Sync {
                arena,
                node,
                slot,
                solo: choices.below(2) == 0,
            },
        };
        (u64::from(slot), entry)
    }))
}

/// A section's memfd as the broker makes one, with `protection` if valid.
fn sealed_section(protection: u32) -> OwnedFd {
    use objmgr_proto::section::{PageProtection, SectionAttributes};
    let protection =
        PageProtection::from_bits(protection & 0xFF).unwrap_or(PageProtection::ReadWrite);
    objmgr_server::section::Section::new_anonymous(4096, protection, SectionAttributes::default())
        .ok()
        .and_then(|section| section.fd_for(true).ok()?.try_clone().ok())
        .unwrap_or_else(scratch_file)
}

fn scratch_file() -> OwnedFd {
    let fd = rustix::fs::memfd_create("objmgr-fuzz", rustix::fs::MemfdFlags::CLOEXEC)
        .expect("memfd_create");
    rustix::fs::ftruncate(&fd, 4096).expect("ftruncate a memfd");
    fd
}
