//! The C ABI's own locks across `fork()`: the standard handles, the handle
//! table, the views, the virtual allocations, thread controls, timer
//! routines and file locks. The thread that forks takes them all first (in
//! that order; code holding one takes only later ones) and gives them back
//! in both processes afterwards, so that the child of a process whose other
//! threads were inside the ABI does not start with one locked forever. The
//! client library guards its own locks the same way.

use std::any::Any;
use std::cell::RefCell;

thread_local! {
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn before_fork() {
    let held = vec![
        crate::api_stdio::lock_for_fork(),
        crate::table::lock_for_fork(),
        crate::api_section::lock_for_fork(),
        crate::api_memory::lock_for_fork(),
        crate::api_thread::lock_for_fork(),
        crate::api_thread::lock_timers_for_fork(),
        crate::api_locks::lock_for_fork(),
    ];
    let _ = HELD.try_with(|slot| *slot.borrow_mut() = held);
}

extern "C" fn after_fork() {
    let _ = HELD.try_with(|held| held.borrow_mut().clear());
}

extern "C" fn after_fork_in_child() {
    after_fork();
    crate::api_locks::forget_thread_id();
    crate::api_thread::forget_timer_routines();
}

/// Registers the handlers, once; called wherever one of the locks is taken.
pub(crate) fn guard() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| objmgr::on_fork(before_fork, after_fork, after_fork_in_child));
}
