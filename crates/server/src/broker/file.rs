//! Files opened through objmgr (`CreateFile`): the broker keeps every open
//! of a file, by device and inode (so hard links and different paths are
//! one file), and refuses an open whose access or share mode conflicts with
//! another's, in any process (`ERROR_SHARING_VIOLATION`). It keeps each
//! open's fd, so that a file handle can be inherited and duplicated into
//! another process like any handle: they share the open file description,
//! and so the file position and the byte-range locks, as duplicates share
//! them on Windows. Byte-range locks themselves are the kernel's
//! (open-file-description locks, taken by the client): the broker only
//! keeps the description open while a handle refers to it.
//!
//! The broker never opens a path: the client opens the file with its own
//! rights and passes the fd, which the broker checks (a regular file, opened
//! for at least the access claimed).

use std::os::fd::OwnedFd;

use objmgr_proto::file::{FILE_SHARE_DELETE, FILE_SHARE_VALID, compatible};
use objmgr_proto::wire::{FileGrant, FileOp};
use rustix::fs::OFlags;

use super::*;

/// The byte-range locks `/proc/locks` lists, by file (`MAJ:MIN:INODE`), as
/// `START-END:KIND` words.
fn locks_by_node(locks: &str) -> HashMap<String, Vec<String>> {
    let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
    for line in locks.lines() {
        // "1: OFDLCK ADVISORY WRITE -1 08:01:1234 0 99"
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, _, _, kind, _, node, start, end, ..] = fields[..] {
            by_node
                .entry(node.to_owned())
                .or_default()
                .push(format!("{start}-{end}:{}", kind.to_lowercase()));
        }
    }
    by_node
}

/// A share mode as `objmgr ls --files` shows it.
fn share_names(share: u32) -> String {
    use objmgr_proto::file::{FILE_SHARE_READ, FILE_SHARE_WRITE};
    let names: Vec<&str> = [
        (FILE_SHARE_READ, "read"),
        (FILE_SHARE_WRITE, "write"),
        (FILE_SHARE_DELETE, "delete"),
    ]
    .into_iter()
    .filter(|(bit, _)| share & bit != 0)
    .map(|(_, name)| name)
    .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    }
}
use crate::section::{FileNode, file_node};

/// What [`Broker::check_file_open`] found an open to be.
#[derive(Clone, Copy, Debug)]
pub(super) struct Opened {
    pub node: FileNode,
    /// The access asked, generic rights mapped.
    pub access: AccessMask,
    /// What the fd may do: read, write.
    pub mode: (bool, bool),
}

/// An open file: the object behind a file handle.
#[derive(Debug)]
pub(super) struct OpenFile {
    pub node: FileNode,
    /// The client's open file description.
    pub fd: Rc<OwnedFd>,
    /// What `fd` may do: read, write.
    pub mode: (bool, bool),
    /// Reopenings of the file for handles that may do less than `fd`, by
    /// what they may do (a handle never gets an fd wider than its access).
    narrowed: std::cell::RefCell<Vec<Narrowed>>,
    /// Specific rights granted (generic ones mapped).
    pub access: u32,
    pub share: u32,
    /// `FILE_FLAG_DELETE_ON_CLOSE`: the name to remove once this open and
    /// every other of the file have closed.
    delete_on_close: Option<crate::closer::PendingUnlink>,
    /// The tag of the process that made the open (what the system broker's
    /// ledger knows the open by).
    pub opener: u16,
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // Closing a client's file may wait on its file system: not here.
        if let Some(pending) = self.delete_on_close.take() {
            crate::closer::close_later(pending.dir);
        }
        for (_, mut fd) in self.narrowed.take() {
            crate::closer::close_shared_later(&mut fd);
        }
        crate::closer::close_shared_later(&mut self.fd);
    }
}

/// A reopening of a file for handles that may read and write only as its
/// mode (read, write) says.
type Narrowed = ((bool, bool), Rc<OwnedFd>);

