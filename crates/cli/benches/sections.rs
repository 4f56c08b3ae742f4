//! Section benchmarks against raw Linux, measured in the same run.
//!
//! `cargo bench -p objmgr-cli --bench sections` (pin with `taskset -c 0` for
//! stable ratios: the broker round trips then stay on one CPU). Each figure is
//! the median of several batches; each line prints objmgr, the baseline and
//! their ratio. `BENCH_QUICK=1` shrinks the big cases for a smoke run.

use objmgr::{Event, MapAccess, MapOptions, Reset, Section};
use objmgr_proto::wire::{PROTOCOL_VERSION, Request};
use rustix::fs::{MemfdFlags, Mode};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;
use std::hint::black_box;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

mod harness;
use harness::{Broker, PerOp, cpus_allowed, measure, report, rss_bytes};

const SMALL: u64 = 64 * 1024;

fn raise_fd_limit(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    if setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: Some(want),
        },
    )
    .is_err()
    {
        let hard = getrlimit(Resource::Nofile).maximum;
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}

fn raw_create_cycle(i: usize) {
    let name = format!("/objmgr-bench-{}-{i}", std::process::id());
    let fd = shm::open(
        &name,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, SMALL).unwrap();
    raw_map_unmap(&fd, SMALL as usize, true);
    drop(fd);
    shm::unlink(&name).unwrap();
}

fn raw_map_unmap(fd: &impl AsFd, len: usize, write: bool) {
    let prot = if write {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    };
    // SAFETY: a fresh shared mapping at a kernel-chosen address, unmapped below.
    unsafe {
        let p = rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0).unwrap();
        black_box(p);
        rustix::mm::munmap(p, len).unwrap();
    }
}

/// Set (to a section name) in the process that holds a section for the
/// open of one held by another process.
const HOLDER_ENV: &str = "OBJMGR_BENCH_HOLDER";

