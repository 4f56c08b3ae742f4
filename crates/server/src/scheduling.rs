//! How the kernel schedules the broker: as a batch task.
//!
//! A client's one-way messages (every `CloseHandle`) wake the broker. As an
//! ordinary task the woken broker preempts the client at once when both
//! share a CPU, which costs two context switches per close; as a batch
//! task it waits for the client to block (usually in its next request),
//! then reads the close and the request in one go. A request is not
//! delayed: its sender blocks for the answer, which gives the CPU up. The
//! broker's children (processes it starts for clients) are ordinary tasks
//! again (`SCHED_RESET_ON_FORK`).
#![allow(unsafe_code)]

/// Makes the calling process a batch task; a refusal only costs speed.
pub fn become_batch() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param`, which lives across the call;
    // pid 0 is the calling thread.
    let rc = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_BATCH | libc::SCHED_RESET_ON_FORK, &param)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