/// File systems where opening a file may wait on something a client
/// controls (a FUSE daemon, a network server): the broker does not reopen
/// files there.
const REMOTE_FILE_SYSTEMS: [i64; 5] = [
    0x6573_5546,            // FUSE
    0x6969,                 // NFS
    0xFF53_4D42_u32 as i64, // CIFS
    0xFE53_4D42_u32 as i64, // SMB2
    0x00C3_6400,            // Ceph
];

/// `fd` opened again through `/proc`, read-only or write-only (`mode`), or
/// `O_PATH` when it may do neither.
fn reopen_narrowed(fd: &OwnedFd, mode: (bool, bool)) -> Result<OwnedFd, Failure> {
    let kind = match mode {
        (true, true) => OFlags::RDWR,
        (true, false) => OFlags::RDONLY,
        (false, true) => OFlags::WRONLY,
        (false, false) => OFlags::PATH,
    };
    if kind != OFlags::PATH {
        let remote =
            rustix::fs::fstatfs(fd).is_ok_and(|s| REMOTE_FILE_SYSTEMS.contains(&{ s.f_type }));
        if remote {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "a handle with less access than its file's open cannot be made on this file system",
            ));
        }
    }
    rustix::fs::open(
        format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(fd)),
        kind | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Failure::new(crate::errno(e), "reopening a file for a narrower handle"))
}

impl Broker {
    /// `CreateFile` of the file behind `fd`, with `access` and `share`.
    pub(super) fn open_file(
        &mut self,
        id: ClientId,
        access: u32,
        share: u32,
        inherit: bool,
        fd: OwnedFd,
        delete_on_close: Option<(OwnedFd, String)>,
    ) -> Result<Outcome, Failure> {
        // Deleting on close is using the file for deleting.
        let access = if delete_on_close.is_some() {
            access | objmgr_proto::access::DELETE
        } else {
            access
        };
        let checked = self.check_new_open(id, access, share, &fd);
        let Opened { node, access, mode } = match checked {
            Ok(checked) => checked,
            Err(failure) => {
                crate::closer::close_later(fd);
                if let Some((dir, _)) = delete_on_close {
                    crate::closer::close_later(dir);
                }
                return Err(failure);
            }
        };
        let delete_on_close = match delete_on_close {
            Some((dir, name)) => Some(self.pending_unlink(id, dir, name, node)?),
            None => None,
        };
        let opened = Opened { node, access, mode };
        let oid = self.insert_open_file(id, fd, opened, share, delete_on_close);
        self.grant(id, oid, access, inherit, false)
    }

    /// [`Broker::check_file_open`], and room for one more open: client
    /// `id`'s quota, and the broker's descriptors.
    pub(super) fn check_new_open(
        &self,
        id: ClientId,
        access: u32,
        share: u32,
        fd: &OwnedFd,
    ) -> Result<Opened, Failure> {
        let opened = self.check_file_open(id, access, share, fd)?;
        self.check_quota(id, Charge::section(0))?;
        self.check_descriptors()?;
        Ok(opened)
    }

    /// A new open of a file (checked by [`Broker::check_new_open`]) by
    /// client `id`, with no handle yet.
    pub(super) fn insert_open_file(
        &mut self,
        id: ClientId,
        fd: OwnedFd,
        opened: Opened,
        share: u32,
        delete_on_close: Option<crate::closer::PendingUnlink>,
    ) -> ObjectId {
        let Opened { node, access, mode } = opened;
        let security = self.own_security();
        let domain = self.domain_of(id);
        let body = Body::File(OpenFile {
            node,
            fd: Rc::new(fd),
            mode,
            narrowed: Default::default(),
            access: access.0,
            share,
            delete_on_close,
            opener: self.clients[&id].tag,
        });
        let oid = self.insert_object(
            ObjectType::File,
            None,
            body,
            Some((id, Charge::section(0))),
            security,
            domain,
        );
        self.open_files.entry(node).or_default().push(oid);
        self.ledger_note(oid);
        oid
    }

