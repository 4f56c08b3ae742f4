//! A process's *close ring*: memory it shares with its broker (three pages),
//! in which it leaves the handles it closes that need no message.
//!
//! A close that cannot free anything (the process holds another handle to
//! the same section) need not wake the broker at once: nobody can tell it
//! apart from a close done a moment later, as long as it is done before the
//! broker serves any request, from any process. The broker reads every ring
//! after each look at its connections and before it serves anything, so
//! `CloseHandle`'s guarantee (once it returns, the handle is closed for
//! everyone) holds, and the close costs the process a store instead of a
//! message and two context switches. A close that may free its section
//! goes there too when the connection has a doorbell (below), which the
//! process rings after it: the broker wakes and frees the section at once,
//! without a message to read.
//!
//! One producer (the process, under its connection's lock) and one consumer
//! (the broker's thread). The page is shared with a process the broker does
//! not trust: the broker keeps its own read position and checks every
//! number it reads ([`CloseRing::drain`]); the memory file is sealed at its
//! size, so a client cannot shrink it under the broker's mapping.
//!
//! The broker also says in the page how far it got with the connection's
//! requests ([`Progress`]): the sequence number of the request it began to
//! serve and of the one it finished, with what the finished one left. A
//! process whose broker died before its answer came reads it there: a
//! request the broker never began can be sent to a new broker whatever it
//! is, and a remote operation it finished gives its outcome there (anything
//! else it finished, or began, may have been done: the call fails).
//!
//! The page also carries the connection's requests that need no
//! descriptor, and their answers ([`CloseRing::post_request`],
//! [`CloseRing::take_request`], [`CloseRing::post_reply`],
//! [`CloseRing::wait_reply`]): the process writes a request in its second
//! page and rings the connection's doorbell (an `eventfd` in the broker's
//! `epoll`); the broker copies the request out before it decodes it, and
//! writes the answer in the third page, where the process sleeps on a
//! futex for it. That round trip costs two wake-ups and no socket message
//! (5 µs against 8–9 µs on one CPU of the project's VM): the socket still
//! carries what holds a descriptor, and says when the broker is gone.
//!
//! Like [`crate::arena`], this module maps shared memory; the rules relied on
//! are that a [`CloseRing`] owns its mapping for its whole life and
//! that the page is only ever used through atomics.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// Bytes in a page.
const PAGE: usize = 4096;
/// Bytes in a ring: the closes and the broker's progress, a request, and
/// an answer, one page each (each side writes only its own pages but the
/// first's head and progress words).
pub const RING_BYTES: usize = 3 * PAGE;
/// Words in the page.
const WORDS: usize = RING_BYTES / 4;
/// The word the producer writes: how many handles it has put in, ever
/// (wrapping).
const TAIL: usize = 0;
/// The word the broker writes: how many it has taken out. On a cache line
/// of its own, so the two sides do not write the same line.
const HEAD: usize = 16;
/// Where the entries start (after the two cache lines).
const FIRST: usize = 32;
/// Words per entry: the handle value, a word unused, and the broker's
/// number for the handle's object (low word first).
const ENTRY_WORDS: usize = 4;
/// Closes a ring holds before the process must send a message instead: a
/// power of two, so that the counts wrap around the ring exactly.
pub const CAPACITY: u32 = 128;
const _: () = assert!(FIRST + CAPACITY as usize * ENTRY_WORDS <= WORDS);
const _: () = assert!(CAPACITY.is_power_of_two());
/// The words the broker writes about the connection's requests (on cache
/// lines of their own): the request it began, the one it finished, and
/// the finished one's result.
const BEGAN: usize = FIRST + CAPACITY as usize * ENTRY_WORDS + 32;
const FINISHED: usize = BEGAN + 1;
const RESULT: usize = BEGAN + 2;
/// Words a finished request leaves.
pub const RESULT_WORDS: usize = 6;
const _: () = assert!(RESULT + RESULT_WORDS <= PAGE / 4 && BEGAN.is_multiple_of(16));
/// The request page: its sequence number (written last), its length, and
/// from the next cache line its bytes.
const REQUEST_SEQ: usize = PAGE / 4;
const REQUEST_LEN: usize = REQUEST_SEQ + 1;
const REQUEST_BYTES: usize = REQUEST_SEQ + 16;
/// The answer page, laid out the same way; a length of [`ON_SOCKET`] says
/// the answer went on the socket (it carries a descriptor, or is too long).
const REPLY_SEQ: usize = 2 * PAGE / 4;
const REPLY_LEN: usize = REPLY_SEQ + 1;
const REPLY_BYTES: usize = REPLY_SEQ + 16;
const ON_SOCKET: u32 = u32::MAX;
/// The longest request or answer a page carries.
pub const MESSAGE_BYTES: usize = PAGE - 64;
const _: () = assert!(REPLY_BYTES + MESSAGE_BYTES / 4 == WORDS);

