//! Turning fuzz input bytes into requests: every choice reads the next
//! bytes, and an exhausted input reads zeros, so any byte string is a valid
//! case and a coverage-guided fuzzer (cargo-fuzz, AFL) can drive the same
//! targets. Values come mostly from small pools of the interesting ones
//! (handle values the broker hands out, names in each namespace, access
//! masks at the edges), so that a case reaches deep into the broker rather
//! than stopping at the first lookup.

use objmgr_proto::access::ObjectType;
use objmgr_proto::section::FdReach;
use objmgr_proto::sync::SyncInit;
use objmgr_proto::wire::{
    FileOp, Handle, HeldHandle, JobOp, KnownFd, ReclaimStep, RemoteOp, Request,
};

/// A reader of choices from fuzz input.
#[derive(Debug)]
pub struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data, pos: 0 }
    }

    /// Whether every byte has been used.
    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A number below `n` (which must be positive).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// One of `pool`, or (one time in eight) anything.
    fn u32_from(&mut self, pool: &[u32]) -> u32 {
        match self.below(8) {
            0 => self.u32(),
            _ => pool[self.below(pool.len())],
        }
    }

    /// A handle value: mostly ones the broker hands out first.
    pub fn handle(&mut self) -> Handle {
        Handle(self.u32_from(&[
            0,
            4,
            8,
            12,
            16,
            20,
            24,
            28,
            32,
            36,
            40,
            44,
            48,
            5,
            u32::MAX,
            u32::MAX - 1,
        ]))
    }

    pub fn access(&mut self) -> u32 {
        self.u32_from(&[
            0,
            u32::MAX,
            0x1000_0000, // GENERIC_ALL
            0x8000_0000, // GENERIC_READ
            0x0010_0000, // SYNCHRONIZE
            0x0002_0000, // READ_CONTROL
            0x0004_0000, // WRITE_DAC
            0x0200_0000, // MAXIMUM_ALLOWED
            0x001F_0003, // EVENT_ALL_ACCESS
            0x000F_001F, // SECTION_ALL_ACCESS
            0x0000_0004, // FILE_MAP_READ
            0x0000_0002, // FILE_MAP_WRITE
        ])
    }

    pub fn text(&mut self) -> String {
        const POOL: [&str; 16] = [
            "",
            "Local\\a",
            "Local\\b",
            "Global\\a",
            "Session\\1\\a",
            "a",
            "Local\\",
            "\\",
            "Local\\a\\b",
            "Local\\ns\\a",
            "ns",
            "Local\\\u{e9}t\u{e9}",
            "Global\\..\\Local\\a",
            "Local\\a\0b",
            "D:(A;;GA;;;WD)",
            "O:BAG:BAD:P(A;;GA;;;SY)(A;;GR;;;WD)S:(ML;;NW;;;LW)",
        ];
        match self.below(16) {
            0 => "x".repeat(self.below(3) * 200 + 1),
            1 => {
                let n = self.below(24);
                (0..n).map(|_| char::from(self.byte() % 95 + 32)).collect()
            }
            _ => POOL[self.below(POOL.len())].to_owned(),
        }
    }

    pub fn texts(&mut self) -> Vec<String> {
        (0..self.below(4)).map(|_| self.text()).collect()
    }

    fn object_type(&mut self) -> ObjectType {
        ObjectType::from_code(self.byte() % 9 + 1).unwrap_or(ObjectType::Event)
    }

    fn sync_init(&mut self) -> SyncInit {
        match self.below(4) {
            0 => SyncInit::Event {
                manual_reset: self.bool(),
                signaled: self.bool(),
            },
            1 => SyncInit::Mutex { owned: self.bool() },
            2 => SyncInit::Semaphore {
                initial: self.u32_from(&[0, 1, 2, u32::MAX]),
                maximum: self.u32_from(&[0, 1, 2, i32::MAX as u32, u32::MAX]),
            },
            _ => SyncInit::Timer {
                manual_reset: self.bool(),
            },
        }
    }

    /// A step of taking handles back to a recovering broker: tags the
    /// fuzz broker's journal names (1 to 3) and others, the fuzz's own
    /// arena id (1) and others, slots, sizes and protections that fit and
    /// that do not.
    pub fn reclaim_step(&mut self) -> ReclaimStep {
        match self.below(7) {
            0 => ReclaimStep::Begin {
                tag: self.u32_from(&[1, 2, 3, 0, 4, u32::from(u16::MAX)]) as u16,
            },
            1 => ReclaimStep::Arena {
                id: u64::from(self.u32_from(&[1, 2, 0, u32::MAX])),
                slots: self.u32_from(&[objmgr_sync::arena::ARENA_SLOTS, 64, 0, u32::MAX]),
            },
            2 => ReclaimStep::Section {
                held: self.held_handle(),
                protection: self.u32_from(&[0x04, 0x02, 0x08, 0, 0x0800_0004]),
                attributes: self.u32_from(&[0x0800_0000, 0x0400_0000, 0, u32::MAX]),
                size: u64::from(self.u32_from(&[4096, 0, 1, 8192, u32::MAX])),
            },
            3 => ReclaimStep::Sync {
                held: self.held_handle(),
                arena: u64::from(self.u32_from(&[1, 2, 0])),
                slot: self.u32_from(&[1, 2, 3, 0, u32::MAX]),
            },
            4 => ReclaimStep::File {
                held: self.held_handle(),
                open: self.u32_from(&[0, 1, u32::MAX]),
                open_access: self.access(),
                share: self.u32_from(&[7, 0, 1, 8, u32::MAX]),
            },
            5 => ReclaimStep::FileSection {
                held: self.held_handle(),
                section: self.u32_from(&[0, 1, u32::MAX]),
                protection: self.u32_from(&[0x04, 0x02, 0x08, 0, 0x0800_0004]),
                attributes: self.u32_from(&[0x0800_0000, 0, 0x8000_0000, u32::MAX]),
                size: u64::from(self.u32_from(&[4096, 0, 1, 8192, u32::MAX])),
            },
            _ => ReclaimStep::End,
        }
    }

    fn held_handle(&mut self) -> HeldHandle {
        HeldHandle {
            handle: self.handle(),
            access: self.access(),
            flags: self.u32_from(&[0, 1, 2, 3, u32::MAX]),
            name: self.text(),
        }
    }

    /// A request the broker may be sent by any client, minus those that act
    /// on other processes of the machine (see [`crate::broker_case`]).
    pub fn request(&mut self) -> Request {
        match self.below(28) {
            0 => Request::Hello {
                version: self.u32_from(&[objmgr_proto::wire::PROTOCOL_VERSION, 0, 9]),
            },
            1 => Request::CreateSection {
                name: self.text(),
                protection: self.u32_from(&[0x02, 0x04, 0x08, 0x40, 0x0800_0004, 0x0400_0004]),
                size: u64::from(self.u32_from(&[0, 1, 4096, 65536, u32::MAX])),
                inherit: self.bool(),
                from_file: self.below(4) == 0,
                security: self.text(),
            },
            2 => Request::Open {
                object_type: self.object_type(),
                name: self.text(),
                access: self.access(),
                inherit: self.bool(),
                known_fd: self.bool().then(|| KnownFd {
                    // Never 0 (which means none on the wire).
                    handle: Handle(self.handle().0.max(4)),
                    reach: [FdReach::Query, FdReach::Read, FdReach::Write][self.below(3)],
                    object: u64::from(self.u32_from(&[0, 1, 2, 3, 7, u32::MAX])),
                }),
            },
            3 => Request::Close {
                handle: self.handle(),
            },
            4 => Request::CloseNoReply {
                handle: self.handle(),
            },
            5 => Request::QueryHandle {
                handle: self.handle(),
            },
            6 => Request::ListObjects {
                after: self.text(),
                limit: self.u32_from(&[0, 1, 10, u32::MAX]),
            },
            7 => Request::StatObject { name: self.text() },
            8 => Request::Status,
            9 => Request::CreateSync {
                name: self.text(),
                init: self.sync_init(),
                access: self.access(),
                inherit: self.bool(),
                owner_token: self.u32(),
                owner_tid: self.u32(),
                security: self.text(),
            },
            10 => Request::Duplicate {
                source_process: self.handle(),
                source: self.handle(),
                target_process: self.handle(),
                access: self.access(),
                inherit: self.bool(),
                options: self.u32_from(&[0, 1, 2, 3, 4]),
            },
            11 => Request::HandleFlags {
                handle: self.handle(),
                mask: self.u32_from(&[0, 1, 2, 3]),
                flags: self.u32_from(&[0, 1, 2, 3]),
            },
            12 => Request::CreateThread {
                inherit: self.bool(),
            },
            13 => Request::ListProcesses { after: self.u32() },
            14 => Request::ListHandles {
                pid: self.u32_from(&[0, std::process::id()]),
                after: self.u32(),
            },
            15 => Request::Namespace {
                op: self.byte() % 6,
                boundary: self.text(),
                sids: self.texts(),
                alias: self.text(),
                sddl: self.text(),
                id: self.u32_from(&[0, 1, 2, 3]),
                destroy: self.bool(),
            },
            16 => Request::Security {
                handle: self.handle(),
                set: self.bool(),
                which: self.u32_from(&[0, 1, 2, 4, 8, 0xF]),
                sddl: self.text(),
            },
            17 => Request::SyncRemote {
                op: RemoteOp::from_code(self.byte() % 12 + 1).unwrap_or(RemoteOp::SetEvent),
                token: self.u32(),
                tid: self.u32(),
                register: self.bool(),
                handles: (0..self.below(5)).map(|_| self.handle()).collect(),
                values: (0..self.below(3))
                    .map(|_| self.u32_from(&[0, 1, u32::MAX]))
                    .collect(),
                due: self.u64(),
                period: u64::from(self.u32()),
            },
            18 => Request::CreateJob {
                name: self.text(),
                access: self.access(),
                inherit: self.bool(),
                security: self.text(),
            },
            19 => Request::JobControl {
                // Only the queries: the others act on member processes.
                op: [
                    JobOp::QueryLimits,
                    JobOp::QueryAccounting,
                    JobOp::QueryProcessIds,
                    JobOp::Contains,
                ][self.below(4)],
                job: self.handle(),
                process: self.handle(),
                values: (0..self.below(4)).map(|_| self.u64()).collect(),
            },
            20 => Request::OpenFile {
                access: self.access(),
                share: self.u32_from(&[0, 1, 2, 4, 7]),
                inherit: self.bool(),
                delete_on_close: self.bool(),
                name: self.text(),
            },
            21 => Request::ListFiles,
            22 => Request::FileControl {
                op: FileOp::from_code(self.byte() % 3 + 1).unwrap_or(FileOp::RemovalDone),
                handle: self.handle(),
                value: u64::from(self.u32_from(&[0, 1, 2, 4096])),
                name: self.text(),
            },
            23 => Request::Shutdown,
            24 => Request::Reclaim {
                step: self.reclaim_step(),
            },
            25 => Request::CloseRing,
            26 => Request::Doorbell,
            _ => Request::Close {
                handle: self.handle(),
            },
        }
    }

    /// Changes `bytes` as a mutating fuzzer would: flips, interesting
    /// values, cuts, copies and insertions.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..=self.below(4) {
            let len = bytes.len();
            let at = if len == 0 {
                0
            } else {
                self.below(256) * len / 256
            };
            match self.below(6) {
                0 if len > 0 => bytes[at] ^= 1 << (self.byte() % 8),
                1 if len > 0 => bytes[at] = [0, 1, 0x7F, 0x80, 0xFF][self.below(5)],
                2 if at + 4 <= len => {
                    let v = [0u32, 1, 0xFFFF, 0x7FFF_FFFF, u32::MAX][self.below(5)];
                    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                3 => bytes.truncate(at),
                4 => {
                    let extra = self.below(16);
                    let fill = self.byte();
                    bytes.splice(at..at, std::iter::repeat_n(fill, extra));
                }
                _ if len > 0 => {
                    let from = self.below(256) * len / 256;
                    let n = self.below(16).min(len - from);
                    let copy = bytes[from..from + n].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => {}
            }
        }
    }
}