    /// The removal of `name` in directory `dir` (the file `node`) for client
    /// `id`: with its rights on the system broker.
    fn pending_unlink(
        &self,
        id: ClientId,
        dir: OwnedFd,
        name: String,
        node: FileNode,
    ) -> Result<crate::closer::PendingUnlink, Failure> {
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
        let is_dir = rustix::fs::fstat(&dir).is_ok_and(|s| {
            rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory
        });
        if !plain || !is_dir {
            crate::closer::close_later(dir);
            return Err(Failure::new(
                ERROR_INVALID_NAME,
                "a file to delete is named by its directory and one plain name",
            ));
        }
        let client = &self.clients[&id];
        let creds = self.system.then(|| {
            let gid = client.token.primary_group.unix_gid().unwrap_or(u32::MAX);
            let groups = client
                .token
                .groups
                .iter()
                .filter_map(|g| g.unix_gid())
                .collect();
            (client.uid, gid, groups)
        });
        Ok(crate::closer::PendingUnlink {
            dir,
            name,
            node,
            creds,
        })
    }

    /// Checks a `CreateFile` of the file behind `fd`: the file, the fd, and
    /// the share modes. Returns the file, the access (generic rights
    /// mapped) and what the fd may do.
    fn check_file_open(
        &self,
        id: ClientId,
        access: u32,
        share: u32,
        fd: &OwnedFd,
    ) -> Result<Opened, Failure> {
        if share & !FILE_SHARE_VALID != 0 {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("share mode {share:#x}"),
            ));
        }
        let access = ObjectType::File.map_generic(access);
        let flags = rustix::fs::fcntl_getfl(fd)
            .map_err(|e| Failure::new(crate::errno(e), "the file's access mode"))?;
        // An O_PATH fd opens nothing: it proves no access at all.
        if flags.contains(OFlags::PATH) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the file was not opened for reading or writing",
            ));
        }
        let node = crate::section::file_or_pipe_node(fd)?;
        if self.delete_pending.contains_key(&node) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the file is being deleted (its last handle has not closed yet)",
            ));
        }
        let mode = flags & OFlags::ACCMODE;
        let readable = mode == OFlags::RDONLY || mode == OFlags::RDWR;
        let writable = mode == OFlags::WRONLY || mode == OFlags::RDWR;
        let uses = objmgr_proto::file::Uses::of(access.0);
        if !uses.fit(readable, writable) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the file was not opened for the access asked",
            ));
        }
        // DELETE keeps others from opening without FILE_SHARE_DELETE: only
        // the file's owner (or root) may claim it.
        if uses.delete {
            let uid = self.clients[&id].uid;
            let owner = rustix::fs::fstat(fd).map(|s| s.st_uid).unwrap_or(u32::MAX);
            if uid != 0 && uid != owner {
                return Err(Failure::new(
                    ERROR_ACCESS_DENIED,
                    "DELETE access to a file of another user",
                ));
            }
        }
        // A mapping of the file counts as a user of it: reading, and writing
        // when shared writes are allowed; it shares reading and writing.
        // (While a recovery runs, the opens and mappings of the broker that
        // died come back in any order: a mapping taken back lived with the
        // opens already.)
        let recovering = self.recovery.is_some();
        for section in self
            .file_sections(node)
            .filter(|section| !(recovering && section.is_adopted()))
        {
            let mut uses = objmgr_proto::access::FILE_READ_DATA;
            if section.protection.allows_shared_write() {
                uses |= objmgr_proto::access::FILE_WRITE_DATA;
            }
            let shares = objmgr_proto::file::FILE_SHARE_READ | objmgr_proto::file::FILE_SHARE_WRITE;
            if !compatible(access.0, share, uses, shares) {
                return Err(Failure::new(
                    ERROR_SHARING_VIOLATION,
                    "a section maps the file",
                ));
            }
        }
        if let Some(clash) = self
            .file_opens(node)
            .find(|o| !compatible(access.0, share, o.access, o.share))
        {
            return Err(Failure::new(
                ERROR_SHARING_VIOLATION,
                format!(
                    "the file is open with access {:#x} and share mode {:#x}",
                    clash.access, clash.share
                ),
            ));
        }
        Ok(Opened {
            node,
            access,
            mode: (readable, writable),
        })
    }

    /// `objmgr ls --files`: the files open through objmgr that client `id`
    /// may see (its user's; root: all), with their share modes.
    pub(super) fn list_files(&self, id: ClientId) -> Outcome {
        let uid = self.clients[&id].uid;
        let locks = locks_by_node(&std::fs::read_to_string("/proc/locks").unwrap_or_default());
        let mut entries = Vec::new();
        // Stop well before the reply could outgrow one message.
        let budget = MAX_MESSAGE_SIZE - 4 * MAX_STRING_LEN;
        let mut used = 0;
        let mut more = false;
        for (&oid, object) in &self.objects {
            let Body::File(open) = &object.body else {
                continue;
            };
            if uid != 0 && self.system && object.domain != uid {
                continue;
            }
            if entries.len() == MAX_LIST_ENTRIES as usize || used > budget {
                more = true;
                break;
            }
            // The name the broker's copy of the fd has now (display only).
            let path = std::fs::read_link(format!(
                "/proc/self/fd/{}",
                rustix::fd::AsRawFd::as_raw_fd(&*open.fd)
            ))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
            let holder = object.charged_to.map(|(pid, _)| pid.to_string());
            let (major, minor, ino) = open.node;
            let mut held = locks
                .get(&format!("{major:02x}:{minor:02x}:{ino}"))
                .map_or_else(|| "none".to_owned(), |l| l.join(","));
            held.truncate(MAX_STRING_LEN / 2);
            used += 64 + path.len() + held.len();
            entries.push(ObjectEntry {
                path,
                object_type: ObjectType::File,
                handle_count: object.handle_count,
                size: 0,
                properties: vec![
                    ("object".to_owned(), oid.to_string()),
                    ("access".to_owned(), format!("{:#x}", open.access)),
                    ("share".to_owned(), share_names(open.share)),
                    ("opened_by".to_owned(), holder.unwrap_or_default()),
                    ("locks".to_owned(), held),
                ],
            });
        }
        Outcome::reply(Reply::Objects { entries, more })
    }

    /// The opens of the file `node`.
    fn file_opens(&self, node: FileNode) -> impl Iterator<Item = &OpenFile> {
        self.open_files
            .get(&node)
            .into_iter()
            .flatten()
            .filter_map(|oid| match &self.objects.get(oid)?.body {
                Body::File(open) => Some(open),
                _ => None,
            })
    }

    /// The file-backed sections of the file `node`.
    fn file_sections(&self, node: FileNode) -> impl Iterator<Item = &crate::section::Section> {
        self.mapped_files
            .get(&node)
            .into_iter()
            .flatten()
            .filter_map(|oid| match &self.objects.get(oid)?.body {
                Body::Section(section) => Some(section),
                _ => None,
            })
    }

    /// An open file object is destroyed.
    pub(super) fn file_closed(&mut self, oid: ObjectId, mut open: OpenFile) {
        let node = open.node;
        if let Some(pending) = open.delete_on_close.take() {
            self.delete_pending.entry(node).or_insert(pending);
        }
        if let Some(opens) = self.open_files.get_mut(&node) {
            opens.retain(|&o| o != oid);
            if !opens.is_empty() {
                return;
            }
            self.open_files.remove(&node);
        }
        // The last open of the file: a pending delete happens now.
        if let Some(pending) = self.delete_pending.remove(&node) {
            let done = crate::closer::unlink_later(pending);
            self.last_removal = Some(self.track_removal(done));
        }
    }

    /// A ticket for a queued removal. Tickets nobody asked about are
    /// forgotten once done, and the oldest beyond a bound (a closer that
    /// died): asking about an unknown ticket answers "done".
    fn track_removal(&mut self, done: crate::closer::RemovalDone) -> u32 {
        const KEPT: usize = 4096;
        self.next_removal = self.next_removal.wrapping_add(1).max(1);
        if self.removals.len() >= KEPT {
            self.removals
                .retain(|_, d| !d.load(std::sync::atomic::Ordering::Acquire));
            while self.removals.len() >= KEPT {
                self.removals.pop_first();
            }
        }
        self.removals.insert(self.next_removal, done);
        self.next_removal
    }

    /// The reply for a new file handle: its facts and the fd.
    pub(super) fn file_grant(
        open: &OpenFile,
        handle: Handle,
        access: AccessMask,
    ) -> Result<Outcome, Failure> {
        let uses = objmgr_proto::file::Uses::of(access.0);
        let wanted = (uses.read && open.mode.0, uses.write && open.mode.1);
        let fd = if wanted == open.mode {
            open.fd.clone()
        } else {
            let known = open
                .narrowed
                .borrow()
                .iter()
                .find(|(mode, _)| *mode == wanted)
                .map(|(_, fd)| fd.clone());
            match known {
                Some(fd) => fd,
                None => {
                    let fd = Rc::new(reopen_narrowed(&open.fd, wanted)?);
                    open.narrowed.borrow_mut().push((wanted, fd.clone()));
                    fd
                }
            }
        };
        Ok(Outcome {
            reply: Reply::File(FileGrant {
                handle,
                access: access.0,
                share: open.share,
            }),
            fd: Some(fd),
            shutdown: false,
        })
    }

    /// Serves [`Request::FileControl`].
    pub(super) fn file_control(
        &mut self,
        id: ClientId,
        op: FileOp,
        handle: Handle,
        value: u64,
        delete: Option<(OwnedFd, OwnedFd, String)>,
    ) -> Result<Outcome, Failure> {
        match op {
            FileOp::MayTruncate => {
                let entry = *self
                    .client(id)
                    .handles
                    .get(handle)
                    .ok_or_else(|| not_open(handle))?;
                let Body::File(open) = &self.objects[&entry.object].body else {
                    return Err(Failure::new(
                        ERROR_INVALID_HANDLE,
                        format!("handle {:#x} is not a file", handle.0),
                    ));
                };
                let node = open.node;
                let mapped = self.file_sections(node).any(|s| s.size > value);
                if mapped {
                    return Err(Failure::new(
                        ERROR_USER_MAPPED_FILE,
                        format!("a section maps the file past {value} bytes"),
                    ));
                }
            }
            FileOp::RemovalDone => {
                let ticket = value as u32;
                let done = self
                    .removals
                    .get(&ticket)
                    .is_none_or(|d| d.load(std::sync::atomic::Ordering::Acquire));
                if done {
                    self.removals.remove(&ticket);
                }
                return Ok(Outcome::reply(Reply::Value(u32::from(done))));
            }
            FileOp::MayDelete => {
                let (file, dir, name) =
                    delete.ok_or_else(|| Failure::protocol("MayDelete without the file"))?;
                let node = match file_node(&file) {
                    Ok(node) => node,
                    Err(failure) => {
                        crate::closer::close_later(dir);
                        return Err(failure);
                    }
                };
                // A mapped file cannot be deleted.
                if self.file_sections(node).next().is_some() {
                    crate::closer::close_later(dir);
                    return Err(Failure::new(ERROR_ACCESS_DENIED, "a section maps the file"));
                }
                // Opens that use no data take no part, as in every share check.
                let clash = self.file_opens(node).find(|o| {
                    !compatible(
                        objmgr_proto::access::DELETE,
                        FILE_SHARE_VALID,
                        o.access,
                        o.share,
                    )
                });
                if let Some(open) = clash {
                    let share = open.share;
                    crate::closer::close_later(dir);
                    return Err(Failure::new(
                        ERROR_SHARING_VIOLATION,
                        format!(
                            "the file is open without FILE_SHARE_DELETE (share mode {share:#x})"
                        ),
                    ));
                }
                // Nothing has it open, or the caller only checks (a move):
                // the caller acts now. Else the name goes with the last open.
                if !self.open_files.contains_key(&node) || value == 1 {
                    crate::closer::close_later(dir);
                    return Ok(Outcome::reply(Reply::Value(0)));
                }
                let pending = self.pending_unlink(id, dir, name, node)?;
                self.delete_pending.entry(node).or_insert(pending);
                return Ok(Outcome::reply(Reply::Value(1)));
            }
        }
        Ok(Outcome::reply(Reply::Value(0)))
    }
}