/// Where the broker put its answer to a request that came in the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagedReply {
    /// In the page: this many bytes, copied out.
    InPage(usize),
    /// On the connection's socket.
    OnSocket,
}

/// How far the broker got with a connection's requests (read by the
/// process, for the request its broker died under).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The sequence number of the last request the broker began to serve.
    pub began: u32,
    /// The last it finished (its answer was on its way).
    pub finished: u32,
    /// What that one left (see `RemoteReply::to_words`).
    pub result: [u32; RESULT_WORDS],
}

/// One close: a handle, and the object the process knows it by (so that a
/// value that names another object by the time the broker reads it, having
/// been closed and reused behind the process's back, is left alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingClose {
    pub handle: u32,
    pub object: u64,
}

/// A mapped close ring.
#[derive(Debug)]
pub struct CloseRing {
    words: NonNull<AtomicU32>,
    /// The broker's own read position (never read back from the page,
    /// which the process could change); unused by the process.
    taken: u32,
    /// The sequence number of the last request the broker took from the
    /// page (its own copy, like `taken`).
    requests_taken: u32,
}

// SAFETY: the mapping is [`RING_BYTES`] of atomics owned by the ring; it may be
// used from any thread and unmapped from any thread.
unsafe impl Send for CloseRing {}

impl CloseRing {
    /// Makes a new ring (the broker's side): a sealed memory file,
    /// mapped, and the fd to give the process.
    pub fn create() -> rustix::io::Result<(CloseRing, OwnedFd)> {
        let fd = rustix::fs::memfd_create(
            "objmgr-close-ring",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&fd, RING_BYTES as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let ring = CloseRing::map(fd.as_fd())?;
        Ok((ring, fd))
    }

    /// Maps the ring in `fd` (the process's side), which must be
    /// [`RING_BYTES`] long and sealed against shrinking.
    pub fn map(fd: BorrowedFd<'_>) -> rustix::io::Result<CloseRing> {
        let seals = rustix::fs::fcntl_get_seals(fd)?;
        if rustix::fs::fstat(fd)?.st_size != RING_BYTES as i64 || !seals.contains(SealFlags::SHRINK)
        {
            return Err(rustix::io::Errno::INVAL);
        }
        // SAFETY: a new shared mapping at an address the kernel chooses; it
        // replaces nothing, and the ring owns it until Drop. The file cannot
        // shrink (sealed), so every word stays backed.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                RING_BYTES,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let words = NonNull::new(ptr.cast::<AtomicU32>()).ok_or(rustix::io::Errno::NOMEM)?;
        Ok(CloseRing {
            words,
            taken: 0,
            requests_taken: 0,
        })
    }

    /// Leaves the mapping out of the process's children (`MADV_DONTFORK`):
    /// the process's side, whose page lets whoever writes it ask the broker
    /// as this process. A child must then forget its copy of the ring, not
    /// drop it (the range is not mapped there).
    pub fn keep_from_children(&self) -> rustix::io::Result<()> {
        // SAFETY: the range is this ring's own whole mapping; the advice
        // changes only what a child inherits, not this process's memory.
        unsafe {
            rustix::mm::madvise(
                self.words.as_ptr().cast(),
                RING_BYTES,
                rustix::mm::Advice::LinuxDontFork,
            )
        }
    }

    fn word(&self, index: usize) -> &AtomicU32 {
        debug_assert!(index < WORDS);
        // SAFETY: every index used is below WORDS, inside the page, which
        // lives as long as `self`; the page is only used through atomics,
        // so a shared reference is sound while the other side writes it.
        unsafe { &*self.words.as_ptr().add(index % WORDS) }
    }

    /// The first word of the entry at `position` (any count: the ring's
    /// capacity divides 2^32, so positions wrap with the counts).
    fn place(position: u32) -> usize {
        FIRST + (position & (CAPACITY - 1)) as usize * ENTRY_WORDS
    }

    /// Puts `close` in the ring (the process's side; one thread at a time).
    /// False if the ring is full: the close must be sent as a message.
    pub fn push(&self, close: RingClose) -> bool {
        let tail = self.word(TAIL).load(Ordering::Relaxed);
        let head = self.word(HEAD).load(Ordering::Acquire);
        if tail.wrapping_sub(head) >= CAPACITY {
            return false;
        }
        let at = Self::place(tail);
        self.word(at).store(close.handle, Ordering::Relaxed);
        self.word(at + 2)
            .store(close.object as u32, Ordering::Relaxed);
        self.word(at + 3)
            .store((close.object >> 32) as u32, Ordering::Relaxed);
        // Release: the broker that reads the new tail reads the entry too.
        self.word(TAIL)
            .store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// The broker begins to serve request `seq` (the broker's side).
    pub fn note_began(&self, seq: u32) {
        self.word(BEGAN).store(seq, Ordering::Release);
    }

    /// The broker finished request `seq`, which left `result` (the
    /// broker's side): its answer is sent next.
    pub fn note_finished(&self, seq: u32, result: [u32; RESULT_WORDS]) {
        for (i, word) in result.into_iter().enumerate() {
            self.word(RESULT + i).store(word, Ordering::Relaxed);
        }
        // Release: the process that reads the number reads the result too.
        self.word(FINISHED).store(seq, Ordering::Release);
    }

    /// How far the broker got (the process's side).
    pub fn progress(&self) -> Progress {
        let finished = self.word(FINISHED).load(Ordering::Acquire);
        let result = std::array::from_fn(|i| self.word(RESULT + i).load(Ordering::Relaxed));
        Progress {
            began: self.word(BEGAN).load(Ordering::Acquire),
            finished,
            result,
        }
    }

    /// Copies `bytes` into the words from `first` on, four to a word.
    fn write_bytes(&self, first: usize, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.word(first + i)
                .store(u32::from_le_bytes(word), Ordering::Relaxed);
        }
    }

    /// Copies `len` bytes out of the words from `first` on into `out`.
    fn read_bytes(&self, first: usize, len: usize, out: &mut [u8]) {
        for (i, chunk) in out[..len].chunks_mut(4).enumerate() {
            let word = self.word(first + i).load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// Puts request `seq` in the page (the process's side, one request at
    /// a time, under its connection's lock): false if it is too long for
    /// it. The process then rings the doorbell.
    pub fn post_request(&self, seq: u32, bytes: &[u8]) -> bool {
        if bytes.len() > MESSAGE_BYTES {
            return false;
        }
        self.write_bytes(REQUEST_BYTES, bytes);
        self.word(REQUEST_LEN)
            .store(bytes.len() as u32, Ordering::Relaxed);
        // Release: the broker that reads the number reads the request too.
        self.word(REQUEST_SEQ).store(seq, Ordering::Release);
        true
    }

    /// Copies a request the process put in the page since the last one
    /// taken into `out` and gives its length (the broker's side): `None` if
    /// there is none. The broker decodes only its copy, which the process
    /// can no longer change; a length past the page is the process's lie
    /// and gives `Some(Err(..))`.
    pub fn take_request(&mut self, out: &mut [u8]) -> Option<Result<usize, ()>> {
        let seq = self.word(REQUEST_SEQ).load(Ordering::Acquire);
        if seq == self.requests_taken {
            return None;
        }
        self.requests_taken = seq;
        let len = self.word(REQUEST_LEN).load(Ordering::Relaxed) as usize;
        if len > MESSAGE_BYTES || len > out.len() {
            return Some(Err(()));
        }
        self.read_bytes(REQUEST_BYTES, len, out);
        Some(Ok(len))
    }

    /// Answers request `seq` in the page, or (`None`) says the answer is on
    /// the socket, and wakes the process (the broker's side). An answer too
    /// long for the page is not written: false, and the broker sends it on
    /// the socket and says so.
    pub fn post_reply(&self, seq: u32, bytes: Option<&[u8]>) -> bool {
        let len = match bytes {
            Some(bytes) if bytes.len() > MESSAGE_BYTES => return false,
            Some(bytes) => {
                self.write_bytes(REPLY_BYTES, bytes);
                bytes.len() as u32
            }
            None => ON_SOCKET,
        };
        self.word(REPLY_LEN).store(len, Ordering::Relaxed);
        // Release: the process that reads the number reads the answer too.
        let seq_word = self.word(REPLY_SEQ);
        seq_word.store(seq, Ordering::Release);
        let _ = rustix::thread::futex::wake(seq_word, rustix::thread::futex::Flags::empty(), 1);
        true
    }

    /// Waits up to `patience` for the broker's answer to request `seq` (the
    /// process's side) and copies it into `out`: `None` if it did not come
    /// (the process then checks that its broker still lives).
    pub fn wait_reply(
        &self,
        seq: u32,
        patience: std::time::Duration,
        out: &mut [u8],
    ) -> Option<PagedReply> {
        let seq_word = self.word(REPLY_SEQ);
        let deadline = std::time::Instant::now() + patience;
        loop {
            let now = seq_word.load(Ordering::Acquire);
            if now == seq {
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let left = rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            // Woken by the answer, a signal or the time running out: the
            // loop looks again either way.
            let _ = rustix::thread::futex::wait(
                seq_word,
                rustix::thread::futex::Flags::empty(),
                now,
                Some(&left),
            );
        }
        match self.word(REPLY_LEN).load(Ordering::Relaxed) {
            ON_SOCKET => Some(PagedReply::OnSocket),
            len if (len as usize) <= MESSAGE_BYTES.min(out.len()) => {
                self.read_bytes(REPLY_BYTES, len as usize, out);
                Some(PagedReply::InPage(len as usize))
            }
            // (Only the process itself could have written this.)
            _ => Some(PagedReply::InPage(0)),
        }
    }

    /// Takes every close the process has put in since the last drain, in
    /// order, and gives each to `close` (the broker's side). A tail that
    /// claims more than the ring holds is the process's lie: nothing is
    /// taken, and the ring starts over from that tail. Never takes more
    /// than [`CAPACITY`] closes.
    pub fn drain(&mut self, mut close: impl FnMut(RingClose)) {
        let tail = self.word(TAIL).load(Ordering::Acquire);
        let count = tail.wrapping_sub(self.taken);
        if count == 0 {
            return;
        }
        if count <= CAPACITY {
            for i in 0..count {
                let at = Self::place(self.taken.wrapping_add(i));
                let word = |n: usize| self.word(at + n).load(Ordering::Relaxed);
                close(RingClose {
                    handle: word(0),
                    object: u64::from(word(2)) | (u64::from(word(3)) << 32),
                });
            }
        }
        self.taken = tail;
        self.word(HEAD).store(tail, Ordering::Release);
    }
}

impl Drop for CloseRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this base and length
        // and is unmapped once; every reference into it borrowed `self`.
        let _ = unsafe { rustix::mm::munmap(self.words.as_ptr().cast(), RING_BYTES) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(handle: u32) -> RingClose {
        RingClose {
            handle,
            object: (u64::from(handle) << 32) | 0x9000_0001,
        }
    }

    fn drained(broker: &mut CloseRing) -> Vec<RingClose> {
        let mut seen = Vec::new();
        broker.drain(|c| seen.push(c));
        seen
    }

    #[test]
    fn the_process_reads_how_far_the_broker_got() {
        let (broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        broker.note_began(7);
        let began = process.progress();
        assert_eq!((began.began, began.finished), (7, 0));
        broker.note_finished(7, [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            process.progress(),
            Progress {
                began: 7,
                finished: 7,
                result: [1, 2, 3, 4, 5, 6]
            }
        );
        // Closes and progress do not share words.
        assert!(process.push(close(9)));
        let mut broker = broker;
        assert_eq!(drained(&mut broker), [close(9)]);
        assert_eq!(process.progress().result, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn closes_come_out_in_order_and_a_full_ring_refuses() {
        let (mut broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        for round in 0..3u32 {
            for i in 0..CAPACITY {
                assert!(process.push(close(round * 10_000 + i)));
            }
            assert!(!process.push(close(1)), "a full ring takes no more");
            let want: Vec<_> = (0..CAPACITY).map(|i| close(round * 10_000 + i)).collect();
            assert_eq!(drained(&mut broker), want);
            assert!(drained(&mut broker).is_empty(), "drained twice");
        }
    }

    #[test]
    fn the_counts_wrap_around_the_ring() {
        let (mut broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        // Both sides far along, just short of the counts' wrap.
        let start = u32::MAX - 40;
        process.word(TAIL).store(start, Ordering::Relaxed);
        process.word(HEAD).store(start, Ordering::Relaxed);
        broker.taken = start;
        for round in 0..4u32 {
            for i in 0..100 {
                assert!(process.push(close(round * 1000 + i)));
            }
            let want: Vec<_> = (0..100).map(|i| close(round * 1000 + i)).collect();
            assert_eq!(drained(&mut broker), want, "round {round}");
        }
    }

    #[test]
    fn a_lying_tail_yields_nothing_and_the_ring_goes_on() {
        let (mut broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        process.word(TAIL).store(CAPACITY + 5, Ordering::Release);
        assert!(drained(&mut broker).is_empty(), "a lie was believed");
        assert!(process.push(close(7)));
        assert_eq!(drained(&mut broker), [close(7)]);
    }

    #[test]
    fn a_request_and_its_answer_cross_the_page() {
        let (mut broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        let mut out = vec![0u8; MESSAGE_BYTES];
        assert_eq!(broker.take_request(&mut out), None, "nothing asked yet");
        // Lengths that are no multiple of a word come out whole.
        for (seq, len) in [(1u32, 0usize), (2, 5), (3, MESSAGE_BYTES)] {
            let request: Vec<u8> = (0..len).map(|i| (i * 7 + seq as usize) as u8).collect();
            assert!(process.post_request(seq, &request));
            assert_eq!(broker.take_request(&mut out), Some(Ok(len)));
            assert_eq!(out[..len], request[..]);
            assert_eq!(broker.take_request(&mut out), None, "taken twice");
            let answer: Vec<u8> = request.iter().rev().copied().collect();
            assert!(broker.post_reply(seq, Some(&answer)));
            let mut got = vec![0u8; MESSAGE_BYTES];
            let waited = process.wait_reply(seq, std::time::Duration::from_secs(5), &mut got);
            assert_eq!(waited, Some(PagedReply::InPage(len)));
            assert_eq!(got[..len], answer[..]);
        }
        assert!(broker.post_reply(4, None));
        let waited = process.wait_reply(4, std::time::Duration::ZERO, &mut out);
        assert_eq!(waited, Some(PagedReply::OnSocket));
        // What does not fit the page is refused on both sides.
        let long = vec![1u8; MESSAGE_BYTES + 1];
        assert!(!process.post_request(5, &long));
        assert!(!broker.post_reply(5, Some(&long)));
        assert_eq!(broker.take_request(&mut out), None);
    }

    #[test]
    fn an_answer_that_does_not_come_is_waited_for_only_so_long() {
        let (broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        assert!(broker.post_reply(6, Some(b"old")));
        let mut out = vec![0u8; 16];
        let started = std::time::Instant::now();
        let patience = std::time::Duration::from_millis(30);
        assert_eq!(process.wait_reply(7, patience, &mut out), None);
        assert!(started.elapsed() >= patience);
        // Woken by the answer from another thread (at once: not when its
        // patience runs out).
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                broker.post_reply(7, Some(b"new"));
            });
            let started = std::time::Instant::now();
            let waited = process.wait_reply(7, std::time::Duration::from_secs(30), &mut out);
            assert_eq!(waited, Some(PagedReply::InPage(3)));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "not woken"
            );
        });
        assert_eq!(&out[..3], b"new");
    }

    #[test]
    fn a_request_longer_than_its_page_is_a_lie_the_broker_refuses() {
        let (mut broker, fd) = CloseRing::create().unwrap();
        let process = CloseRing::map(fd.as_fd()).unwrap();
        assert!(process.post_request(1, b"short"));
        process
            .word(REQUEST_LEN)
            .store(MESSAGE_BYTES as u32 + 4, Ordering::Relaxed);
        let mut out = vec![0u8; 64 * 1024];
        assert_eq!(broker.take_request(&mut out), Some(Err(())));
        // A length that fits the page but not the broker's buffer, too.
        assert!(process.post_request(2, &[9u8; 100]));
        assert_eq!(broker.take_request(&mut out[..50]), Some(Err(())));
        // And a liar's answer, read by the process, comes out empty.
        broker
            .word(REPLY_LEN)
            .store(u32::MAX - 1, Ordering::Relaxed);
        broker.word(REPLY_SEQ).store(3, Ordering::Release);
        let waited = process.wait_reply(3, std::time::Duration::ZERO, &mut out);
        assert_eq!(waited, Some(PagedReply::InPage(0)));
    }

    #[test]
    fn the_page_cannot_shrink_under_the_broker() {
        let (_broker, fd) = CloseRing::create().unwrap();
        assert!(rustix::fs::ftruncate(&fd, 0).is_err());
        let other = rustix::fs::memfd_create("unsealed", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&other, RING_BYTES as u64).unwrap();
        assert!(CloseRing::map(other.as_fd()).is_err());
    }
}
