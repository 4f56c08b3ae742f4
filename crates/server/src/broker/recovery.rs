//! Taking over from a broker that died: its clients come back with their
//! handles, and the namespace is rebuilt from what they hold.
//!
//! The lost broker's journal (`crate::journal`) says which processes held
//! which tags. Those still running are *expected*: for a short while
//! ([`RECOVERY_TIME`] at most, less once every one has come back) the
//! broker serves nothing but their [`Request::Reclaim`] steps, and closes;
//! everything else is answered `ERROR_RETRY`, which the client library
//! retries. So no process can create a name that a returning one still
//! holds, and a name keeps meaning one object.
//!
//! A returning process names its old tag, then its arenas and handles:
//! - a section by its memfd (identified by device and inode: two processes
//!   holding one section bring the same file), with its size and protection,
//!   checked against the file's own seals and size;
//! - a mutex, event, semaphore or timer (or a thread the process started)
//!   by its slot in a domain arena that the process still maps (identified by the arena's id, and checked to be
//!   the same file when a second process brings it). The state is where it
//!   was: waits went on while no broker ran;
//! - a file (or pipe end) by the fd of its open, numbered by the process
//!   (its copies of one handle share the number), checked as an open is:
//!   the fd's mode covers the open's access, whose share mode must let
//!   every other open of the file be.
//!
//! Each handle comes back at its old value, with its access and inherit
//! flag, and a name binds to the object again. The state stays in the old
//! arenas (mapped by the broker for the rest of its life); new objects go
//! into a new one.
//!
//! When recovery ends, the tags of processes that died while no broker ran,
//! or did not come back, are reaped in the old arenas: mutexes their threads
//! owned are abandoned, their slot locks released, and their waiters woken.
//!
//! Trust: every process a per-user broker serves is its user's (or root),
//! which can already reach every object of the user's (see SECURITY.md): a
//! returning process is believed about the access and names of its handles,
//! but each descriptor is checked to be a section, an arena or a file opened
//! for what is claimed, each slot to hold an object of a waitable type, and
//! each name binds to one object only. The system broker serves every user:
//! it also keeps a ledger of the objects it makes (`crate::ledger`), and
//! believes a returning process nothing the ledger does not say (see
//! `ledgered`): each memory file and arena must be one it made, each name the
//! object's own, and access to another user's object what the object's
//! descriptor grants the process now; an open of a file must be one it
//! recorded for that process. Sections over files do not come back to it.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use objmgr_proto::access::ObjectType;
use objmgr_proto::error::*;
use objmgr_proto::section::{FdReach, parse_protection};
use objmgr_proto::wire::{HeldHandle, Opcode, ReclaimStep, Reply};

use super::{Body, Broker, ClientId, HandleEntry, HandleTable, ObjectId, Outcome};
use crate::Failure;
use crate::journal::{self, Journal, Recorded};
use crate::ledger::{Entry, Ledger};
use crate::quota::Charge;
use crate::section::{FileNode, Section};
use crate::sync::SyncArena;
use objmgr_proto::security::SecurityDescriptor;
use objmgr_sync::ops::Kind;
use std::rc::Rc;

/// How long the broker waits for the processes of a broker that died to
/// come back before it serves anyone else.
pub const RECOVERY_TIME: Duration = Duration::from_secs(3);

/// How often the broker looks whether a process that was late for its
/// recovery has died (see [`Broker::check_late`]).
const LATE_CHECK: Duration = Duration::from_secs(1);

/// How often, during a recovery, the broker looks whether the processes it
/// waits for still run.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// The most arenas of lost brokers one broker takes back (each stays
/// mapped for its life).
const MAX_ADOPTED_ARENAS: usize = 256;

/// An open of a file as a returning process claims it.
#[derive(Clone, Copy, Debug)]
struct Claimed {
    /// The number the process gives the open.
    number: u32,
    access: u32,
    share: u32,
}

/// A recovery in progress.
#[derive(Debug)]
pub(super) struct Recovery {
    deadline: Instant,
    /// The lost broker's processes that still run and have not begun to
    /// come back, by tag.
    expected: HashMap<u16, Recorded>,
    /// Processes in the middle of coming back.
    returning: u32,
    /// The tags to reap when recovery ends: processes that died while no
    /// broker ran (and those expected that never came back, added then).
    gone: Vec<u16>,
    /// Sections taken back, by their memfd.
    sections: HashMap<FileNode, ObjectId>,
    /// Sync objects taken back, by arena and slot.
    syncs: HashMap<(u64, u32), ObjectId>,
    /// Opens of files taken back, by client and the number it gave each.
    files: HashMap<(ClientId, u32), ObjectId>,
    /// Sections over files taken back: by name, or (unnamed) by client and
    /// the number it gave each (two sections may map one file).
    file_sections: HashMap<FileSectionKey, ObjectId>,
    /// When the expected processes were last looked at (one that dies
    /// meanwhile is not waited for).
    looked: Instant,
}

/// The tags in `records` of processes that no longer run.
fn stopped_running(records: &HashMap<u16, Recorded>) -> Vec<u16> {
    records
        .iter()
        .filter(|(_, record)| !record.still_runs())
        .map(|(&tag, _)| tag)
        .collect()
}

/// `fd` if it is a memory file (a memfd or tmpfs file: closing one never
/// waits), as arenas and paging-file sections are; anything else is
/// refused, and closed off the broker's thread (a file's close can wait on
/// its file system).
fn memory_file(fd: OwnedFd) -> Result<OwnedFd, Failure> {
    if rustix::fs::fcntl_get_seals(&fd).is_ok() {
        return Ok(fd);
    }
    crate::closer::close_later(fd);
    Err(Failure::new(
        ERROR_INVALID_PARAMETER,
        "the descriptor is not a memory file",
    ))
}

/// Refuses a section handle `held` whose memory file `fd` does not allow
/// what the handle may do (capped by the section's `protection`).
/// (A descriptor that maps nothing proves nothing: refused too.)
fn check_reach(
    held: &HeldHandle,
    protection: objmgr_proto::section::PageProtection,
    fd: &OwnedFd,
) -> Result<(), Failure> {
    let may = ObjectType::Section.map_generic(held.access).0;
    let mut needed = FdReach::needed_by(may);
    if !protection.allows_shared_write() {
        needed = needed.min(FdReach::Read);
    }
    let brought = FdReach::of_fd(fd);
    if brought < needed || brought == FdReach::Query {
        return Err(Failure::new(
            ERROR_ACCESS_DENIED,
            format!(
                "handle {:#x}: the descriptor does not allow its access",
                held.handle.0
            ),
        ));
    }
    Ok(())
}

/// How a section over a file is known while it is taken back.
#[derive(Debug, PartialEq, Eq, Hash)]
enum FileSectionKey {
    Named(String),
    Unnamed(ClientId, u32),
}

/// Requests served while a recovery runs: those of returning processes,
/// and those that cannot make a name mean a second object.
fn served_while_recovering(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::Hello
            | Opcode::Reclaim
            | Opcode::Close
            | Opcode::CloseNoReply
            | Opcode::CloseRing
            | Opcode::Doorbell
            | Opcode::Status
            | Opcode::Shutdown
    )
}

impl Broker {
    /// Opens the client journal beside the socket at `socket` (and, on the
    /// system broker, the object ledger) and, if it names processes of a
    /// broker that died that still run, starts a recovery.
    pub fn open_journal(&mut self, socket: &Path) {
        let location = objmgr_proto::rendezvous::SocketLocation {
            socket: socket.to_owned(),
            is_default: false,
        };
        let (journal, mut recorded) = match Journal::open(&location.journal_path()) {
            Ok(opened) => opened,
            Err(e) => {
                crate::log::warning!("no client journal, so no recovery after a crash: {e}");
                return;
            }
        };
        self.journal = Some(journal);
        if !self.system {
            return self.start_recovery(recorded);
        }
        // The system broker believes a returning process only what its
        // ledger says of the objects it made.
        let path = location.ledger_path();
        let opened = Ledger::open(&path).or_else(|e| {
            // Unreadable (too long, say): no recovery from it now, but one
            // from a new ledger after the next crash. Kept aside for a look.
            crate::log::warning!("no object ledger, so no recovery after this crash: {e}");
            let _ = std::fs::rename(&path, path.with_extension("ledger.unreadable"));
            recorded.clear();
            Ledger::open(&path)
        });
        match opened {
            Ok((ledger, known)) => {
                self.ledger = Some(ledger);
                self.start_system_recovery(recorded, known);
                if self.recovery.is_none() {
                    self.rewrite_ledger();
                }
            }
            Err(e) => {
                crate::log::warning!("no object ledger: {e}");
                self.start_recovery(Vec::new());
            }
        }
    }

