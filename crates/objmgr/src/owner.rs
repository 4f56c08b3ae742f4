//! Who is calling: the thread identity that owns mutexes and holds slot
//! locks in shared sync state, and the mutexes each thread owns.
//!
//! A thread's [`Token`] is its process's broker-assigned tag plus a thread
//! number unique in the process. It is made on the thread's first sync
//! operation and kept in thread-local storage, so waits and signals need no
//! broker and no system call to learn who is calling. When a thread exits
//! holding mutexes they are abandoned (the thread-local destructor does it;
//! the broker does it for a process that dies). Thread state belongs to one
//! connection generation: a forked child, or a process whose broker went
//! away, gets a new tag, and every thread state made before is discarded.

use std::cell::RefCell;
use std::sync::Mutex;

use objmgr_sync::ops::{self, Actor, Token};

use crate::connection;
use crate::error::{ERROR_NO_SYSTEM_RESOURCES, Error, Result};
use crate::sync::SlotRef;

/// Thread numbers of the current epoch: the free list and the next new one.
struct ThreadNumbers {
    epoch: u64,
    free: Vec<u32>,
    next: u32,
}

static NUMBERS: Mutex<ThreadNumbers> = Mutex::new(ThreadNumbers {
    epoch: 0,
    free: Vec::new(),
    next: 0,
});

/// Ends the calling thread's ownership now, as its exit does: the mutexes it
/// owns are abandoned and its token freed (a later sync call in the thread
/// starts afresh).
pub(crate) fn end_thread() {
    let state = THREAD.try_with(|thread| thread.borrow_mut().take());
    drop(state);
}

/// Makes the calling thread's state destroyed before the thread-locals
/// touched before this call and after those touched after it (thread-local
/// destructors run in reverse order of first use): a thread started by
/// objmgr calls it right after registering its own exit, so that its
/// mutexes are abandoned after every destructor of the thread's own code.
pub(crate) fn register_exit_order() {
    let _ = THREAD.try_with(|_| ());
}

/// The thread numbers, locked (for the `fork()` handlers).
pub(crate) fn lock_numbers_for_fork() -> Box<dyn std::any::Any> {
    Box::new(NUMBERS.lock().unwrap_or_else(|p| p.into_inner()))
}

struct ThreadState {
    /// The connection generation the token belongs to.
    epoch: u64,
    actor: Actor,
    /// Mutexes it owns whose state this process may write.
    owned: Vec<SlotRef>,
    /// Whether it waited on objects of other users' domains (the broker
    /// abandons the mutexes it took for it when the thread exits).
    used_remote: bool,
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        if self.epoch != connection::current_generation() {
            return; // Of an older session (or the parent's): nothing to clean.
        }
        for owned in self.owned.drain(..) {
            ops::abandon_mutex(owned.get(), self.actor.token);
        }
        if self.used_remote {
            crate::remote_sync::abandon_thread(&self.actor);
        }
        let mut numbers = NUMBERS.lock().unwrap_or_else(|p| p.into_inner());
        if numbers.epoch == self.epoch {
            numbers
                .free
                .push(self.actor.token.raw() & (Token::MAX_THREADS - 1));
        }
    }
}

thread_local! {
    static THREAD: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

fn new_thread_state() -> Result<ThreadState> {
    let (tag, epoch) = connection::client_tag()?;
    let number = {
        let mut numbers = NUMBERS.lock().unwrap_or_else(|p| p.into_inner());
        if numbers.epoch != epoch {
            *numbers = ThreadNumbers {
                epoch,
                free: Vec::new(),
                next: 0,
            };
        }
        match numbers.free.pop() {
            Some(n) => n,
            None => {
                numbers.next += 1;
                numbers.next - 1
            }
        }
    };
    let token = Token::new(tag, number).ok_or_else(|| {
        Error::new(
            ERROR_NO_SYSTEM_RESOURCES,
            format!(
                "more than {} threads use synchronization objects at once",
                Token::MAX_THREADS
            ),
        )
    })?;
    Ok(ThreadState {
        epoch,
        actor: Actor {
            token,
            pid: rustix::process::getpid().as_raw_nonzero().get() as u32,
            tid: rustix::thread::gettid().as_raw_nonzero().get() as u32,
        },
        owned: Vec::new(),
        used_remote: false,
    })
}

/// Runs `f` with the calling thread's state, making it on first use.
/// Fails (rather than panics) in a thread-local destructor that runs after
/// the thread's own state is gone.
fn with_state<T>(f: impl FnOnce(&mut ThreadState) -> T) -> Result<T> {
    let gone = || {
        Error::new(
            crate::error::ERROR_INVALID_HANDLE,
            "the calling thread is exiting: its synchronization state is gone",
        )
    };
    THREAD
        .try_with(|cell| {
            let mut state = cell.borrow_mut();
            let epoch = connection::current_generation();
            if state.as_ref().is_none_or(|s| s.epoch != epoch) {
                if let Some(mut stale) = state.take() {
                    // Mutexes of another session (or the parent's) are not ours.
                    stale.owned.clear();
                }
                *state = Some(new_thread_state()?);
            }
            Ok(f(state.as_mut().expect("made above")))
        })
        .unwrap_or_else(|_| Err(gone()))
}

/// The calling thread as sync operations see it.
pub(crate) struct Thread<'a>(&'a mut ThreadState);

impl Thread<'_> {
    pub(crate) fn actor(&self) -> &Actor {
        &self.0.actor
    }

    /// Records that this thread now owns the mutex in `slot` (kept mapped
    /// while owned).
    pub(crate) fn owns(&mut self, slot: &SlotRef) {
        // The broker keeps track of what it took for the thread.
        if slot.writable() {
            self.0.owned.push(slot.clone());
        }
    }

    /// Records that this thread is about to wait through the broker.
    pub(crate) fn uses_remote(&mut self) {
        self.0.used_remote = true;
    }

    /// Records that this thread released the mutex in `slot` for good.
    pub(crate) fn disowns(&mut self, slot: &SlotRef) {
        if !slot.writable() {
            return;
        }
        let released = slot.get();
        if let Some(pos) = self
            .0
            .owned
            .iter()
            .rposition(|o| std::ptr::eq(o.get(), released))
        {
            self.0.owned.swap_remove(pos);
        }
    }
}

/// Runs `f` with the calling thread (made on first use). `f` must not call
/// back into this module.
pub(crate) fn with_thread<T>(f: impl FnOnce(&mut Thread<'_>) -> T) -> Result<T> {
    with_state(|state| f(&mut Thread(state)))
}

/// The calling thread's identity.
pub(crate) fn current() -> Result<Actor> {
    with_state(|t| t.actor)
}
