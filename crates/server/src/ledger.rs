//! The system broker's ledger of the objects its clients may take back
//! after it dies: what each object is (its memory file, or its slot in an
//! arena), its name, the security domain it belongs to, and its security
//! descriptor.
//!
//! A per-user broker believes its returning processes about the names and
//! access of their handles: they are all its user's, who can reach every
//! object of the user's anyway. The system broker serves every user, so a
//! returning process is believed about nothing the ledger does not say: a
//! memory file or arena it brings must be one the lost broker made, a name
//! must be the one that object had, and access to another user's object
//! must be what the object's descriptor grants that process now. Without
//! the ledger a returning process of one user could bring a file of its
//! own under another user's `Global\` name, or claim rights it never had.
//!
//! The ledger is an append-only file beside the journal (in the root-owned
//! socket directory, mode 0600): one record when an object that can come
//! back is made, one when its descriptor changes, one when it dies. A
//! record is written with one `write`, never on the path of a wait, a
//! signal or a map. A broker that takes over reads the records of the lost
//! one (the last record of an object wins), appends its own under object
//! ids above theirs (so a broker that dies during the recovery leaves both,
//! and the next one still knows the objects whose holders had not come
//! back), and writes the ledger anew from its live objects when the
//! recovery ends, or when most records are of dead objects.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use objmgr_proto::access::ObjectType;

use crate::section::FileNode;

/// What an object is, in a way a returning process can prove by what it
/// holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A paging-file section: its memory file, and its protection and
    /// attributes (`SEC_*`), as `CreateFileMapping` takes them.
    Section { node: FileNode, protection: u32 },
    /// A mutex, event, semaphore, timer or thread: slot `slot` of arena
    /// `arena`, whose memory file is `node`; a solo arena holds one object
    /// shared between users.
    Sync {
        arena: u64,
        node: FileNode,
        slot: u32,
        solo: bool,
    },
    /// An open of a file (or pipe end) by the process that had `tag`: the
    /// file, and the open's access and share mode.
    Open {
        node: FileNode,
        access: u32,
        share: u32,
        tag: u16,
    },
}

/// One object as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub object_type: ObjectType,
    /// The security domain (uid) whose object it is.
    pub domain: u32,
    /// Its full namespace path, if named.
    pub path: Option<String>,
    /// Its security descriptor, in SDDL.
    pub sddl: String,
    pub identity: Identity,
}

/// An arena as the ledger knows it (from the objects in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownArena {
    pub node: FileNode,
    pub solo: bool,
    /// The domain of the objects in it.
    pub domain: u32,
}

/// What a lost broker's ledger says.
#[derive(Debug, Default)]
pub struct Known {
    entries: HashMap<u64, Entry>,
    /// The highest object id recorded (a new broker numbers above it).
    pub max_object: u64,
    sections: HashMap<FileNode, u64>,
    syncs: HashMap<(u64, u32), u64>,
    /// The opens of each process (by tag), file, access and share mode
    /// not yet taken back.
    opens: HashMap<(u16, FileNode, u32, u32), Vec<u64>>,
    arenas: HashMap<u64, KnownArena>,
    /// The access each user's handles to an object were given, by object
    /// and uid (recorded for users other than the object's own).
    grants: HashMap<(u64, u32), u32>,
}

impl Known {
    /// What a ledger of `entries` says (for the fuzz target, which builds
    /// one without a file).
    pub fn from_entries(entries: impl IntoIterator<Item = (u64, Entry)>) -> Known {
        let mut known = Known::default();
        for (oid, entry) in entries {
            known.max_object = known.max_object.max(oid);
            known.entries.insert(oid, entry);
        }
        known.index()
    }

    /// Indexes the entries read; of two with one identity (an object a
    /// broker took back, recorded again by it under a new id) the later
    /// one counts.
    fn index(mut self) -> Known {
        let mut oids: Vec<u64> = self.entries.keys().copied().collect();
        oids.sort_unstable();
        for oid in oids {
            let entry = &self.entries[&oid];
            match entry.identity {
                Identity::Section { node, .. } => {
                    self.sections.insert(node, oid);
                }
                Identity::Open {
                    node,
                    access,
                    share,
                    tag,
                } => {
                    let key = (tag, node, access, share);
                    self.opens.entry(key).or_default().push(oid);
                }
                Identity::Sync {
                    arena,
                    node,
                    slot,
                    solo,
                } => {
                    self.syncs.insert((arena, slot), oid);
                    self.arenas.insert(
                        arena,
                        KnownArena {
                            node,
                            solo,
                            domain: entry.domain,
                        },
                    );
                }
            }
        }
        self
    }

    /// The object whose memory file is `node`, if a section (with its id).
    pub fn section(&self, node: FileNode) -> Option<(u64, &Entry)> {
        let oid = *self.sections.get(&node)?;
        Some((oid, self.entries.get(&oid)?))
    }