    /// Starts a recovery for the processes a lost broker's journal
    /// recorded (see [`Broker::open_journal`]; public for the fuzz target).
    pub fn start_recovery(&mut self, recorded: Vec<Recorded>) {
        let mut expected = HashMap::new();
        let mut gone = Vec::new();
        let me = rustix::process::getuid().as_raw();
        for record in recorded {
            // Its tag stays taken until recovery ends: its mutex ownerships
            // may be in an arena a returning process brings.
            self.tags_in_use.insert(record.tag);
            self.next_tag = self.next_tag.max(record.tag.wrapping_add(1).max(1));
            // Waited for: a running process that could have been a client
            // (this user's, or root's). A record naming another user's
            // (the file is only this user's, but any process of the user
            // may write it) is no one's, and reaped.
            // (Every user's, on the system broker.)
            let could_be = record.still_runs()
                && super::process::proc_ids(record.pid)
                    .is_some_and(|ids| self.system || ids.uid == me || ids.uid == 0);
            if could_be {
                expected.insert(record.tag, record);
            } else {
                gone.push(record.tag);
            }
        }
        if expected.is_empty() {
            // Nobody holds an old arena: nothing to take back or reap.
            for tag in gone {
                self.free_old_tag(tag);
            }
            return;
        }
        crate::log::info!(
            "a broker died: waiting for {} of its processes to come back",
            expected.len()
        );
        self.recovery = Some(Recovery {
            deadline: Instant::now() + RECOVERY_TIME,
            expected,
            returning: 0,
            gone,
            sections: HashMap::new(),
            syncs: HashMap::new(),
            files: HashMap::new(),
            file_sections: HashMap::new(),
            looked: Instant::now(),
        });
    }

    /// Starts a recovery of the system broker (see [`Broker::start_recovery`])
    /// with what a lost broker's ledger says (public for the fuzz target).
    pub fn start_system_recovery(&mut self, recorded: Vec<Recorded>, known: crate::ledger::Known) {
        self.system = true;
        self.start_recovery(recorded);
        self.next_object = self.next_object.max(known.max_object + 1);
        if self.recovery.is_some() {
            self.known = Some(known);
        }
    }

    /// When to look at the recovery in progress again: the sooner of its
    /// end and the next look at whether its expected processes still run
    /// (or when to look again at processes that were late for one).
    pub fn recovery_deadline(&self) -> Option<Instant> {
        match &self.recovery {
            Some(recovery) => {
                // (Past its deadline it runs only while processes are on
                // their way back, for a while longer.)
                let end = match Instant::now() < recovery.deadline {
                    true => recovery.deadline,
                    false => recovery.deadline + RECOVERY_TIME,
                };
                Some(end.min(recovery.looked + LOOK_AGAIN))
            }
            None if !self.late.is_empty() => Some(self.late_checked + LATE_CHECK),
            None => None,
        }
    }

    /// Ends the recovery if every expected process came back, or its time
    /// is up.
    pub fn check_recovery(&mut self) {
        let Some(recovery) = &mut self.recovery else {
            return;
        };
        if recovery.looked.elapsed() >= LOOK_AGAIN {
            // Processes that died while the broker waited for them.
            recovery.looked = Instant::now();
            for tag in stopped_running(&recovery.expected) {
                recovery.expected.remove(&tag);
                recovery.gone.push(tag);
            }
        }
        let done = recovery.expected.is_empty() && recovery.returning == 0;
        let now = Instant::now();
        // Processes on their way back get a while longer (the broker may
        // have been busy with others' requests).
        let overtime = recovery.returning > 0 && now < recovery.deadline + RECOVERY_TIME;
        if !done && (now < recovery.deadline || overtime) {
            return;
        }
        let recovery = self.recovery.take().expect("checked");
        let mut reaped = recovery.gone;
        for (tag, record) in recovery.expected {
            if record.still_runs() {
                // Still running, only slow: its threads may hold mutexes
                // right now. Reaped when it leaves or dies.
                self.late.insert(tag, record);
            } else {
                reaped.push(tag);
            }
        }
        if !reaped.is_empty() {
            crate::log::info!(
                "recovery over: abandoning what {} lost processes owned",
                reaped.len()
            );
        }
        for tag in reaped {
            self.reap_old_tag(tag);
        }
        // Objects nobody took back a handle to, or closed since, go now.
        for oid in recovery
            .sections
            .into_values()
            .chain(recovery.syncs.into_values())
            .chain(recovery.files.into_values())
            .chain(recovery.file_sections.into_values())
        {
            self.release(oid);
        }
        // A solo arena goes with its object: one whose object nobody took
        // back (announced, then never claimed) goes now.
        let claimed: std::collections::HashSet<u64> = self
            .objects
            .values()
            .filter_map(|object| object.adopted_arena)
            .collect();
        self.adopted
            .retain(|arena, adopted| !adopted.is_solo() || claimed.contains(arena));
        // The lost broker's records are needed no more.
        if self.known.take().is_some() {
            self.rewrite_ledger();
        }
    }

    /// The recovery holds a reference to each object taken back, until it
    /// ends: an object a returning process closes at once is still there,
    /// state and all, for one that comes back later with it.
    fn hold_until_recovered(&mut self, oid: ObjectId) {
        self.objects.get_mut(&oid).expect("present").handle_count += 1;
    }

    /// Abandons what the threads of `tag` (a process of a broker that died)
    /// owned in the arenas taken back, and frees the tag.
    fn reap_old_tag(&mut self, tag: u16) {
        for arena in self.adopted.values() {
            arena.reap(tag);
        }
        self.free_old_tag(tag);
    }

    /// Reaps the tags of processes that were late for their recovery and
    /// have died since (looked at once a second while there are any).
    pub fn check_late(&mut self) {
        if self.late.is_empty() || self.late_checked.elapsed() < LATE_CHECK {
            return;
        }
        self.late_checked = Instant::now();
        for tag in stopped_running(&self.late) {
            self.late.remove(&tag);
            self.reap_late(tag);
        }
    }

    /// A late (or refused) process of a lost broker left, or died, or went
    /// on with a new session: its old tag is reaped now, or (during the
    /// recovery) when the recovery ends, in every arena taken back by then.
    fn reap_late(&mut self, tag: u16) {
        match &mut self.recovery {
            Some(recovery) => recovery.gone.push(tag),
            None => self.reap_old_tag(tag),
        }
    }

    /// Client `id` sends a request of a session of its own: if its process
    /// was late for the recovery (or refused), its old session is over.
    pub(super) fn note_new_session(&mut self, id: ClientId) {
        let pid = self.clients[&id].pid;
        let late: Vec<u16> = self
            .late
            .iter()
            .filter(|(_, record)| record.pid == pid)
            .map(|(&tag, _)| tag)
            .collect();
        for tag in late {
            self.late.remove(&tag);
            self.reap_late(tag);
        }
    }

    fn free_old_tag(&mut self, tag: u16) {
        self.tags_in_use.remove(&tag);
        if let Some(journal) = &self.journal {
            journal.clear(tag);
        }
    }

    /// `ERROR_RETRY` for a request that must wait for the recovery.
    pub(super) fn hold_for_recovery(&mut self, op: Opcode) -> Result<(), Failure> {
        self.check_recovery();
        if self.recovery.is_none() || served_while_recovering(op) {
            return Ok(());
        }
        Err(Failure::new(
            ERROR_RETRY,
            "the broker is taking back the handles of processes of a broker that died",
        ))
    }

    /// Journals that client `id` was given handles it did not ask for.
    pub(super) fn journal_gift(&mut self, id: ClientId) {
        if let (Some(journal), Some(client)) = (&self.journal, self.clients.get_mut(&id))
            && !client.gifted
        {
            client.gifted = true;
            journal.mark_gifted(client.tag);
        }
    }

    /// Journals a new connection's tag.
    pub(super) fn journal_client(&self, tag: u16, pid: u32) {
        if let Some(journal) = &self.journal {
            journal.record(tag, pid, journal::start_time(pid).unwrap_or(0));
        }
    }

    /// A disconnected client's tag leaves the journal, and is free again
    /// (true); during a recovery, it is reaped (and freed) only when the
    /// recovery ends (false), across every arena taken back by then. A
    /// returning client that had not finished counts as done.
    pub(super) fn journal_client_gone(&mut self, tag: u16, was_returning: bool) -> bool {
        if let Some(recovery) = &mut self.recovery {
            if was_returning {
                recovery.returning -= 1;
            }
            recovery.gone.push(tag);
            return false;
        }
        if let Some(journal) = &self.journal {
            journal.clear(tag);
        }
        true
    }

    /// Removes the journal: the broker exits on purpose (stopped, or idle),
    /// and the next one starts afresh; its clients' sessions end (a
    /// crash, or a kill, leaves the journal for the next broker).
    pub fn close_journal(&mut self) {
        if let Some(journal) = self.journal.take() {
            journal.remove();
        }
        if let Some(ledger) = self.ledger.take() {
            ledger.remove();
        }
    }

    /// One [`Request::Reclaim`](objmgr_proto::wire::Request::Reclaim) step.
    pub(super) fn reclaim(
        &mut self,
        id: ClientId,
        step: ReclaimStep,
        fd: Option<OwnedFd>,
        read_only: Option<OwnedFd>,
    ) -> Result<Outcome, Failure> {
        // Only a `FileSection` step brings a second fd (its file opened
        // read-only); any refusal closes both off the broker's thread.
        let outcome = self.reclaim_step(id, step, fd, read_only.as_ref().map(|fd| fd.as_fd()));
        if let Some(fd) = read_only {
            crate::closer::close_later(fd);
        }
        outcome
    }

