//! The data plane of objmgr's synchronization objects.
//!
//! Mutexes, events, semaphores and waitable timers keep their state in
//! *arenas*: one shared memory file holding many 64-byte [`Slot`]s, mapped
//! once by the broker and once by every client that uses a sync object. A
//! process holding 100,000 events therefore holds one mapping and no extra
//! file descriptors.
//!
//! Every wait and signal is done here, in the calling process, with atomic
//! operations on the slot's state word and futexes for sleeping; the broker is
//! not involved. The broker uses this crate to create arenas, initialize slots
//! and clean up after a process that died ([`ops::reap_client`]).
//!
//! The other page a process shares with its broker is its [`close_ring`]:
//! closes that free nothing wait there instead of being sent.
//!
//! # The state word
//! Each slot's `state` is one 64-bit atomic:
//! - the low 32 bits are the object's state and the futex word waiters sleep
//!   on, so every change a waiter cares about changes them;
//! - the high 32 bits hold the [`Token`] of the thread that holds the slot's
//!   *lock*, or 0. Wait-all takes the locks of all its objects (in slot order,
//!   never across a sleep) to check and acquire them atomically; operations
//!   that take a signal (waits, reset, pulse) respect the lock, operations that
//!   give one (set, release) never need it.
//!
//! Because lock holder and state share one word, a process that dies holding
//! a lock is found and its locks cleared by the broker, which knows its tag.
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_endian = "little"))]
compile_error!("the futex word is the low half of the state word: little-endian only");

pub mod arena;
pub mod clock;
pub mod close_ring;
pub mod lifeline;
pub mod ops;
mod state;
pub mod wait;

pub use arena::{ARENA_SLOTS, Arena, Slot};
pub use ops::{Kind, Token};
pub use wait::{WaitOutcome, wait};