    /// The object in slot `slot` of arena `arena` (with its id).
    pub fn sync(&self, arena: u64, slot: u32) -> Option<(u64, &Entry)> {
        let oid = *self.syncs.get(&(arena, slot))?;
        Some((oid, self.entries.get(&oid)?))
    }

    /// Takes one open the process that had `tag` (of user `domain`: a tag
    /// freed and reused is another process's) made of file `node` with
    /// `access` and `share`, not taken back yet: its id (each is taken back
    /// once).
    pub fn take_open(
        &mut self,
        (tag, domain): (u16, u32),
        node: FileNode,
        access: u32,
        share: u32,
    ) -> Option<u64> {
        let opens = self.opens.get_mut(&(tag, node, access, share))?;
        let entries = &self.entries;
        let at = opens
            .iter()
            .position(|oid| entries.get(oid).is_some_and(|entry| entry.domain == domain))?;
        Some(opens.swap_remove(at))
    }

    /// The access handles of user `uid` to object `oid` were given (as
    /// recorded; 0 if none was).
    pub fn granted_to(&self, oid: u64, uid: u32) -> u32 {
        self.grants.get(&(oid, uid)).copied().unwrap_or(0)
    }

    /// Arena `id`, if an object in it is recorded.
    pub fn arena(&self, id: u64) -> Option<KnownArena> {
        self.arenas.get(&id).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

const OBJECT: u8 = 1;
const SECURITY: u8 = 2;
const GONE: u8 = 3;
const GRANTED: u8 = 4;

/// The longest ledger read (a broker's objects are bounded by its quotas;
/// a longer file is not one it wrote).
const MAX_READ: u64 = 256 << 20;

/// The open ledger.
#[derive(Debug)]
pub struct Ledger {
    file: File,
    path: PathBuf,
    /// Records written since the file was last written anew, and how many
    /// of them are of objects that died since.
    records: u64,
    dead: u64,
}

impl Ledger {
    /// Opens (or creates) the ledger at `path` and returns what it records:
    /// the objects of a broker that did not exit cleanly.
    pub fn open(path: &Path) -> std::io::Result<(Ledger, Known)> {
        let file = crate::journal::open_private_file(path, true)?;
        let size = file.metadata()?.len();
        if size > MAX_READ {
            return Err(std::io::Error::other(format!(
                "{} is too long to be an object ledger",
                path.display()
            )));
        }
        let mut bytes = vec![0u8; size as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let (known, whole) = replay(&bytes);
        // A record torn by the crash is cut off: what is appended next
        // must not be read as its rest.
        if whole < size {
            file.set_len(whole)?;
        }
        let ledger = Ledger {
            file,
            path: path.to_owned(),
            records: 0,
            dead: 0,
        };
        Ok((ledger, known))
    }

    /// Records object `oid`.
    pub fn object(&mut self, oid: u64, entry: &Entry) {
        self.append(&encode_object(oid, entry));
    }

    /// Records object `oid`'s new descriptor.
    pub fn security(&mut self, oid: u64, sddl: &str) {
        let mut record = Vec::with_capacity(16 + sddl.len());
        record.push(SECURITY);
        record.extend_from_slice(&oid.to_le_bytes());
        put_str(&mut record, sddl);
        self.dead += 1;
        self.append(&record);
    }

    /// Records that handles of user `uid` to object `oid` were given
    /// `access` (all it was given so far): on Windows a handle keeps its
    /// access when the object's descriptor changes, so the next broker
    /// believes a claim of it even if the descriptor no longer grants it.
    pub fn granted(&mut self, oid: u64, uid: u32, access: u32) {
        self.append(&encode_grant(oid, uid, access));
    }

    /// Records that object `oid` died.
    pub fn gone(&mut self, oid: u64) {
        let mut record = vec![GONE];
        record.extend_from_slice(&oid.to_le_bytes());
        self.dead += 2;
        self.append(&record);
    }

    /// Whether most records are of objects that died (or descriptors
    /// changed since): time to write it anew.
    pub fn wants_rewrite(&self) -> bool {
        self.dead > 4096 && self.dead * 2 > self.records
    }

    /// Writes the ledger anew with only `live` (written beside it, then
    /// renamed over it: a broker that dies meanwhile leaves the old one).
    pub fn rewrite<'a>(
        &mut self,
        live: impl Iterator<Item = (u64, &'a Entry)>,
        grants: impl Iterator<Item = (u64, u32, u32)>,
    ) {
        let mut bytes = Vec::new();
        let mut records = 0;
        for (oid, entry) in live {
            frame(&mut bytes, &encode_object(oid, entry));
            records += 1;
        }
        for (oid, uid, access) in grants {
            frame(&mut bytes, &encode_grant(oid, uid, access));
            records += 1;
        }
        let mut fresh = self.path.clone().into_os_string();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let _ = std::fs::remove_file(&fresh);
        let written = crate::journal::open_private_file(&fresh, true).and_then(|mut file| {
            file.write_all(&bytes)?;
            std::fs::rename(&fresh, &self.path)?;
            Ok(file)
        });
        match written {
            Ok(file) => {
                self.file = file;
                self.records = records;
                self.dead = 0;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&fresh);
                crate::log::warning!("writing the object ledger anew: {e}");
            }
        }
    }

    /// Removes the file: the broker exits with no client to come back.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn append(&mut self, record: &[u8]) {
        let mut framed = Vec::with_capacity(record.len() + 4);
        frame(&mut framed, record);
        self.records += 1;
        // The file is opened for appending: one write is one record.
        if let Err(e) = self.file.write_all(&framed) {
            crate::log::warning!("writing the object ledger: {e}");
        }
    }
}

fn frame(out: &mut Vec<u8>, record: &[u8]) {
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(record);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_node(out: &mut Vec<u8>, (major, minor, inode): FileNode) {
    out.extend_from_slice(&major.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    out.extend_from_slice(&inode.to_le_bytes());
}

fn encode_grant(oid: u64, uid: u32, access: u32) -> Vec<u8> {
    let mut out = vec![GRANTED];
    out.extend_from_slice(&oid.to_le_bytes());
    out.extend_from_slice(&uid.to_le_bytes());
    out.extend_from_slice(&access.to_le_bytes());
    out
}

fn encode_object(oid: u64, entry: &Entry) -> Vec<u8> {
    let mut out = vec![OBJECT];
    out.extend_from_slice(&oid.to_le_bytes());
    out.push(entry.object_type.code());
    out.extend_from_slice(&entry.domain.to_le_bytes());
    put_str(&mut out, entry.path.as_deref().unwrap_or(""));
    put_str(&mut out, &entry.sddl);
    match entry.identity {
        Identity::Section { node, protection } => {
            out.push(0);
            put_node(&mut out, node);
            out.extend_from_slice(&protection.to_le_bytes());
        }
        Identity::Open {
            node,
            access,
            share,
            tag,
        } => {
            out.push(2);
            put_node(&mut out, node);
            out.extend_from_slice(&access.to_le_bytes());
            out.extend_from_slice(&share.to_le_bytes());
            out.extend_from_slice(&tag.to_le_bytes());
        }
        Identity::Sync {
            arena,
            node,
            slot,
            solo,
        } => {
            out.push(1);
            out.extend_from_slice(&arena.to_le_bytes());
            put_node(&mut out, node);
            out.extend_from_slice(&slot.to_le_bytes());
            out.push(u8::from(solo));
        }
    }
    out
}

/// A record being read.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn node(&mut self) -> Option<FileNode> {
        Some((self.u32()?, self.u32()?, self.u64()?))
    }
}

fn decode_object(r: &mut Reader<'_>) -> Option<(u64, Entry)> {
    let oid = r.u64()?;
    let object_type = ObjectType::from_code(r.u8()?)?;
    let domain = r.u32()?;
    let path = Some(r.string()?).filter(|path| !path.is_empty());
    let sddl = r.string()?;
    let identity = match r.u8()? {
        0 => Identity::Section {
            node: r.node()?,
            protection: r.u32()?,
        },
        1 => Identity::Sync {
            arena: r.u64()?,
            node: r.node()?,
            slot: r.u32()?,
            solo: r.u8()? != 0,
        },
        2 => Identity::Open {
            node: r.node()?,
            access: r.u32()?,
            share: r.u32()?,
            tag: r.u16()?,
        },
        _ => return None,
    };
    Some((
        oid,
        Entry {
            object_type,
            domain,
            path,
            sddl,
            identity,
        },
    ))
}

/// Reads the records in `bytes`, up to the first that is not whole; also
/// returns how many bytes the whole ones take.
fn replay(mut bytes: &[u8]) -> (Known, u64) {
    let mut known = Known::default();
    let mut whole = 0u64;
    while bytes.len() >= 4 {
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        let Some(record) = bytes.get(4..4 + len) else {
            break;
        };
        bytes = &bytes[4 + len..];
        whole += 4 + len as u64;
        let mut r = Reader(record);
        match r.u8() {
            Some(OBJECT) => {
                if let Some((oid, entry)) = decode_object(&mut r) {
                    known.max_object = known.max_object.max(oid);
                    known.entries.insert(oid, entry);
                }
            }
            Some(SECURITY) => {
                if let (Some(oid), Some(sddl)) = (r.u64(), r.string())
                    && let Some(entry) = known.entries.get_mut(&oid)
                {
                    entry.sddl = sddl;
                }
            }
            Some(GONE) => {
                if let Some(oid) = r.u64() {
                    known.entries.remove(&oid);
                }
            }
            Some(GRANTED) => {
                if let (Some(oid), Some(uid), Some(access)) = (r.u64(), r.u32(), r.u32()) {
                    *known.grants.entry((oid, uid)).or_default() |= access;
                }
            }
            _ => {}
        }
    }
    (known.index(), whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own for one test, removed after it.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(what: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("objmgr-ledger-{what}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("scratch directory");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn section(path: Option<&str>, inode: u64) -> Entry {
        Entry {
            object_type: ObjectType::Section,
            domain: 1000,
            path: path.map(str::to_owned),
            sddl: "O:S-1-22-1-1000D:(A;;GA;;;WD)".into(),
            identity: Identity::Section {
                node: (0, 1, inode),
                protection: 4,
            },
        }
    }

    fn event(arena: u64, slot: u32, solo: bool) -> Entry {
        Entry {
            object_type: ObjectType::Event,
            domain: 1001,
            path: Some("\\BaseNamedObjects\\ev".into()),
            sddl: "D:(A;;GA;;;WD)".into(),
            identity: Identity::Sync {
                arena,
                node: (0, 1, arena + 7),
                slot,
                solo,
            },
        }
    }

    #[test]
    fn the_last_record_of_an_object_wins_and_the_dead_are_forgotten() {
        let dir = Scratch::new("last");
        let path = dir.0.join("broker.sock.ledger");
        let (mut ledger, known) = Ledger::open(&path).expect("open");
        assert!(known.is_empty());
        ledger.object(3, &section(Some("\\BaseNamedObjects\\a"), 11));
        ledger.object(4, &section(None, 12));
        ledger.object(5, &event(77, 1, true));
        ledger.security(3, "D:(A;;GR;;;WD)");
        ledger.granted(3, 2000, 4);
        ledger.granted(3, 2000, 2);
        ledger.gone(4);
        drop(ledger);
        let (mut ledger, known) = Ledger::open(&path).expect("reopen");
        assert_eq!(known.len(), 2);
        assert_eq!(known.max_object, 5);
        let (_, a) = known.section((0, 1, 11)).expect("a");
        assert_eq!(known.granted_to(3, 2000), 6);
        assert_eq!(known.granted_to(3, 2001), 0);
        assert_eq!(a.sddl, "D:(A;;GR;;;WD)");
        assert_eq!(a.path.as_deref(), Some("\\BaseNamedObjects\\a"));
        assert!(known.section((0, 1, 12)).is_none(), "dead");
        assert_eq!(
            known.sync(77, 1).expect("ev").1.object_type,
            ObjectType::Event
        );
        assert!(known.sync(77, 2).is_none());
        let arena = known.arena(77).expect("arena");
        assert!(arena.solo && arena.domain == 1001 && arena.node == (0, 1, 84));
        // Written anew: only what is live, and appending goes on after.
        let live = section(None, 13);
        ledger.rewrite([(9, &live)].into_iter(), [(9, 2000, 4)].into_iter());
        ledger.object(10, &event(78, 2, false));
        drop(ledger);
        let (_, known) = Ledger::open(&path).expect("reopen");
        assert_eq!(known.len(), 2);
        assert!(known.section((0, 1, 11)).is_none());
        assert!(known.section((0, 1, 13)).is_some());
        assert!(known.sync(78, 2).is_some());
        assert_eq!(known.max_object, 10);
        assert_eq!(
            (known.granted_to(9, 2000), known.granted_to(3, 2000)),
            (4, 0)
        );
    }

    #[test]
    fn a_torn_or_foreign_file_yields_what_is_whole_and_nothing_else() {
        let dir = Scratch::new("torn");
        let path = dir.0.join("l");
        let (mut ledger, _) = Ledger::open(&path).expect("open");
        ledger.object(1, &section(None, 1));
        drop(ledger);
        // A torn last record, then garbage.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[200, 0, 0, 0, OBJECT, 1, 2]);
        std::fs::write(&path, &bytes).expect("write");
        let (mut ledger, known) = Ledger::open(&path).expect("reopen");
        assert_eq!(known.len(), 1);
        // The torn record was cut off: the next one is read.
        ledger.object(3, &section(None, 3));
        drop(ledger);
        let (_, known) = Ledger::open(&path).expect("reopen");
        assert_eq!(known.len(), 2);
        // Records that do not decode are skipped.
        let mut bytes = Vec::new();
        frame(&mut bytes, &[OBJECT, 9, 9]);
        frame(&mut bytes, &[77]);
        frame(&mut bytes, &encode_object(2, &section(None, 2)));
        std::fs::write(&path, &bytes).expect("write");
        let (_, known) = Ledger::open(&path).expect("reopen");
        assert_eq!(known.len(), 1);
        assert!(known.section((0, 1, 2)).is_some());
    }
}