    fn reclaim_step(
        &mut self,
        id: ClientId,
        step: ReclaimStep,
        fd: Option<OwnedFd>,
        read_only: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Outcome, Failure> {
        if let ReclaimStep::Leave { tag } = step
            && let Some(record) = self.late.get(&tag).copied()
        {
            // Late for the recovery (or refused), and now giving up its old
            // session.
            if !record.is(self.clients[&id].pid) {
                return Err(Failure::new(
                    ERROR_ACCESS_DENIED,
                    format!("tag {tag} was not this process's with the broker that died"),
                ));
            }
            self.late.remove(&tag);
            self.reap_late(tag);
            return Ok(Outcome::reply(Reply::Done));
        }
        let Some(recovery) = &mut self.recovery else {
            // A client's file may take its file system's time to close.
            if let Some(fd) = fd {
                crate::closer::close_later(fd);
            }
            return Err(Failure::new(
                ERROR_NOT_SUPPORTED,
                "this broker is not taking back handles (it is not recovering from a crash)",
            ));
        };
        let client = self.clients.get_mut(&id).expect("client present");
        if let ReclaimStep::Begin { tag } | ReclaimStep::Leave { tag } = step {
            let expected = recovery.expected.get(&tag).copied();
            let is_it = expected.is_some_and(|record| record.is(client.pid));
            if client.reclaiming || client.came_back || !is_it {
                return Err(Failure::new(
                    ERROR_ACCESS_DENIED,
                    format!("tag {tag} was not this process's with the broker that died"),
                ));
            }
            let gifted = expected.is_some_and(|record| record.flags & journal::GIFTED != 0);
            let refusal = if let ReclaimStep::Leave { .. } = step {
                None
            } else if client.handles.live != 0 {
                Some("a process takes its handles back before it opens any")
            } else if gifted {
                // Handles it never took over would be lost silently, and
                // their values reused: it must not come back.
                Some("the process was given handles it may not know of: it cannot take them back")
            } else {
                None
            };
            let record = recovery.expected.remove(&tag).expect("checked");
            if let Some(why) = refusal {
                // Not coming back, but running: its threads may take a
                // mutex until its session ends. Reaped when it leaves (or
                // dies), as a late process is.
                self.late.insert(tag, record);
                self.check_recovery();
                return Err(Failure::new(ERROR_ACCESS_DENIED, why));
            }
            if let ReclaimStep::Leave { .. } = step {
                // Its session is over: reaped with the dead when the
                // recovery ends.
                recovery.gone.push(tag);
                self.check_recovery();
                return Ok(Outcome::reply(Reply::Done));
            }
            recovery.returning += 1;
            let fresh = std::mem::replace(&mut client.tag, tag);
            client.reclaiming = true;
            client.came_back = true;
            // A gift it was given on this connection goes with its tag.
            if client.gifted
                && let Some(journal) = &self.journal
            {
                journal.mark_gifted(tag);
            }
            self.free_old_tag(fresh);
            return Ok(Outcome::reply(Reply::Done));
        }
        if !client.reclaiming {
            if let Some(fd) = fd {
                crate::closer::close_later(fd);
            }
            return Err(Failure::protocol("a reclaim step before Begin"));
        }
        if self.system && matches!(step, ReclaimStep::FileSection { .. }) {
            // Its ledger does not record sections over files.
            if let Some(fd) = fd {
                crate::closer::close_later(fd);
            }
            return Err(Failure::new(
                ERROR_NOT_SUPPORTED,
                "sections over files do not come back to the system broker",
            ));
        }
        match step {
            ReclaimStep::Begin { .. } | ReclaimStep::Leave { .. } => {
                unreachable!("handled above")
            }
            ReclaimStep::End => {
                client.reclaiming = false;
                recovery.returning -= 1;
                self.check_recovery();
            }
            ReclaimStep::Arena { id: arena, slots } => {
                let fd = memory_file(fd.expect("one fd checked"))?;
                self.adopt_arena(id, arena, slots, fd)?;
            }
            ReclaimStep::Section {
                held,
                protection,
                attributes,
                size,
            } => {
                let fd = memory_file(fd.expect("one fd checked"))?;
                let node = crate::section::file_node(&fd)?;
                let entry = self.checked_claim(id, &held, |known| known.section(node))?;
                let fl_protect = protection | attributes;
                let (page_protection, section_attributes) =
                    parse_protection(fl_protect).map_err(|code| {
                        Failure::new(code, format!("invalid protection {fl_protect:#x}"))
                    })?;
                if let Some((_, entry)) = &entry {
                    // The section's own protection, a memory file of this
                    // broker's user, allowing what the handle may do.
                    if entry.identity
                        != (crate::ledger::Identity::Section {
                            node,
                            protection: fl_protect,
                        })
                    {
                        return Err(Failure::new(
                            ERROR_INVALID_PARAMETER,
                            "the section has another protection",
                        ));
                    }
                    self.check_made_here(&fd)?;
                    check_reach(&held, page_protection, &fd)?;
                }
                let recovery = self.recovery.as_mut().expect("recovering");
                let known = recovery.sections.get(&node).copied();
                let oid = match known {
                    Some(oid) => oid,
                    None => {
                        // Charged as a new section is (the size is the
                        // process's word until the memfd says otherwise;
                        // the quota check counts the broker's descriptors).
                        let charge = Charge::section(size);
                        self.check_quota(id, charge)?;
                        let section =
                            Section::adopt(fd, size, page_protection, section_attributes)?;
                        let oid = self.adopt_object(
                            id,
                            ObjectType::Section,
                            Body::Section(section),
                            charge,
                            0,
                            entry.as_ref().map(|(_, entry)| entry),
                        )?;
                        self.ledger_note(oid);
                        if let Some((old, _)) = entry {
                            self.ledger_replaced(old);
                        }
                        let recovery = self.recovery.as_mut().expect("recovering");
                        recovery.sections.insert(node, oid);
                        oid
                    }
                };
                self.take_back(id, oid, &held)?;
            }
            ReclaimStep::FileSection {
                held,
                section,
                protection,
                attributes,
                size,
            } => {
                let fd = fd.expect("two fds checked");
                let read_only = read_only.expect("two fds checked");
                match self.take_back_file_section(
                    id,
                    &held,
                    section,
                    protection | attributes,
                    size,
                    fd,
                    read_only,
                ) {
                    Ok(oid) => self.take_back(id, oid, &held)?,
                    Err((failure, fd)) => {
                        if let Some(fd) = fd {
                            crate::closer::close_later(fd);
                        }
                        return Err(failure);
                    }
                }
            }
            ReclaimStep::File {
                held,
                open,
                open_access,
                share,
            } => {
                let fd = fd.expect("one fd checked");
                let claimed = Claimed {
                    number: open,
                    access: open_access,
                    share,
                };
                let oid = self.take_back_open(id, &held, claimed, fd)?;
                self.take_back(id, oid, &held)?;
            }
            ReclaimStep::Sync { held, arena, slot } => {
                // Only in an arena it brought (or was sent): a slot is no
                // proof of holding the object, the arena's descriptor is.
                if !client.arenas_sent.contains(&arena) {
                    return Err(Failure::new(
                        ERROR_INVALID_PARAMETER,
                        format!("arena {arena:#x} was not announced"),
                    ));
                }
                let entry = self.checked_claim(id, &held, |known| known.sync(arena, slot))?;
                let recovery = self.recovery.as_mut().expect("recovering");
                let known = recovery.syncs.get(&(arena, slot)).copied();
                let oid = match known {
                    Some(oid) => oid,
                    None => {
                        let adopted = self.adopted.get_mut(&arena).ok_or_else(|| {
                            Failure::new(
                                ERROR_INVALID_PARAMETER,
                                format!("arena {arena:#x} was not announced"),
                            )
                        })?;
                        let kind = adopted.adopt_slot(slot).ok_or_else(|| {
                            Failure::new(
                                ERROR_INVALID_PARAMETER,
                                format!("slot {slot} of arena {arena:#x} holds no waitable object"),
                            )
                        })?;
                        let body = match kind {
                            // A thread of the returning process (it keeps
                            // its tag): it ends, at the latest, with it.
                            Kind::Thread => Body::Thread {
                                slot,
                                creator: Some(self.clients[&id].tag),
                                main_of: None,
                            },
                            _ => Body::Sync { slot, kind },
                        };
                        let domain = self.domain_of(id);
                        let charge = Charge::sync_object();
                        let object_type = kind.object_type();
                        let adopted = if entry
                            .as_ref()
                            .is_some_and(|(_, entry)| entry.object_type != object_type)
                        {
                            Err(Failure::new(
                                ERROR_INVALID_PARAMETER,
                                format!("slot {slot} of arena {arena:#x} holds another object"),
                            ))
                        } else {
                            self.adopt_object(
                                id,
                                object_type,
                                body,
                                charge,
                                domain,
                                entry.as_ref().map(|(_, entry)| entry),
                            )
                        };
                        let oid = adopted.inspect_err(|_| {
                            // Refused: the slot is not taken back by this claim.
                            if let Some(arena) = self.adopted.get_mut(&arena) {
                                arena.unadopt_slot(slot);
                            }
                        })?;
                        self.objects.get_mut(&oid).expect("inserted").adopted_arena = Some(arena);
                        self.ledger_note(oid);
                        if let Some((old, _)) = entry {
                            self.ledger_replaced(old);
                        }
                        let recovery = self.recovery.as_mut().expect("recovering");
                        recovery.syncs.insert((arena, slot), oid);
                        oid
                    }
                };
                self.take_back(id, oid, &held)?;
                if !self.maps_writable(id, oid) {
                    // The broker took it for that thread: its exit abandons it.
                    self.note_remote_owner(id, oid);
                }
            }
        }
        Ok(Outcome::reply(Reply::Done))
    }

    /// The open a file handle `held` of client `id` belongs to (`claimed`:
    /// the number the client gives it, the same for the copies it made of
    /// one handle, and the open's own access and share mode), made from
    /// `fd` (the open file description it was made with) the first time and
    /// checked then as `OpenFile` is: a regular file or pipe, opened for
    /// the open's access, sharing with every other open of it. Every handle
    /// of it must do no more than that fd may, and a later one must bring
    /// the same file and claim the same open.
    fn take_back_open(
        &mut self,
        id: ClientId,
        held: &HeldHandle,
        claimed: Claimed,
        fd: OwnedFd,
    ) -> Result<ObjectId, Failure> {
        let known = self
            .recovery
            .as_ref()
            .and_then(|recovery| recovery.files.get(&(id, claimed.number)).copied());
        let oid = match known {
            None => {
                let checked = self.check_new_open(id, claimed.access, claimed.share, &fd);
                let opened = match checked {
                    Ok(opened) => opened,
                    Err(failure) => {
                        // A client's file may take its file system's time to close.
                        crate::closer::close_later(fd);
                        return Err(failure);
                    }
                };
                // The system broker takes back only opens its ledger
                // recorded for this process, with this access and share
                // mode: a process of one user cannot claim a share mode
                // that keeps another's opens out.
                let opener = (self.clients[&id].tag, self.domain_of(id));
                let recorded = match &mut self.known {
                    _ if !self.system => None,
                    Some(known) => {
                        let key = (opened.node, opened.access.0, claimed.share);
                        known.take_open(opener, key.0, key.1, key.2)
                    }
                    None => None,
                };
                if self.system {
                    let Some(old) = recorded else {
                        crate::closer::close_later(fd);
                        return Err(Failure::new(
                            ERROR_ACCESS_DENIED,
                            "the lost broker recorded no such open of this process",
                        ));
                    };
                    // (Before the new record: a broker that dies between
                    // the two writes loses the open rather than doubles it.)
                    self.ledger_replaced(old);
                }
                let oid = self.insert_open_file(id, fd, opened, claimed.share, None);
                self.hold_until_recovered(oid);
                let recovery = self.recovery.as_mut().expect("recovering");
                recovery.files.insert((id, claimed.number), oid);
                oid
            }
            Some(oid) => {
                let same_file = crate::section::file_or_pipe_node(&fd);
                crate::closer::close_later(fd);
                let Body::File(existing) = &self.objects[&oid].body else {
                    unreachable!("recovery.files holds files");
                };
                let same_open = existing.access == ObjectType::File.map_generic(claimed.access).0
                    && existing.share == claimed.share;
                if same_file.ok() != Some(existing.node) || !same_open {
                    return Err(Failure::new(
                        ERROR_INVALID_PARAMETER,
                        format!("open {} was another file, or another open", claimed.number),
                    ));
                }
                oid
            }
        };
        let Body::File(open) = &self.objects[&oid].body else {
            unreachable!("a file");
        };
        let uses = objmgr_proto::file::Uses::of(ObjectType::File.map_generic(held.access).0);
        if !uses.fit(open.mode.0, open.mode.1) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "handle {:#x}: the file was not opened for the access claimed",
                    held.handle.0
                ),
            ));
        }
        Ok(oid)
    }

    /// A new object of client `id`, taken back, charged to it, and held by
    /// the recovery until it ends. On a per-user broker it gets its
    /// creator's default descriptor (the lost one died with the broker) and
    /// `domain`; on the system broker, the name, descriptor and domain the
    /// ledger recorded (`entry`).
    fn adopt_object(
        &mut self,
        id: ClientId,
        object_type: ObjectType,
        body: Body,
        charge: Charge,
        domain: u32,
        entry: Option<&Entry>,
    ) -> Result<ObjectId, Failure> {
        let (security, path, domain) = match entry {
            None => (self.security_for_new(id, "")?, None, domain),
            Some(entry) => {
                let sd = SecurityDescriptor::from_sddl(&entry.sddl).map_err(|_| {
                    Failure::new(ERROR_INVALID_SECURITY_DESCR, "a recorded descriptor")
                })?;
                if let Some(path) = &entry.path
                    && self.names.contains_key(path)
                {
                    return Err(Failure::new(
                        ERROR_ALREADY_EXISTS,
                        format!("{path:?} cannot be taken back: the name is another object's"),
                    ));
                }
                (Rc::new(sd), entry.path.clone(), entry.domain)
            }
        };
        let oid = self.insert_object(
            object_type,
            path,
            body,
            Some((id, charge)),
            security,
            domain,
        );
        self.hold_until_recovered(oid);
        Ok(oid)
    }

    /// The section over a file that a `FileSection` step of client `id`
    /// names (made on its first step: by name, or by the client's number
    /// `section`), checked: `fd` maps the file (a read-write fd where the
    /// handle may write a section that allows it, else read-only), and
    /// `read_only` is the same file opened read-only (what handles that may
    /// not write get; the broker opens no file itself). A refusal gives
    /// back `fd` if it was not kept, for the caller to close.
    #[expect(clippy::too_many_arguments, reason = "the fields of one step")]
    fn take_back_file_section(
        &mut self,
        id: ClientId,
        held: &HeldHandle,
        section: u32,
        fl_protect: u32,
        size: u64,
        fd: OwnedFd,
        read_only: std::os::fd::BorrowedFd<'_>,
    ) -> Result<ObjectId, (Failure, Option<OwnedFd>)> {
        let (protection, attributes) = match parse_protection(fl_protect) {
            Ok(parsed) => parsed,
            Err(code) => {
                let failure = Failure::new(code, format!("invalid protection {fl_protect:#x}"));
                return Err((failure, Some(fd)));
            }
        };
        // What the handle may do, the fd brought must allow.
        if let Err(failure) = check_reach(held, protection, &fd) {
            return Err((failure, Some(fd)));
        }
        let key = match self.resolve_name(id, &held.name) {
            Ok(resolved) if resolved.namespace.is_some() => {
                let failure = Failure::new(
                    ERROR_ALREADY_EXISTS,
                    "private namespaces do not survive their broker",
                );
                return Err((failure, Some(fd)));
            }
            Ok(resolved) => match resolved.path {
                Some(path) if !held.name.is_empty() => FileSectionKey::Named(path),
                _ => FileSectionKey::Unnamed(id, section),
            },
            Err(failure) => return Err((failure, Some(fd))),
        };
        let recovery = self.recovery.as_mut().expect("recovering");
        if let Some(oid) = recovery.file_sections.get(&key).copied() {
            // Another handle of it: the same section (the protection it
            // has, which the access check above went by), the same file,
            // which may give the section the writable fd it lacks.
            return match self.objects.get_mut(&oid).map(|o| &mut o.body) {
                Some(Body::Section(taken))
                    if (taken.protection, taken.attributes) != (protection, attributes) =>
                {
                    let failure = Failure::new(
                        ERROR_INVALID_PARAMETER,
                        "the section has another protection",
                    );
                    Err((failure, Some(fd)))
                }
                Some(Body::Section(taken)) => match taken.offer(fd, read_only) {
                    (true, unused) => {
                        if let Some(fd) = unused {
                            crate::closer::close_later(fd);
                        }
                        Ok(oid)
                    }
                    (false, unused) => Err((
                        Failure::new(ERROR_INVALID_PARAMETER, "the section maps another file"),
                        unused,
                    )),
                },
                _ => Err((
                    Failure::new(ERROR_INVALID_PARAMETER, "not a section over a file"),
                    Some(fd),
                )),
            };
        }
        let charge = Charge::section(size);
        // (The quota check counts the broker's descriptors too.)
        if let Err(failure) = self.check_quota(id, charge) {
            return Err((failure, Some(fd)));
        }
        let taken = Section::adopt_file(fd, read_only, size, protection, attributes)
            .map_err(|(failure, fd)| (failure, Some(fd)))?;
        let node = taken.file_node();
        let oid = self
            .adopt_object(
                id,
                ObjectType::Section,
                Body::Section(taken),
                charge,
                0,
                None,
            )
            .map_err(|failure| (failure, None))?;
        if let Some(node) = node {
            // A mapping is a user of its file, as on Windows.
            self.mapped_files.entry(node).or_default().push(oid);
        }
        let recovery = self.recovery.as_mut().expect("recovering");
        recovery.file_sections.insert(key, oid);
        Ok(oid)
    }

    /// Adopts arena `arena` from client `id`'s fd, or checks that an arena
    /// adopted already is that file.
    fn adopt_arena(
        &mut self,
        id: ClientId,
        arena: u64,
        slots: u32,
        fd: OwnedFd,
    ) -> Result<(), Failure> {
        let clash = || {
            Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("arena {arena:#x} is another file already"),
            )
        };
        if self.sync.values().any(|own| own.id == arena) {
            return Err(clash());
        }
        // The system broker takes back only arenas it made (a solo one
        // too), mapped writable even when the process brings a read-only fd.
        let known = self.checked_arena(id, arena, &fd)?;
        match self.adopted.get(&arena) {
            Some(adopted) if !adopted.is_file(&fd) => return Err(clash()),
            Some(_) => {}
            None if known.is_some() => {
                let fd = if FdReach::of_fd(&fd) == FdReach::Write {
                    fd
                } else {
                    crate::section::reopen_writable(&fd)?
                };
                let solo = known.is_some_and(|known| known.solo);
                let adopted = SyncArena::adopt(fd, arena, slots, solo)?;
                self.adopted.insert(arena, adopted);
            }
            None if self.adopted.len() >= MAX_ADOPTED_ARENAS => {
                return Err(Failure::new(
                    ERROR_NO_SYSTEM_RESOURCES,
                    format!("{MAX_ADOPTED_ARENAS} arenas of lost brokers are taken back already"),
                ));
            }
            None => {
                let adopted = SyncArena::adopt(fd, arena, slots, false)?;
                self.adopted.insert(arena, adopted);
            }
        }
        // It maps the arena: no grant needs to send it again.
        let sent = &mut self.client(id).arenas_sent;
        if !sent.contains(&arena) {
            sent.push(arena);
        }
        Ok(())
    }

    /// Puts `held` (a handle to `oid`) back into client `id`'s table, with
    /// its access and `HANDLE_FLAG_*` flags, and binds its name (if any) to
    /// the object again.
    fn take_back(&mut self, id: ClientId, oid: ObjectId, held: &HeldHandle) -> Result<(), Failure> {
        let HeldHandle {
            handle,
            access,
            flags,
            ref name,
        } = *held;
        use objmgr_proto::process::{HANDLE_FLAG_INHERIT, HANDLE_FLAG_PROTECT_FROM_CLOSE};
        // A value within the handle quota (the table grows to it) that is
        // not in use.
        let quota = crate::quota::get()
            .handles
            .min(super::MAX_HANDLES_PER_PROCESS as u64);
        let free_value = HandleTable::index(handle).is_some_and(|index| (index as u64) < quota)
            && self.client(id).handles.get(handle).is_none();
        if !free_value {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!("handle {:#x} cannot be taken back", handle.0),
            ));
        }
        // (On a failure the object lives on while the recovery holds it.)
        self.bind_name(id, oid, name)?;
        let object_type = self.objects[&oid].object_type;
        self.client(id).handles.insert_at(
            handle,
            HandleEntry {
                object: oid,
                access: object_type.map_generic(access),
                inherit: flags & HANDLE_FLAG_INHERIT != 0,
                protect: flags & HANDLE_FLAG_PROTECT_FROM_CLOSE != 0,
            },
        );
        self.objects.get_mut(&oid).expect("present").handle_count += 1;
        let access = self
            .client(id)
            .handles
            .get(handle)
            .map_or(0, |e| e.access.0);
        self.ledger_grant(id, oid, access);
        Ok(())
    }

    /// Binds the name `name` (as client `id` gave it when it created or
    /// opened the object) to `oid`: refused if the name is another object's, or the
    /// object has another, or it is in a private namespace (which died with
    /// the broker).
    fn bind_name(&mut self, id: ClientId, oid: ObjectId, name: &str) -> Result<(), Failure> {
        if name.is_empty() {
            return Ok(());
        }
        let resolved = self.resolve_name(id, name)?;
        let clash = |what: &str| {
            Failure::new(
                ERROR_ALREADY_EXISTS,
                format!("{name:?} cannot be taken back: {what}"),
            )
        };
        if resolved.namespace.is_some() {
            return Err(clash("private namespaces do not survive their broker"));
        }
        let Some(path) = resolved.path else {
            return Ok(());
        };
        match self.names.get(&path) {
            Some(&holder) if holder == oid => return Ok(()),
            Some(_) => return Err(clash("the name is another object's")),
            None => {}
        }
        let object = self.objects.get_mut(&oid).expect("present");
        if object.path.is_some() {
            return Err(clash("the object has another name"));
        }
        object.path = Some(path.clone());
        self.names.insert(path, oid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use objmgr_proto::section::{PageProtection, SectionAttributes};
    use objmgr_proto::security;
    use objmgr_proto::sync::SyncInit;
    use objmgr_proto::wire::{Handle, PROTOCOL_VERSION, Request};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A private directory with a journal that names this process under
    /// `tags` (as a lost broker's would), and a broker recovering from it.
    struct Recovering {
        dir: std::path::PathBuf,
        broker: Broker,
    }

    impl Drop for Recovering {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn recovering(tags: &[u16]) -> Recovering {
        recovering_with(tags, &[])
    }

    /// The same, with the processes of `gifted` tags marked as given
    /// handles.
    fn recovering_with(tags: &[u16], gifted: &[u16]) -> Recovering {
        let (dir, socket) = lost_broker_journal(tags, gifted);
        let mut broker = Broker::new("test".into(), 0);
        broker.open_journal(&socket);
        Recovering { dir, broker }
    }

    /// A system broker recovering from a journal of `tags` (this process)
    /// and a ledger of `entries`.
    fn recovering_system(
        tags: &[u16],
        entries: &[(u64, Entry)],
        grants: &[(u64, u32, u32)],
    ) -> Recovering {
        let (dir, socket) = lost_broker_journal(tags, &[]);
        let location = objmgr_proto::rendezvous::SocketLocation {
            socket: socket.clone(),
            is_default: false,
        };
        let (mut ledger, _) = Ledger::open(&location.ledger_path()).unwrap();
        for (oid, entry) in entries {
            ledger.object(*oid, entry);
        }
        for &(oid, uid, access) in grants {
            ledger.granted(oid, uid, access);
        }
        drop(ledger);
        let mut broker = Broker::new("test".into(), 0);
        broker.system = true;
        broker.open_journal(&socket);
        Recovering { dir, broker }
    }

    /// A directory with the journal of a lost broker whose processes (this
    /// one) had `tags` (`gifted`: given handles); returns it and the socket
    /// path in it.
    fn lost_broker_journal(
        tags: &[u16],
        gifted: &[u16],
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "objmgr-recovery-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("broker.sock");
        let location = objmgr_proto::rendezvous::SocketLocation {
            socket: socket.clone(),
            is_default: false,
        };
        let me = std::process::id();
        let (journal, _) = Journal::open(&location.journal_path()).unwrap();
        for &tag in tags {
            journal.record(tag, me, journal::start_time(me).unwrap());
        }
        for &tag in gifted {
            journal.mark_gifted(tag);
        }
        (dir, socket)
    }

    fn connect(broker: &mut Broker, id: ClientId, pid: u32) {
        connect_as(broker, id, pid, 0);
    }

    fn connect_as(broker: &mut Broker, id: ClientId, pid: u32, uid: u32) {
        let token = security::Token::for_unix(uid, uid, &[], None);
        broker.add_client(id, pid, uid, token).unwrap();
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
        };
        broker.handle(id, hello, vec![]).unwrap();
    }

    /// Clients 1 and 2 (this process) begin to come back, with tags 9 and 10.
    fn two_returning(broker: &mut Broker) {
        let me = std::process::id();
        connect(broker, 1, me);
        connect(broker, 2, me);
        step(broker, 1, ReclaimStep::Begin { tag: 9 }, None).unwrap();
        step(broker, 2, ReclaimStep::Begin { tag: 10 }, None).unwrap();
    }

    fn step(
        broker: &mut Broker,
        id: ClientId,
        step: ReclaimStep,
        fd: Option<OwnedFd>,
    ) -> Result<Outcome, Failure> {
        broker.handle(id, Request::Reclaim { step }, fd.into_iter().collect())
    }

    fn memfd() -> OwnedFd {
        let section = Section::new_anonymous(
            4096,
            PageProtection::ReadWrite,
            SectionAttributes::default(),
        )
        .unwrap();
        section.fd_for(true).unwrap().try_clone().unwrap()
    }

    fn held(handle: u32, access: u32, name: &str) -> HeldHandle {
        HeldHandle {
            handle: Handle(handle),
            access,
            flags: 0,
            name: name.into(),
        }
    }

    fn section_step(handle: u32, name: &str) -> ReclaimStep {
        ReclaimStep::Section {
            held: held(handle, 0xF001F, name),
            protection: PageProtection::ReadWrite.bits(),
            attributes: SectionAttributes::default().bits(),
            size: 4096,
        }
    }

    #[test]
    fn a_system_broker_believes_returning_processes_only_what_its_ledger_says() {
        use crate::ledger::Identity;
        use objmgr_proto::access::{EVENT_MODIFY_STATE, SECTION_MAP_READ, SYNCHRONIZE};
        let (owner, other) = (1000, 2000);
        // What the lost broker made: a section owner's that everyone may
        // read, and an event everyone may only wait on (in a solo arena),
        // in a domain arena of owner's.
        let board = memfd();
        let section_entry = Entry {
            object_type: ObjectType::Section,
            domain: owner,
            path: Some("\\BaseNamedObjects\\board".into()),
            sddl: format!("D:(A;;GA;;;S-1-22-1-{owner})(A;;GR;;;WD)"),
            identity: Identity::Section {
                node: crate::section::file_node(&board).unwrap(),
                protection: PageProtection::ReadWrite.bits() | SectionAttributes::default().bits(),
            },
        };
        let mut solo = SyncArena::new_solo().unwrap();
        let init = SyncInit::Event {
            manual_reset: true,
            signaled: false,
        };
        let event_slot = solo.allocate(init, None).unwrap();
        let event_entry = Entry {
            object_type: ObjectType::Event,
            domain: owner,
            path: Some("\\BaseNamedObjects\\posted".into()),
            sddl: "D:(A;;0x100000;;;WD)".into(),
            identity: Identity::Sync {
                arena: solo.id,
                node: solo.node().unwrap(),
                slot: event_slot,
                solo: true,
            },
        };
        let mut own = SyncArena::new().unwrap();
        let own_slot = own.allocate(init, None).unwrap();
        let own_entry = Entry {
            object_type: ObjectType::Event,
            domain: owner,
            path: None,
            sddl: "D:(A;;GA;;;WD)".into(),
            identity: Identity::Sync {
                arena: own.id,
                node: own.node().unwrap(),
                slot: own_slot,
                solo: false,
            },
        };
        let entries = [(3, section_entry), (4, event_entry), (5, own_entry)];
        // A third user's handle to the board was given read access before
        // the descriptor stopped granting it anything.
        let former = 3000;
        let grants = [(3, former, SECTION_MAP_READ)];
        let tags = [9, 10, 11, 12, 13, 14, 15, 16, 17];
        let mut r = recovering_system(&tags, &entries, &grants);
        let broker = &mut r.broker;
        let me = std::process::id();
        let begin = |broker: &mut Broker, id: ClientId, uid: u32, tag: u16| {
            connect_as(broker, id, me, uid);
            step(broker, id, ReclaimStep::Begin { tag }, None).unwrap();
        };
        let claim = |handle: u32, access: u32, name: &str| ReclaimStep::Section {
            held: held(handle, access, name),
            protection: PageProtection::ReadWrite.bits(),
            attributes: SectionAttributes::default().bits(),
            size: 4096,
        };
        let board_fd = |writable: bool| -> OwnedFd {
            let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&board));
            let mode = match writable {
                true => rustix::fs::OFlags::RDWR,
                false => rustix::fs::OFlags::RDONLY,
            };
            rustix::fs::open(
                path,
                mode | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .unwrap()
        };
        let denied = |outcome: Result<Outcome, Failure>, why: &str| {
            let failure = outcome.unwrap_err();
            assert_eq!(failure.code, ERROR_ACCESS_DENIED, "{failure:?}");
            assert!(failure.context.contains(why), "{failure:?}");
        };
        // Another user: a memory file the lost broker never made is no
        // section to take back; the board is, read-only, by its own name.
        begin(broker, 1, other, 9);
        let stranger = step(broker, 1, claim(4, SECTION_MAP_READ, ""), Some(memfd()));
        denied(stranger, "made no such object");
        // Nor as a section of another protection than its own.
        let read_only_section = ReclaimStep::Section {
            held: held(12, SECTION_MAP_READ, ""),
            protection: PageProtection::ReadOnly.bits(),
            attributes: SectionAttributes::default().bits(),
            size: 4096,
        };
        let refused = step(broker, 1, read_only_section, Some(board_fd(false))).unwrap_err();
        assert!(
            refused.context.contains("another protection"),
            "{refused:?}"
        );
        let read = claim(8, SECTION_MAP_READ, "Global\\board");
        step(broker, 1, read, Some(board_fd(false))).unwrap();
        // Not with rights its descriptor does not grant, nor under
        // another name.
        begin(broker, 2, other, 10);
        let all = step(broker, 2, claim(4, 0xF001F, ""), Some(board_fd(true)));
        denied(all, "does not grant");
        begin(broker, 3, other, 11);
        let renamed = claim(4, SECTION_MAP_READ, "Global\\mine");
        denied(
            step(broker, 3, renamed, Some(board_fd(true))),
            "not that object's",
        );
        // Its owner takes it back with every right, but not with a
        // descriptor that cannot write it.
        begin(broker, 4, owner, 12);
        let read_only = step(broker, 4, claim(4, 0xF001F, ""), Some(board_fd(false)));
        denied(read_only, "does not allow its access");
        begin(broker, 5, owner, 13);
        step(broker, 5, claim(4, 0xF001F, ""), Some(board_fd(true))).unwrap();
        let path = "\\BaseNamedObjects\\board";
        let oid = broker.names[path];
        assert_eq!(
            broker.objects[&oid].handle_count, 3,
            "two handles and the recovery's"
        );
        // A handle keeps the access it was given: the third user's read
        // comes back, more does not. (The refused are gone: one process
        // has only so many connections.)
        for refused in [2, 3, 4] {
            broker.remove_client(refused);
        }
        begin(broker, 8, former, 16);
        let more = step(broker, 8, claim(4, 0xF001F, ""), Some(board_fd(true)));
        denied(more, "does not grant");
        begin(broker, 9, former, 17);
        step(
            broker,
            9,
            claim(4, SECTION_MAP_READ, ""),
            Some(board_fd(false)),
        )
        .unwrap();
        // The event another user waits on: its solo arena (brought
        // read-only, as that user holds it) and a handle that may wait,
        // not signal.
        begin(broker, 6, other, 14);
        let arena = ReclaimStep::Arena {
            id: solo.id,
            slots: objmgr_sync::arena::SOLO_SLOTS,
        };
        let read_only = solo.fd_for(false).unwrap().try_clone().unwrap();
        step(broker, 6, arena.clone(), Some(read_only)).unwrap();
        let wait = |handle, access| ReclaimStep::Sync {
            held: held(handle, access, "Global\\posted"),
            arena: solo.id,
            slot: event_slot,
        };
        let signal = step(broker, 6, wait(4, SYNCHRONIZE | EVENT_MODIFY_STATE), None);
        denied(signal, "does not grant");
        step(broker, 6, wait(8, SYNCHRONIZE), None).unwrap();
        assert!(broker.names.contains_key("\\BaseNamedObjects\\posted"));
        // Not the owner's own arena, nor an arena it never made.
        begin(broker, 7, other, 15);
        let own_arena = ReclaimStep::Arena {
            id: own.id,
            slots: objmgr_sync::arena::ARENA_SLOTS,
        };
        let theirs = step(broker, 7, own_arena, Some(own.fd.try_clone().unwrap()));
        denied(theirs, "another user's own");
        let forged = SyncArena::new_solo().unwrap().fd.try_clone().unwrap();
        denied(step(broker, 7, arena, Some(forged)), "another file");
    }

    #[test]
    fn a_descriptor_changed_over_and_over_does_not_grow_the_ledger_without_bound() {
        let mut recovering = recovering_system(&[], &[], &[]);
        let broker = &mut recovering.broker;
        connect_as(broker, 1, std::process::id(), 0);
        let init = SyncInit::Event {
            manual_reset: false,
            signaled: false,
        };
        let made = broker
            .handle(
                1,
                Request::CreateSync {
                    name: "Global\\churned".into(),
                    init,
                    access: objmgr_proto::sync::creator_access(init.object_type()),
                    inherit: false,
                    owner_token: 0,
                    owner_tid: 0,
                    security: String::new(),
                },
                vec![],
            )
            .unwrap();
        let Reply::Sync(grant) = made.reply else {
            panic!("not a sync grant");
        };
        let ledger = std::fs::read_dir(&recovering.dir)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .find(|p| p.extension().is_some_and(|x| x == "ledger"))
            .expect("the ledger");
        for i in 0..40_000 {
            let sddl = ["D:(A;;GA;;;WD)", "D:(A;;GA;;;SY)"][i % 2];
            let change = Request::Security {
                handle: grant.handle,
                set: true,
                which: security::DACL_SECURITY_INFORMATION,
                sddl: sddl.into(),
            };
            recovering.broker.handle(1, change, vec![]).unwrap();
        }
        // 40,000 records of about 30 bytes would be 1.2 MB; written anew
        // whenever most are dead, it stays a few thousand records long.
        let len = std::fs::metadata(&ledger).unwrap().len();
        assert!(len < 400_000, "the ledger grew to {len} bytes");
    }

    #[test]
    fn a_broker_that_is_not_recovering_takes_nothing_back() {
        let mut broker = Broker::new("test".into(), 0);
        connect(&mut broker, 1, std::process::id());
        let refused = step(&mut broker, 1, ReclaimStep::Begin { tag: 3 }, None).unwrap_err();
        assert_eq!(refused.code, ERROR_NOT_SUPPORTED);
    }

    #[test]
    fn only_the_journaled_process_takes_its_tag_back_and_others_wait() {
        let mut r = recovering(&[9]);
        let broker = &mut r.broker;
        assert!(broker.recovery_deadline().is_some());
        // Another process (pid 1 is not this one) cannot claim the tag.
        connect(broker, 1, 1);
        let refused = step(broker, 1, ReclaimStep::Begin { tag: 9 }, None).unwrap_err();
        assert_eq!(refused.code, ERROR_ACCESS_DENIED);
        // Nothing but returning processes is served meanwhile.
        let list = Request::ListObjects {
            after: String::new(),
            limit: 10,
        };
        let waiting = broker.handle(1, list.clone(), vec![]).unwrap_err();
        assert_eq!(waiting.code, ERROR_RETRY);
        // Steps before Begin are a protocol violation.
        let early = step(broker, 1, ReclaimStep::End, None).unwrap_err();
        assert!(early.disconnect);
        connect(broker, 2, std::process::id());
        step(broker, 2, ReclaimStep::Begin { tag: 9 }, None).unwrap();
        assert_eq!(broker.clients[&2].tag, 9);
        let twice = step(broker, 2, ReclaimStep::Begin { tag: 9 }, None).unwrap_err();
        assert_eq!(twice.code, ERROR_ACCESS_DENIED);
        // Hostile steps are errors, never panics.
        let not_memfd = std::fs::File::open("/dev/null").unwrap().into();
        assert!(step(broker, 2, section_step(4, ""), Some(not_memfd)).is_err());
        let unannounced = ReclaimStep::Sync {
            held: held(8, 0x1F0003, ""),
            arena: 77,
            slot: 1,
        };
        assert!(step(broker, 2, unannounced, None).is_err());
        let not_arena = ReclaimStep::Arena {
            id: 5,
            slots: objmgr_sync::arena::ARENA_SLOTS,
        };
        assert!(step(broker, 2, not_arena, Some(memfd())).is_err());
        assert!(step(broker, 2, section_step(0, ""), Some(memfd())).is_err());
        assert!(step(broker, 2, section_step(6, ""), Some(memfd())).is_err());
        // Its last step ends the recovery: everyone is served again.
        step(broker, 2, ReclaimStep::End, None).unwrap();
        assert!(broker.recovery_deadline().is_none());
        broker.handle(1, list, vec![]).unwrap();
    }

    /// A handle with `access` of open `open`, which was made for
    /// `open_access` and shares `share`.
    fn file_step(handle: u32, access: u32, open: u32, open_access: u32, share: u32) -> ReclaimStep {
        ReclaimStep::File {
            held: held(handle, access, ""),
            open,
            open_access,
            share,
        }
    }

    /// A file of the test's own (a memfd is a regular file), read-write.
    fn scratch() -> OwnedFd {
        let fd =
            rustix::fs::memfd_create("recovery-file", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        fd
    }

    #[test]
    fn a_system_broker_takes_back_only_the_opens_its_ledger_recorded() {
        use crate::ledger::Identity;
        use objmgr_proto::access::{FILE_READ_DATA, FILE_WRITE_DATA};
        let file = scratch();
        let node = crate::section::file_or_pipe_node(&file).unwrap();
        let rw = FILE_READ_DATA | FILE_WRITE_DATA;
        let shared_file = scratch();
        let shared_node = crate::section::file_or_pipe_node(&shared_file).unwrap();
        let open = |node, tag: u16, share: u32| Entry {
            object_type: ObjectType::File,
            domain: 2000,
            path: None,
            sddl: "D:(A;;GA;;;WD)".into(),
            identity: Identity::Open {
                node,
                access: ObjectType::File.map_generic(rw).0,
                share,
                tag,
            },
        };
        // Process 9 had the file open sharing nothing, and another file
        // sharing everything.
        let entries = [(3, open(node, 9, 0)), (4, open(shared_node, 9, 7))];
        let mut r = recovering_system(&[9, 10], &entries, &[]);
        let broker = &mut r.broker;
        let me = std::process::id();
        connect_as(broker, 1, me, 2000);
        connect_as(broker, 2, me, 2001);
        step(broker, 1, ReclaimStep::Begin { tag: 9 }, None).unwrap();
        step(broker, 2, ReclaimStep::Begin { tag: 10 }, None).unwrap();
        // Another process cannot claim an open it never had, to keep the
        // first one's out (nor one of another share mode).
        let forged = step(
            broker,
            2,
            file_step(4, rw, 0, rw, 0),
            Some(scratch_of(&file)),
        );
        let refused = forged.unwrap_err();
        assert_eq!(refused.code, ERROR_ACCESS_DENIED, "{refused:?}");
        assert!(refused.context.contains("no such open"), "{refused:?}");
        let wider = step(
            broker,
            1,
            file_step(4, rw, 0, rw, 7),
            Some(scratch_of(&file)),
        );
        let wider = wider.unwrap_err();
        assert_eq!(wider.code, ERROR_ACCESS_DENIED, "{wider:?}");
        assert!(wider.context.contains("no such open"), "{wider:?}");
        // Its own comes back, once.
        step(
            broker,
            1,
            file_step(8, rw, 1, rw, 0),
            Some(scratch_of(&file)),
        )
        .unwrap();
        let again = step(
            broker,
            1,
            file_step(12, rw, 2, rw, 0),
            Some(scratch_of(&file)),
        );
        // (Refused by the share mode of the open it took back; the shared
        // open below shows the once without it.)
        let again = again.unwrap_err();
        assert_eq!(again.code, ERROR_SHARING_VIOLATION, "{again:?}");
        // An open that lets others in comes back once too.
        let shared = |handle, number| file_step(handle, rw, number, rw, 7);
        step(broker, 1, shared(16, 3), Some(scratch_of(&shared_file))).unwrap();
        let twice = step(broker, 1, shared(20, 4), Some(scratch_of(&shared_file)));
        let refused = twice.unwrap_err();
        assert!(refused.context.contains("no such open"), "{refused:?}");
    }

    /// Another open file description of `file`, read-write.
    fn scratch_of(file: &OwnedFd) -> OwnedFd {
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
        let flags = rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC;
        rustix::fs::open(path, flags, rustix::fs::Mode::empty()).unwrap()
    }

    #[test]
    fn opens_of_files_come_back_checked_as_opens_are() {
        use objmgr_proto::access::{FILE_READ_DATA, FILE_WRITE_DATA};
        let mut r = recovering(&[9, 10]);
        let broker = &mut r.broker;
        two_returning(broker);
        let file = scratch();
        let copy = file.try_clone().unwrap();
        let (read, rw) = (FILE_READ_DATA, FILE_READ_DATA | FILE_WRITE_DATA);
        // Shares reading only.
        let first = file.try_clone().unwrap();
        step(broker, 1, file_step(4, rw, 0, rw, 1), Some(first)).unwrap();
        // A copy of the handle: the same open, one object.
        step(broker, 1, file_step(8, read, 0, rw, 1), Some(copy)).unwrap();
        let files: Vec<ObjectId> = broker
            .objects
            .iter()
            .filter(|(_, o)| o.object_type == ObjectType::File)
            .map(|(&oid, _)| oid)
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(broker.objects[&files[0]].handle_count, 3);
        // Under that open's number, another file, or another open, is refused.
        let other = step(broker, 1, file_step(12, read, 0, rw, 1), Some(scratch()));
        assert_eq!(other.unwrap_err().code, ERROR_INVALID_PARAMETER);
        let wider = file_step(12, read, 0, rw, 7);
        let wider = step(broker, 1, wider, Some(file.try_clone().unwrap()));
        assert_eq!(wider.unwrap_err().code, ERROR_INVALID_PARAMETER);
        // Another process's open must share with it, as any open must.
        let writer = file_step(4, read, 0, rw, 7);
        let writer = step(broker, 2, writer, Some(file.try_clone().unwrap()));
        assert_eq!(writer.unwrap_err().code, ERROR_SHARING_VIOLATION);
        // An fd opened for reading proves no right to write.
        let read_only = rustix::fs::open(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file)),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let more = step(broker, 2, file_step(8, rw, 1, read, 7), Some(read_only));
        assert_eq!(more.unwrap_err().code, ERROR_ACCESS_DENIED);
        step(broker, 2, file_step(12, read, 2, read, 7), Some(file)).unwrap();
        step(broker, 1, ReclaimStep::End, None).unwrap();
        step(broker, 2, ReclaimStep::End, None).unwrap();
        assert!(broker.recovery_deadline().is_none());
        // The recovery's references are gone: the opens live by their handles.
        let opens = broker.open_files.values().map(Vec::len).sum::<usize>();
        assert_eq!(opens, 2);
    }

    fn file_section_step(
        handle: u32,
        access: u32,
        name: &str,
        section: u32,
        size: u64,
    ) -> ReclaimStep {
        ReclaimStep::FileSection {
            held: held(handle, access, name),
            section,
            protection: PageProtection::ReadWrite.bits(),
            attributes: SectionAttributes::default().bits(),
            size,
        }
    }

    fn file_step_fds(
        broker: &mut Broker,
        id: ClientId,
        step: ReclaimStep,
        fd: OwnedFd,
        read_only: OwnedFd,
    ) -> Result<Outcome, Failure> {
        broker.handle(id, Request::Reclaim { step }, vec![fd, read_only])
    }

    #[test]
    fn sections_over_files_come_back_one_per_name_or_number() {
        use objmgr_proto::access::{SECTION_MAP_READ, SECTION_MAP_WRITE, SECTION_QUERY};
        let mut r = recovering(&[9, 10]);
        let broker = &mut r.broker;
        two_returning(broker);
        let file = scratch();
        rustix::fs::ftruncate(&file, 8192).unwrap();
        let clone = || file.try_clone().unwrap();
        let reopen = |flags: rustix::fs::OFlags| {
            rustix::fs::open(
                format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file)),
                flags | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .unwrap()
        };
        let read_only = || reopen(rustix::fs::OFlags::RDONLY);
        let sections = |broker: &Broker| {
            broker
                .objects
                .values()
                .filter(|o| o.object_type == ObjectType::Section)
                .count()
        };
        let (read, write) = (
            SECTION_QUERY | SECTION_MAP_READ,
            SECTION_MAP_WRITE | SECTION_MAP_READ,
        );
        // A read-only fd claims no right to write.
        let claims = file_section_step(4, write, "Local\\mapped", 0, 8192);
        let claims = file_step_fds(broker, 1, claims, read_only(), read_only());
        assert_eq!(claims.unwrap_err().code, ERROR_ACCESS_DENIED);
        // A named one, from a read-only handle first, then from another
        // process's writable one: one object, which gains the writable fd.
        let first = file_section_step(4, read, "Local\\mapped", 0, 8192);
        file_step_fds(broker, 1, first, read_only(), read_only()).unwrap();
        let second = file_section_step(4, write, "Local\\mapped", 5, 8192);
        file_step_fds(broker, 2, second, clone(), read_only()).unwrap();
        assert_eq!(sections(broker), 1);
        // A claim of another protection (which would let a read-only fd
        // pass for a write handle) is refused.
        let lower = ReclaimStep::FileSection {
            held: held(8, write, "Local\\mapped"),
            section: 0,
            protection: PageProtection::ReadOnly.bits(),
            attributes: SectionAttributes::default().bits(),
            size: 8192,
        };
        let lower = file_step_fds(broker, 1, lower, read_only(), read_only());
        assert_eq!(lower.unwrap_err().code, ERROR_INVALID_PARAMETER);
        let oid = broker.names.values().copied().next().unwrap();
        let Body::Section(section) = &broker.objects[&oid].body else {
            panic!("not a section");
        };
        let mode = |fd: &OwnedFd| rustix::fs::fcntl_getfl(fd).unwrap() & rustix::fs::OFlags::RWMODE;
        assert_eq!(
            mode(&section.fd_for(true).unwrap()),
            rustix::fs::OFlags::RDWR
        );
        assert_eq!(
            mode(&section.fd_for(false).unwrap()),
            rustix::fs::OFlags::RDONLY
        );
        // Two unnamed ones over the same file stay two; a copy (the same
        // number) is the same one.
        for (handle, number) in [(8, 1), (12, 2), (16, 2)] {
            let step = file_section_step(handle, write, "", number, 4096);
            file_step_fds(broker, 1, step, clone(), read_only()).unwrap();
        }
        assert_eq!(sections(broker), 3);
        // Under a number of its, another file is refused; so is a section
        // longer than its file, a twin that is not the file read-only, and
        // descriptors that map nothing.
        let unnamed = |number, size| file_section_step(20, read, "", number, size);
        let other = file_step_fds(broker, 1, unnamed(2, 4096), scratch(), read_only());
        assert_eq!(other.unwrap_err().code, ERROR_INVALID_PARAMETER);
        let longer = file_step_fds(broker, 1, unnamed(3, 1 << 20), clone(), read_only());
        assert_eq!(longer.unwrap_err().code, ERROR_INVALID_PARAMETER);
        let twin = file_step_fds(broker, 1, unnamed(3, 4096), clone(), clone());
        assert_eq!(twin.unwrap_err().code, ERROR_INVALID_PARAMETER);
        let path = || reopen(rustix::fs::OFlags::PATH);
        let nothing = file_step_fds(broker, 1, unnamed(4, 4096), path(), read_only());
        assert_eq!(nothing.unwrap_err().code, ERROR_ACCESS_DENIED);
        let write_only = reopen(rustix::fs::OFlags::WRONLY);
        let nothing = file_step_fds(broker, 1, unnamed(4, 4096), write_only, read_only());
        assert_eq!(nothing.unwrap_err().code, ERROR_ACCESS_DENIED);
        // An open of the file that shares nothing comes back all the same:
        // its mappings lived with it already.
        use objmgr_proto::access::{FILE_READ_DATA, FILE_WRITE_DATA};
        let rw = FILE_READ_DATA | FILE_WRITE_DATA;
        step_ok(broker, 2, file_step(8, rw, 0, rw, 0), clone());
        step(broker, 1, ReclaimStep::End, None).unwrap();
        step(broker, 2, ReclaimStep::End, None).unwrap();
        assert!(broker.recovery_deadline().is_none());
        // Each maps its file, as a section made over it does.
        let node = crate::section::file_node(&file).unwrap();
        assert_eq!(broker.mapped_files[&node].len(), 3);
        broker.remove_client(1);
        broker.remove_client(2);
        assert_eq!(sections(broker), 0);
        assert!(broker.mapped_files.is_empty());
    }

    fn step_ok(broker: &mut Broker, id: ClientId, file_step: ReclaimStep, fd: OwnedFd) {
        step(broker, id, file_step, Some(fd)).unwrap();
    }

    #[test]
    fn one_object_per_file_and_per_name() {
        let mut r = recovering(&[9, 10]);
        let broker = &mut r.broker;
        two_returning(broker);
        let shared = memfd();
        let again = shared.try_clone().unwrap();
        step(broker, 1, section_step(4, "Local\\x"), Some(shared)).unwrap();
        // The same file from another process: the same object, one name.
        step(broker, 2, section_step(12, "Local\\x"), Some(again)).unwrap();
        let oid = broker.names.values().copied().collect::<Vec<_>>();
        assert_eq!(oid.len(), 1);
        // Both handles and the recovery's own reference.
        assert_eq!(broker.objects[&oid[0]].handle_count, 3);
        // Another file under the name is refused.
        let clash = step(broker, 2, section_step(16, "Local\\x"), Some(memfd())).unwrap_err();
        assert_eq!(clash.code, ERROR_ALREADY_EXISTS);
        // A sync object comes back in its arena, with its state.
        let mut arena = SyncArena::new().unwrap();
        let slot = arena
            .allocate(
                SyncInit::Event {
                    manual_reset: true,
                    signaled: true,
                },
                None,
            )
            .unwrap();
        let arena_step = ReclaimStep::Arena {
            id: arena.id,
            slots: arena.slots(),
        };
        let arena_fd = arena.fd.try_clone().unwrap();
        step(broker, 1, arena_step, Some(arena_fd)).unwrap();
        let event = ReclaimStep::Sync {
            held: held(8, 0x1F0003, "Local\\e"),
            arena: arena.id,
            slot,
        };
        step(broker, 1, event, None).unwrap();
        let free_slot = ReclaimStep::Sync {
            held: held(20, 0x1F0003, ""),
            arena: arena.id,
            slot: slot + 1,
        };
        assert!(step(broker, 1, free_slot, None).is_err());
        step(broker, 1, ReclaimStep::End, None).unwrap();
        step(broker, 2, ReclaimStep::End, None).unwrap();
        assert!(broker.recovery_deadline().is_none());
        assert_eq!(broker.objects[&oid[0]].handle_count, 2);
        // When the last holders go, so do the objects and their names.
        broker.remove_client(1);
        broker.remove_client(2);
        assert!(broker.objects.is_empty() && broker.names.is_empty());
        arena.free(slot);
    }

    #[test]
    fn a_process_that_was_given_handles_does_not_come_back() {
        let mut r = recovering_with(&[9], &[9]);
        let broker = &mut r.broker;
        connect(broker, 1, std::process::id());
        let refused = step(broker, 1, ReclaimStep::Begin { tag: 9 }, None).unwrap_err();
        assert_eq!(refused.code, ERROR_ACCESS_DENIED);
        // Nobody else is expected: the others are served at once. Its tag
        // stays reserved until its session is over (it leaves).
        assert!(broker.recovery.is_none());
        assert!(broker.late.contains_key(&9) && broker.tags_in_use.contains(&9));
        step(broker, 1, ReclaimStep::Leave { tag: 9 }, None).unwrap();
        assert!(broker.late.is_empty() && !broker.tags_in_use.contains(&9));
        assert!(broker.recovery_deadline().is_none());
    }

    #[test]
    fn a_process_that_leaves_is_not_waited_for_and_late_ones_are_reaped_when_they_leave() {
        let mut r = recovering(&[9, 10]);
        let broker = &mut r.broker;
        let me = std::process::id();
        connect(broker, 1, me);
        step(broker, 1, ReclaimStep::Leave { tag: 9 }, None).unwrap();
        assert!(broker.recovery_deadline().is_some(), "10 is still expected");
        // Its time is up while 10 still runs: 10 is late, its tag kept.
        broker.recovery.as_mut().unwrap().deadline = Instant::now();
        broker.check_recovery();
        assert!(broker.recovery.is_none());
        assert!(broker.late.contains_key(&10) && broker.tags_in_use.contains(&10));
        assert!(!broker.tags_in_use.contains(&9));
        // Too late to come back; leaving reaps and frees its tag.
        let refused = step(broker, 1, ReclaimStep::Begin { tag: 10 }, None).unwrap_err();
        assert_eq!(refused.code, ERROR_NOT_SUPPORTED);
        step(broker, 1, ReclaimStep::Leave { tag: 10 }, None).unwrap();
        assert!(broker.late.is_empty() && !broker.tags_in_use.contains(&10));
    }

    #[test]
    fn a_process_that_dies_while_coming_back_is_reaped_in_arenas_announced_later() {
        use objmgr_sync::ops::{Actor, Token};
        let mut r = recovering(&[9, 10]);
        let broker = &mut r.broker;
        let me = std::process::id();
        // A mutex owned by a thread of process 9, in an arena that process
        // 10 brings after 9 has gone.
        let mut arena = SyncArena::new().unwrap();
        let owner = Actor {
            pid: me,
            tid: 1,
            token: Token::new(9, 1).unwrap(),
        };
        let slot = arena
            .allocate(SyncInit::Mutex { owned: true }, Some(owner))
            .unwrap();
        connect(broker, 1, me);
        step(broker, 1, ReclaimStep::Begin { tag: 9 }, None).unwrap();
        broker.remove_client(1);
        assert!(broker.tags_in_use.contains(&9), "kept until the end");
        connect(broker, 2, me);
        step(broker, 2, ReclaimStep::Begin { tag: 10 }, None).unwrap();
        let arena_step = ReclaimStep::Arena {
            id: arena.id,
            slots: arena.slots(),
        };
        step(broker, 2, arena_step, Some(arena.fd.try_clone().unwrap())).unwrap();
        let mutex = ReclaimStep::Sync {
            held: held(4, 0x1F0001, ""),
            arena: arena.id,
            slot,
        };
        step(broker, 2, mutex, None).unwrap();
        let observed = |arena: &SyncArena| objmgr_sync::ops::observe(arena.slot(slot).unwrap());
        assert!(observed(&arena).unwrap().owner.is_some());
        step(broker, 2, ReclaimStep::End, None).unwrap();
        assert!(broker.recovery.is_none());
        let after = observed(&arena).unwrap();
        assert!(after.owner.is_none() && after.abandoned, "{after:?}");
        assert!(!broker.tags_in_use.contains(&9));
        broker.remove_client(2);
        arena.free(slot);
    }
}
