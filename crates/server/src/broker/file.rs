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

/// The byte-range locks `/proc/locks` lists on file `node`, as
/// `START-END KIND` words (open-file-description locks, ours among them).
fn locks_of(locks: &str, (major, minor, ino): FileNode) -> String {
    let node = format!("{major:02x}:{minor:02x}:{ino}");
    let found: Vec<String> = locks
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "1: OFDLCK ADVISORY WRITE -1 08:01:1234 0 99"
            let at = fields.iter().position(|f| *f == node)?;
            let kind = fields.get(at.checked_sub(2)?)?.to_lowercase();
            let (start, end) = (fields.get(at + 1)?, fields.get(at + 2)?);
            Some(format!("{start}-{end}:{kind}"))
        })
        .collect();
    if found.is_empty() {
        "none".to_owned()
    } else {
        found.join(",")
    }
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

/// An open file: the object behind a file handle.
#[derive(Debug)]
pub(super) struct OpenFile {
    pub node: FileNode,
    /// The client's open file description.
    pub fd: Rc<OwnedFd>,
    /// Specific rights granted (generic ones mapped).
    pub access: u32,
    pub share: u32,
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
    ) -> Result<Outcome, Failure> {
        if share & !FILE_SHARE_VALID != 0 {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("share mode {share:#x}"),
            ));
        }
        let access = ObjectType::File.map_generic(access);
        let node = file_node(&fd)?;
        // The fd must allow what the client claims (it opened it itself).
        let mode = rustix::fs::fcntl_getfl(&fd)
            .map_err(|e| Failure::new(crate::errno(e), "the file's access mode"))?
            & OFlags::ACCMODE;
        let uses = objmgr_proto::file::Uses::of(access.0);
        let readable = mode == OFlags::RDONLY || mode == OFlags::RDWR;
        let writable = mode == OFlags::WRONLY || mode == OFlags::RDWR;
        if (uses.read && !readable) || (uses.write && !writable) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the file was not opened for the access asked",
            ));
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
        self.check_quota(id, Charge::section(0))?;
        self.check_descriptors()?;
        let security = self.own_security();
        let domain = self.domain_of(id);
        let body = Body::File(OpenFile {
            node,
            fd: Rc::new(fd),
            access: access.0,
            share,
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
        self.grant(id, oid, access, inherit, false)
    }

    /// `objmgr ls --files`: the files open through objmgr that client `id`
    /// may see (its user's; root: all), with their share modes.
    pub(super) fn list_files(&self, id: ClientId) -> Outcome {
        let uid = self.clients[&id].uid;
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        let mut entries = Vec::new();
        let mut more = false;
        for (&oid, object) in &self.objects {
            let Body::File(open) = &object.body else {
                continue;
            };
            if uid != 0 && self.system && object.domain != uid {
                continue;
            }
            if entries.len() == MAX_LIST_ENTRIES as usize {
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
                    ("locks".to_owned(), locks_of(&locks, open.node)),
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

    /// An open file object is destroyed.
    pub(super) fn file_closed(&mut self, oid: ObjectId, node: FileNode) {
        if let Some(opens) = self.open_files.get_mut(&node) {
            opens.retain(|&o| o != oid);
            if opens.is_empty() {
                self.open_files.remove(&node);
            }
        }
    }

    /// The reply for a new file handle: its facts and the fd.
    pub(super) fn file_grant(open: &OpenFile, handle: Handle, access: AccessMask) -> Outcome {
        Outcome {
            reply: Reply::File(FileGrant {
                handle,
                access: access.0,
                share: open.share,
            }),
            fd: Some(open.fd.clone()),
            shutdown: false,
        }
    }

    /// Serves [`Request::FileControl`].
    pub(super) fn file_control(
        &mut self,
        id: ClientId,
        op: FileOp,
        handle: Handle,
        value: u64,
        fd: Option<OwnedFd>,
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
                let mapped = self.objects.values().any(|o| match &o.body {
                    Body::Section(section) => {
                        section.size > value && section.file_node() == Some(node)
                    }
                    _ => false,
                });
                if mapped {
                    return Err(Failure::new(
                        ERROR_USER_MAPPED_FILE,
                        format!("a section maps the file past {value} bytes"),
                    ));
                }
            }
            FileOp::MayDelete => {
                let fd = fd.ok_or_else(|| Failure::protocol("MayDelete without the file"))?;
                let node = file_node(&fd)?;
                if let Some(open) = self
                    .file_opens(node)
                    .find(|o| o.share & FILE_SHARE_DELETE == 0)
                {
                    return Err(Failure::new(
                        ERROR_SHARING_VIOLATION,
                        format!(
                            "the file is open without FILE_SHARE_DELETE (share mode {:#x})",
                            open.share
                        ),
                    ));
                }
            }
        }
        Ok(Outcome::reply(Reply::Done))
    }
}