/// The holder process: makes the section, says so, and keeps it until its
/// stdin closes.
fn holder(name: &str) {
    let _section = Section::create(name, SMALL).unwrap();
    println!("ready");
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

/// Set in the echo process that [`floors`] starts.
const ECHO_ENV: &str = "OBJMGR_BENCH_ECHO";

/// What the echo process does with a message, by its first byte.
const ECHO_PLAIN: u8 = 0;
/// Answers with a 64 KiB memfd attached (what an open's reply carries).
const ECHO_WITH_FD: u8 = 1;
/// Answers nothing (a one-way message, as a close is).
const ECHO_ONE_WAY: u8 = 2;
/// Brings the page and the doorbell (attached) through which the paged
/// floors ask, as objmgr's requests without descriptors do (see
/// `objmgr_sync::close_ring`).
const ECHO_PAGE: u8 = 3;

/// The echo process: answers every message on its stdin (one end of a
/// `SOCK_SEQPACKET` pair) the way the broker does, from an `epoll` loop.
fn echo_server() {
    use rustix::event::epoll;
    use rustix::net::{
        RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, send, sendmsg,
    };
    let memfd = rustix::fs::memfd_create("echo", MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, SMALL).unwrap();
    let socket = std::io::stdin();
    let epoll_fd = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    epoll::add(
        &epoll_fd,
        &socket,
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN,
    )
    .unwrap();
    let mut events = Vec::with_capacity(8);
    let mut buf = vec![0u8; 64 * 1024];
    let mut page: Option<(objmgr_sync::close_ring::CloseRing, OwnedFd)> = None;
    // An answer with the memfd attached.
    let send_memfd = |answer: &[u8]| {
        let fds = [memfd.as_fd()];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let _ = sendmsg(
            &socket,
            &[std::io::IoSlice::new(answer)],
            &mut control,
            SendFlags::NOSIGNAL,
        );
    };
    loop {
        events.clear();
        let _ = epoll::wait(&epoll_fd, rustix::buffer::spare_capacity(&mut events), None);
        // As the broker does: the socket first, then the page if rung.
        let rang = events.iter().any(|e| e.data.u64() == 1);
        loop {
            let mut space =
                [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
            let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                &socket,
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            )
            .map(|msg| msg.bytes);
            if got.as_ref().is_ok_and(|&n| n > 0) && buf[0] == ECHO_PAGE {
                let mut fds = control.drain().flat_map(|m| match m {
                    rustix::net::RecvAncillaryMessage::ScmRights(fds) => fds.collect(),
                    _ => Vec::new(),
                });
                let (ring, bell) = (fds.next().unwrap(), fds.next().unwrap());
                let ring = objmgr_sync::close_ring::CloseRing::map(ring.as_fd()).unwrap();
                epoll::add(
                    &epoll_fd,
                    &bell,
                    epoll::EventData::new_u64(1),
                    epoll::EventFlags::IN | epoll::EventFlags::ET,
                )
                .unwrap();
                page = Some((ring, bell));
                continue;
            }
            match got {
                Ok(0) | Err(rustix::io::Errno::CONNRESET) => return,
                Ok(n) if buf[0] == ECHO_WITH_FD => send_memfd(&buf[..n]),
                Ok(_) if buf[0] == ECHO_ONE_WAY => {}
                Ok(n) => {
                    let _ = send(&socket, &buf[..n], SendFlags::NOSIGNAL);
                }
                Err(_) => break,
            }
        }
        if let Some((ring, _)) = page.as_mut().filter(|_| rang)
            && let Some(Ok(n)) = ring.take_request(&mut buf)
        {
            let seq = u32::from_le_bytes(buf[4..8].try_into().unwrap());
            if buf[0] == ECHO_WITH_FD {
                send_memfd(&buf[..n]);
                ring.post_reply(seq, None);
            } else {
                ring.post_reply(seq, Some(&buf[..n]));
            }
        }
    }
}

/// Receives a message with a descriptor attached, and gives the descriptor.
fn receive_fd(socket: &OwnedFd, buf: &mut [u8]) -> OwnedFd {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        socket,
        &mut [std::io::IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    control
        .drain()
        .find_map(|m| match m {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .unwrap()
}

/// The floors under calls that ask the broker something, measured against
/// a process that answers as the broker does (from `epoll`) but does
/// nothing else.
struct Floors {
    /// One request and its reply.
    round_trip: PerOp,
    /// The system calls of an open cycle of a section the process keeps:
    /// a request and its reply, and a map and unmap of a memfd it has.
    kept_cycle: PerOp,
    /// The system calls of an open cycle of a section only another process
    /// holds: a request answered with a memfd, a map and unmap of it, its
    /// close, and a one-way message (the close).
    open_cycle: PerOp,
    /// The same three through the page, as objmgr asks: the request left
    /// in shared memory and a doorbell (`eventfd`) rung, the answer in the
    /// page (futex-woken), or on the socket when it carries the memfd; the
    /// close a ring of the doorbell.
    paged_round_trip: PerOp,
    paged_kept_cycle: PerOp,
    paged_open_cycle: PerOp,
}

fn floors(batches: usize, iters: usize) -> Floors {
    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let mut echo = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ECHO_ENV, "1")
        .stdin(std::process::Stdio::from(theirs))
        .spawn()
        .unwrap();
    let mut request = [0u8; 48];
    let mut reply = [0u8; 256];
    request[0] = ECHO_PLAIN;
    let round_trip = measure(batches, iters, |_| {
        rustix::net::send(&ours, &request, SendFlags::empty()).unwrap();
        rustix::net::recv(&ours, &mut reply, RecvFlags::empty()).unwrap();
    });
    let open_cycle = measure(batches, iters, |_| {
        request[0] = ECHO_WITH_FD;
        rustix::net::send(&ours, &request, SendFlags::empty()).unwrap();
        let fd = receive_fd(&ours, &mut reply);
        raw_map_unmap(&fd, SMALL as usize, false);
        drop(fd);
        request[0] = ECHO_ONE_WAY;
        rustix::net::send(&ours, &request, SendFlags::empty()).unwrap();
    });
    let kept = rustix::fs::memfd_create("kept", MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&kept, SMALL).unwrap();
    let kept_cycle = measure(batches, iters, |_| {
        request[0] = ECHO_PLAIN;
        rustix::net::send(&ours, &request, SendFlags::empty()).unwrap();
        rustix::net::recv(&ours, &mut reply, RecvFlags::empty()).unwrap();
        raw_map_unmap(&kept, SMALL as usize, false);
    });

    // The page and its doorbell, given to the echo process.
    let (ring, ring_fd) = objmgr_sync::close_ring::CloseRing::create().unwrap();
    let bell = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage};
        let fds = [ring_fd.as_fd(), bell.as_fd()];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        rustix::net::sendmsg(
            &ours,
            &[std::io::IoSlice::new(&[ECHO_PAGE])],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
    }
    let mut seq = 0u32;
    let mut ask = |kind: u8, reply: &mut [u8]| {
        seq += 1;
        request[0] = kind;
        request[4..8].copy_from_slice(&seq.to_le_bytes());
        assert!(ring.post_request(seq, &request));
        rustix::io::write(&bell, &1u64.to_ne_bytes()).unwrap();
        ring.wait_reply(seq, std::time::Duration::from_secs(5), reply)
            .unwrap()
    };
    let paged_round_trip = measure(batches, iters, |_| {
        ask(ECHO_PLAIN, &mut reply);
    });
    let paged_kept_cycle = measure(batches, iters, |_| {
        ask(ECHO_PLAIN, &mut reply);
        raw_map_unmap(&kept, SMALL as usize, false);
    });
    let paged_open_cycle = measure(batches, iters, |_| {
        let on_socket = ask(ECHO_WITH_FD, &mut reply);
        assert_eq!(on_socket, objmgr_sync::close_ring::PagedReply::OnSocket);
        let fd = receive_fd(&ours, &mut reply);
        raw_map_unmap(&fd, SMALL as usize, false);
        drop(fd);
        // The close: a ring of the doorbell.
        rustix::io::write(&bell, &1u64.to_ne_bytes()).unwrap();
    });
    drop(ours);
    echo.wait().unwrap();
    Floors {
        round_trip,
        kept_cycle,
        open_cycle,
        paged_round_trip,
        paged_kept_cycle,
        paged_open_cycle,
    }
}

fn main() {
    if std::env::var_os(ECHO_ENV).is_some() {
        return echo_server();
    }
    if let Ok(name) = std::env::var(HOLDER_ENV) {
        return holder(&name);
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    // Raised before the broker starts, which inherits the limit: the
    // namespace measurement below has it hold a descriptor per section.
    let want = if quick { 10_000 } else { 100_000 };
    let limit = raise_fd_limit(want as u64 + 3000);
    let broker = Broker::start();
    let broker_pid = broker.pid();
    let socket_path = broker.socket.clone();
    println!(
        "objmgr section benchmarks (CPUs allowed: {}; broker pid {broker_pid})\n",
        cpus_allowed()
    );

    let (batches, iters) = if quick { (3, 200) } else { (9, 2000) };

    // 1. create + map + unmap + close of a new 64 KiB named section.
    let ours = measure(batches, iters, |i| {
        let section = Section::builder()
            .name(&format!("Local\\bench-new-{i}"))
            .size(SMALL)
            .create()
            .unwrap();
        drop(black_box(section.map(MapAccess::WRITE).unwrap()));
        section.close().unwrap();
    });
    let base = measure(batches, iters, raw_create_cycle);
    report(
        "create+map+unmap+close new 64 KiB named section",
        ours,
        base,
        "<= 2x",
    );

    // 2. open existing + map + unmap + close.
    let keep = Section::create("Local\\bench-existing", SMALL).unwrap();
    let open_cycle = || {
        let section = Section::open("Local\\bench-existing", MapAccess::READ).unwrap();
        drop(black_box(section.map(MapAccess::READ).unwrap()));
        section.close().unwrap();
    };
    let raw_name = format!("/objmgr-bench-existing-{}", std::process::id());
    // Unlinked however the run ends (a failed measurement panics).
    struct Unlink<'a>(&'a str);
    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            let _ = shm::unlink(self.0);
        }
    }
    let _unlink = Unlink(&raw_name);
    let raw_keep = shm::open(
        &raw_name,
        shm::OFlags::CREATE | shm::OFlags::RDWR,
        Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    rustix::fs::ftruncate(&raw_keep, SMALL).unwrap();
    let raw_open_cycle = || {
        let fd = shm::open(&raw_name, shm::OFlags::RDONLY, Mode::empty()).unwrap();
        raw_map_unmap(&fd, SMALL as usize, false);
    };
    let open_100 = {
        let fillers: Vec<Section> = (0..100)
            .map(|i| Section::create(&format!("Local\\bench-fill-{i}"), 4096).unwrap())
            .collect();
        let t = measure(batches, iters, |_| open_cycle());
        drop(fillers);
        t
    };
    let base = measure(batches, iters, |_| raw_open_cycle());
    report(
        "open existing+map+unmap+close, kept by this process",
        open_100,
        base,
        "<= 2.5x",
    );
    // The same open of a section only another process holds: the broker
    // sends its fd, and the close is the process's last (a message).
    let mut holder = std::process::Command::new(std::env::current_exe().unwrap())
        .env(HOLDER_ENV, "Local\\bench-theirs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "the holder made its section");
    let open_theirs = measure(batches, iters, |_| {
        let section = Section::open("Local\\bench-theirs", MapAccess::READ).unwrap();
        drop(black_box(section.map(MapAccess::READ).unwrap()));
        section.close().unwrap();
    });
    drop(holder.stdin.take());
    holder.wait().unwrap();
    report(
        "open existing+map+unmap+close, held by another process",
        open_theirs,
        base,
        "<= 2.5x",
    );
    let floor = floors(batches, iters);
    println!(
        "{:<58} {:>10}  ({:.2}x the raw open cycle by itself)",
        "floor: one request/reply to another process (epoll)",
        floor.round_trip,
        floor.round_trip.as_secs_f64() / base.as_secs_f64()
    );
    let against = |name: &str, floor: PerOp, objmgr: PerOp| {
        println!(
            "{name:<58} {floor:>10}  ({:.2}x the raw open cycle; objmgr is {:.2}x this)",
            floor.as_secs_f64() / base.as_secs_f64(),
            objmgr.as_secs_f64() / floor.as_secs_f64()
        );
    };
    against(
        "floor: that round trip, map+unmap of an fd it has",
        floor.kept_cycle,
        open_100,
    );
    against(
        "floor: the round trip with an fd, map+unmap, one-way close",
        floor.open_cycle,
        open_theirs,
    );
    println!(
        "{:<58} {:>10}  ({:.2}x the raw open cycle by itself)",
        "floor: one request/reply through a page (doorbell, futex)",
        floor.paged_round_trip,
        floor.paged_round_trip.as_secs_f64() / base.as_secs_f64()
    );
    against(
        "floor: that round trip, map+unmap of an fd it has",
        floor.paged_kept_cycle,
        open_100,
    );
    against(
        "floor: paged, fd on the socket, map+unmap, close rung",
        floor.paged_open_cycle,
        open_theirs,
    );

    // 3. Broker memory per connected process: raw connections that said Hello
    // (before the namespace fill below, whose freed memory the broker would
    // reuse for them).
    let conns = if quick { 100 } else { 1000 };
    let rss_before = rss_bytes(broker_pid);
    let sockets: Vec<OwnedFd> = (0..conns)
        .map(|_| {
            use rustix::net::*;
            let fd = socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
            connect(&fd, &SocketAddrUnix::new(&socket_path).unwrap()).unwrap();
            send(
                &fd,
                &Request::Hello {
                    version: PROTOCOL_VERSION,
                }
                .encode(1),
                SendFlags::empty(),
            )
            .unwrap();
            let mut buf = [0u8; 256];
            recv(&fd, &mut buf, RecvFlags::empty()).unwrap();
            fd
        })
        .collect();
    let rss_after = rss_bytes(broker_pid);
    println!(
        "{:<58} {} bytes per connected process (RSS {} -> {} over {conns})",
        "broker memory per connected process",
        rss_after.saturating_sub(rss_before) / conns as u64,
        rss_before,
        rss_after
    );
    drop(sockets);

    // 4. The same open with 100,000 live named objects. Every type shares
    // the namespace. Each live section holds a descriptor in the broker and
    // one here, so sections fill it as far as the descriptor limit allows
    // and events (which hold none) fill the rest.
    // The broker keeps 1,024 descriptors in reserve, and some for itself.
    let section_count = want.min(limit.saturating_sub(2000) as usize);
    let fill_sections = |range: std::ops::Range<usize>| -> Vec<Section> {
        range
            .map(|i| Section::create(&format!("Local\\bench-many-{i}"), 4096).unwrap())
            .collect()
    };
    let fill_events = |range: std::ops::Range<usize>| -> Vec<Event> {
        range
            .map(|i| {
                let name = format!("Local\\bench-many-{i}");
                Event::create(Some(&name), Reset::Manual, false).unwrap()
            })
            .collect()
    };
    // Rounds of: 100 live, measure; fill to `want`, measure; empty again.
    // The two figures of a round come from the same stretch of the run, and
    // the median over rounds evens out this VM's drift.
    let rounds = if quick { 1 } else { 3 };
    let (mut few, mut many) = (Vec::new(), Vec::new());
    let (mut per_section, mut fill_time) = (0, Duration::ZERO);
    for round in 0..rounds {
        let mut sections = fill_sections(0..100);
        few.push(measure(batches, iters, |_| open_cycle()));
        let rss_before = rss_bytes(broker_pid);
        let start = Instant::now();
        sections.extend(fill_sections(100..section_count));
        if round == 0 {
            fill_time = start.elapsed();
            per_section = rss_bytes(broker_pid).saturating_sub(rss_before)
                / (section_count - 100).max(1) as u64;
        }
        let events = fill_events(section_count..want);
        many.push(measure(batches, iters, |_| open_cycle()));
        drop(events);
        drop(sections);
    }
    few.sort_by(|a, b| a.0.total_cmp(&b.0));
    many.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (open_few, open_many) = (few[few.len() / 2], many[many.len() / 2]);
    let ratio = open_many.as_secs_f64() / open_few.as_secs_f64();
    println!(
        "{:<58} {want} live ({section_count} sections, {} events): {:>10}  100 live: {:>10}  ratio {ratio:>5.2}x  (target <= 1.2x; median of {rounds} rounds)",
        "open existing with many named objects",
        want - section_count,
        open_many,
        open_few
    );
    println!(
        "{:<58} {per_section} bytes per live section (first round; creating {} took {fill_time:.2?})",
        "broker memory per live object",
        section_count - 100,
    );

    // 5. Writing a 256 MiB view vs a raw MAP_SHARED memfd mapping.
    let big: usize = if quick { 32 << 20 } else { 256 << 20 };
    let runs = if quick { 3 } else { 5 };
    let fill = |ptr: *mut u8, len: usize, byte: u8| {
        // SAFETY: ptr..ptr+len is a live writable mapping owned by the caller.
        unsafe { std::ptr::write_bytes(ptr, byte, len) };
        black_box(ptr);
    };
    for prefault in [false, true] {
        let mut first = Vec::new();
        let mut warm = Vec::new();
        let mut raw_first = Vec::new();
        let mut raw_warm = Vec::new();
        for _ in 0..runs {
            let section = Section::builder().size(big as u64).create().unwrap();
            let start = Instant::now();
            let view = section
                .map_with(&MapOptions {
                    prefault,
                    ..MapOptions::new(MapAccess::WRITE)
                })
                .unwrap();
            fill(view.as_ptr(), big, 1);
            first.push(start.elapsed());
            let start = Instant::now();
            fill(view.as_ptr(), big, 2);
            warm.push(start.elapsed());
            drop(view);
            drop(section);

            let fd = rustix::fs::memfd_create("bench", MemfdFlags::CLOEXEC).unwrap();
            rustix::fs::ftruncate(&fd, big as u64).unwrap();
            let flags = if prefault {
                MapFlags::SHARED | MapFlags::POPULATE
            } else {
                MapFlags::SHARED
            };
            let start = Instant::now();
            // SAFETY: a fresh shared mapping of our memfd, unmapped below.
            let p = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    big,
                    ProtFlags::READ | ProtFlags::WRITE,
                    flags,
                    &fd,
                    0,
                )
                .unwrap()
            };
            fill(p.cast(), big, 1);
            raw_first.push(start.elapsed());
            let start = Instant::now();
            fill(p.cast(), big, 2);
            raw_warm.push(start.elapsed());
            // SAFETY: unmapping the mapping made above; not used afterwards.
            unsafe { rustix::mm::munmap(p, big).unwrap() };
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let label = if prefault {
            "prefaulted"
        } else {
            "first touch"
        };
        report(
            &format!("write {} MiB view, {label}", big >> 20),
            median(&mut first).into(),
            median(&mut raw_first).into(),
            "<= 1.0x",
        );
        report(
            &format!("write {} MiB view, warm ({label} mapping)", big >> 20),
            median(&mut warm).into(),
            median(&mut raw_warm).into(),
            "<= 1.03x",
        );
    }

    drop(keep);
    drop(raw_keep);
    drop(broker);
}
