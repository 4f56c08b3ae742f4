//! A process's *close ring*: one page it shares with its broker, in which it
//! leaves the handles it closes that need no message.
//!
//! A close that cannot free anything (the process holds another handle to
//! the same section) need not wake the broker at once: nobody can tell it
//! apart from a close done a moment later, as long as it is done before the
//! broker serves any request, from any process. The broker reads every ring
//! after each look at its connections and before it serves anything, so
//! `CloseHandle`'s guarantee (once it returns, the handle is closed for
//! everyone) holds, and the close costs the process a store instead of a
//! message and two context switches.
//!
//! One producer (the process, under its connection's lock) and one consumer
//! (the broker's thread). The page is shared with a process the broker does
//! not trust: the broker keeps its own read position and checks every
//! number it reads ([`CloseRing::drain`]); the memory file is sealed at one
//! page, so a client cannot shrink it under the broker's mapping.
//!
//! The broker also says in the page how far it got with the connection's
//! requests ([`Progress`]): the sequence number of the request it began to
//! serve and of the one it finished, with what the finished one left. A
//! process whose broker died before its answer came reads it there: a
//! request the broker never began can be sent to a new broker whatever it
//! is, and a remote operation it finished gives its outcome there (anything
//! else it finished, or began, may have been done: the call fails).
//!
//! Like [`crate::arena`], this module maps shared memory; the rules relied on
//! are that a [`CloseRing`] owns its one-page mapping for its whole life and
//! that the page is only ever used through atomics.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// Bytes in a ring: one page.
pub const RING_BYTES: usize = 4096;
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
const _: () = assert!(RESULT + RESULT_WORDS <= WORDS && BEGAN.is_multiple_of(16));

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
}

// SAFETY: the mapping is one page of atomics owned by the ring; it may be
// used from any thread and unmapped from any thread.
unsafe impl Send for CloseRing {}

impl CloseRing {
    /// Makes a new ring (the broker's side): a sealed one-page memory file,
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

    /// Maps the ring in `fd` (the process's side), which must be one page
    /// long and sealed against shrinking.
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
        Ok(CloseRing { words, taken: 0 })
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
    fn the_page_cannot_shrink_under_the_broker() {
        let (_broker, fd) = CloseRing::create().unwrap();
        assert!(rustix::fs::ftruncate(&fd, 0).is_err());
        let other = rustix::fs::memfd_create("unsealed", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&other, RING_BYTES as u64).unwrap();
        assert!(CloseRing::map(other.as_fd()).is_err());
    }
}
