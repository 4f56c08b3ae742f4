//! A broker's journal of its clients: which process holds which
//! tag, kept in a file beside the socket so that the broker that replaces a
//! dead one knows who will come back for their handles (see
//! `broker::recovery`) and which tags of processes that died meanwhile still
//! own mutexes in the shared arenas.
//!
//! One 16-byte record per tag, at offset `tag * 16`: pid (`u32`), flags
//! (`u32`: [`GIFTED`]), and the process's start time (`u64`, clock ticks after boot, from
//! `/proc/<pid>/stat`), so that a pid reused by another process is told
//! apart. A record is written when a process connects and zeroed when it
//! disconnects, one `pwrite` each, and its flags once when a process is
//! first given a handle (at `Hello`, or by another's `DuplicateHandle`):
//! never on the path of a wait, a signal or a map. The file lives
//! in the socket's directory, which the broker checked is private to its
//! user; a broker that exits on purpose removes it, one that dies leaves it.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const RECORD_BYTES: u64 = 16;

/// The process was given handles it did not ask for (inherited, or
/// duplicated in by another process): it may not know them all, so it
/// cannot take its handles back to another broker.
pub const GIFTED: u32 = 1;

/// A process as the journal names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub tag: u16,
    pub pid: u32,
    pub start_time: u64,
    /// [`GIFTED`], or 0.
    pub flags: u32,
}

impl Recorded {
    /// Whether the process still runs (not a later one with its pid).
    pub fn still_runs(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Whether the process is `pid`, the same that was recorded.
    pub fn is(&self, pid: u32) -> bool {
        self.pid == pid && self.still_runs()
    }
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// When process `pid` started (clock ticks after boot), if it runs (a
/// zombie does not).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = crate::broker::ProcStat::read(pid)?;
    if matches!(stat.field(3), Some("Z" | "X" | "x")) {
        return None;
    }
    stat.field(22)?.parse().ok()
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns the processes
    /// it records: those of a broker that did not exit cleanly.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Vec<Recorded>)> {
        let file = open_private_file(path, false)?;
        let meta = file.metadata()?;
        let size = meta.len().min((u64::from(u16::MAX) + 1) * RECORD_BYTES);
        let mut bytes = vec![0u8; size as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let recorded = bytes
            .chunks_exact(RECORD_BYTES as usize)
            .enumerate()
            .filter_map(|(tag, record)| {
                let pid = u32::from_le_bytes(record[0..4].try_into().expect("4 bytes"));
                let flags = u32::from_le_bytes(record[4..8].try_into().expect("4 bytes"));
                let start_time = u64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
                (pid != 0 && tag != 0).then_some(Recorded {
                    tag: tag as u16,
                    pid,
                    start_time,
                    flags,
                })
            })
            .collect();
        Ok((
            Journal {
                file,
                path: path.to_owned(),
            },
            recorded,
        ))
    }

    /// Records that `pid` (started at `start_time`) holds `tag`.
    pub fn record(&self, tag: u16, pid: u32, start_time: u64) {
        let mut record = [0u8; RECORD_BYTES as usize];
        record[0..4].copy_from_slice(&pid.to_le_bytes());
        record[8..16].copy_from_slice(&start_time.to_le_bytes());
        self.write(tag, 0, &record);
    }

    /// Records that the holder of `tag` was given handles ([`GIFTED`]).
    pub fn mark_gifted(&self, tag: u16) {
        self.write(tag, 4, &GIFTED.to_le_bytes());
    }

    /// Forgets the holder of `tag`.
    pub fn clear(&self, tag: u16) {
        self.write(tag, 0, &[0u8; RECORD_BYTES as usize]);
    }

    /// Writes `bytes` at `offset` in the record of `tag`.
    fn write(&self, tag: u16, offset: u64, bytes: &[u8]) {
        let at = u64::from(tag) * RECORD_BYTES + offset;
        if let Err(e) = self.file.write_all_at(bytes, at) {
            crate::log::warning!("writing the client journal: {e}");
        }
    }

    /// Removes the file: the broker exits with no client to come back.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens (or creates, mode 0600) the broker's file at `path` (in its
/// private directory) for reading and writing (`append`: every write at the
/// end): only a regular file of the broker's own user, with no other name.
pub fn open_private_file(path: &Path, append: bool) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .append(append)
        .create(true)
        .mode(0o600)
        .custom_flags(libc_flags::NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != rustix::process::getuid().as_raw() || meta.nlink() != 1 {
        return Err(std::io::Error::other(format!(
            "{} is not a file of this user's broker",
            path.display()
        )));
    }
    Ok(file)
}

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags`.
mod libc_flags {
    pub const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
}
