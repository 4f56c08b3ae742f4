//! The process's lifeline: a way to end every wait of the process at once.
//!
//! A client cuts it when its broker is gone, so that no wait on an object of
//! the lost session sleeps forever: each sleeping wait is woken and fails
//! with `ERROR_INVALID_HANDLE`, as does each wait that began before the cut
//! and would sleep after it (one that finds its object signaled still takes
//! it). Waits that begin after the cut are not affected. (The broker never
//! cuts its own.)
//!
//! A cut is two steps: [`begin_cut`] moves the lifeline (cheap, and done
//! under whatever lock orders it against new waits), then [`wake_sleepers`]
//! wakes the sleeps that began before (which may take a while).
//!
//! Waking a sleeper costs nothing while nobody cuts: before it sleeps, a
//! thread publishes the futex word it sleeps on in a record of its own, then
//! looks at the lifeline; the cutter moves the lifeline, then wakes the word
//! of every record that an older sleep published. One of the two sees the
//! other (both sides are sequentially consistent). A sleeper that published
//! its word but has not yet entered the kernel when the wake comes is woken
//! again, every millisecond, until it has left its sleep.
//!
//! This module's one `unsafe` block names a sleeper's word for the kernel:
//! the record is marked busy while the cutter wakes it, and a sleeper does
//! not leave its sleep (so its word stays alive) while its record is busy.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rustix::thread::futex;

/// How many times the lifeline was cut.
static CUTS: AtomicU32 = AtomicU32::new(0);

/// Every thread that ever slept, by its record.
static SLEEPERS: Mutex<Vec<Weak<Sleeper>>> = Mutex::new(Vec::new());

/// The low bit of a published address: the cutter is waking that word.
const BUSY: usize = 1;

/// Give up waking a sleeper that does not leave its sleep (it is stopped
/// right where it published its word) after this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// What one thread sleeps on, if it sleeps.
#[derive(Debug, Default)]
struct Sleeper {
    /// The address of the futex word (`| BUSY` while being woken), or 0.
    word: AtomicUsize,
    /// The lifeline as the sleep's wait found it when it began.
    life: AtomicU32,
}

thread_local! {
    static ME: Arc<Sleeper> = {
        let me = Arc::new(Sleeper::default());
        MY_RECORD.set(Arc::as_ptr(&me) as usize);
        let mut sleepers = SLEEPERS.lock().unwrap_or_else(|p| p.into_inner());
        sleepers.retain(|s| s.strong_count() > 0);
        sleepers.push(Arc::downgrade(&me));
        me
    };
    /// `ME`'s address once made (0 before): readable without making it.
    static MY_RECORD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Holds the list of sleepers across `fork()` (for the `fork()` handlers),
/// so that a child does not start with it locked.
pub fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(SLEEPERS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// In a forked child (after the fork handlers let go of the lock): forgets
/// the records of the parent's other threads, which do not exist here (and
/// whose sleeps, published in shared memory, are the parent's).
///
/// Skipped if the list is locked (a child made by a bare `clone` while a
/// vanished thread held it): a cut then also wakes words the parent sleeps
/// on, for a while, which costs the parent spurious wake-ups only.
pub fn forget_other_threads() {
    let Ok(mut sleepers) = SLEEPERS.try_lock() else {
        return;
    };
    let mine = MY_RECORD.try_with(std::cell::Cell::get).unwrap_or(0);
    sleepers.retain(|s| s.as_ptr() as usize == mine && mine != 0);
}

/// The lifeline now: a wait reads it before it checks its handles.
pub fn current() -> u32 {
    CUTS.load(SeqCst)
}

/// Why a sleep did not happen or ended: the lifeline was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut;

/// Runs `sleep` (a futex sleep on `word`, or on several of which `word` is
/// one) unless the lifeline has moved from `life`; fails with [`Cut`] if it
/// had moved or moves meanwhile. A thread-local destructor that sleeps
/// (after this thread's record is gone) sleeps unwatched.
pub fn sleep_on<R>(word: &AtomicU32, life: u32, sleep: impl FnOnce() -> R) -> Result<R, Cut> {
    let address = std::ptr::from_ref(word) as usize;
    let mut sleep = Some(sleep);
    let slept = ME.try_with(|me| {
        me.life.store(life, SeqCst);
        me.word.store(address, SeqCst);
        let result = (CUTS.load(SeqCst) == life).then(|| sleep.take().expect("not yet run")());
        // Not while the cutter wakes `word`: it must stay alive until then.
        loop {
            match me.word.compare_exchange(address, 0, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(busy) if busy == address | BUSY => std::thread::yield_now(),
                // Not ours any more (a sleep in a signal handler took the
                // record over and let it go): nothing to wait for.
                Err(_) => break,
            }
        }
        result
    });
    let result = match slept {
        Ok(Some(result)) => result,
        Ok(None) => return Err(Cut),
        Err(_) => sleep.take().expect("not run: no record")(),
    };
    if CUTS.load(SeqCst) != life {
        return Err(Cut);
    }
    Ok(result)
}

/// Cuts the lifeline: ends every wait of the process that began before.
/// Returns once every sleeper has been woken and left its sleep (or after
/// 10 seconds for one that does not).
pub fn cut() {
    begin_cut();
    wake_sleepers();
}

/// Moves the lifeline: from now on every wait that began before fails
/// instead of sleeping. [`wake_sleepers`] wakes those already asleep.
pub fn begin_cut() {
    CUTS.fetch_add(1, SeqCst);
}

/// Wakes every sleep that began before the last cut, again and again until
/// each has left (or 10 seconds have passed for one that does not).
pub fn wake_sleepers() {
    let deadline = Instant::now() + PATIENCE;
    while wake_sleepers_once() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wakes, once, every sleep that began before the last cut; returns whether
/// there was any (it may not have been in the kernel yet: look again).
pub fn wake_sleepers_once() -> bool {
    let cut = CUTS.load(SeqCst);
    let sleepers: Vec<Arc<Sleeper>> = SLEEPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut asleep = false;
    for sleeper in sleepers {
        let address = sleeper.word.load(SeqCst);
        // A sleep that began after the cut is none of its business.
        let older = (cut.wrapping_sub(sleeper.life.load(SeqCst)) as i32) > 0;
        if address == 0 || address & BUSY != 0 || !older {
            continue;
        }
        if sleeper
            .word
            .compare_exchange(address, address | BUSY, SeqCst, SeqCst)
            .is_err()
        {
            continue; // it left its sleep meanwhile
        }
        // SAFETY: `address` is the futex word of a sleep in progress:
        // the sleeper published it from a live reference, and cannot
        // leave its sleep (nor drop what holds the word) while its
        // record is marked busy, which it is until the store below.
        let word = unsafe { &*(address as *const AtomicU32) };
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
        sleeper.word.store(address, SeqCst);
        asleep = true;
    }
    asleep
}
