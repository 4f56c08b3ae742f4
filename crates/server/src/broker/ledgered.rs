//! The system broker's ledger in the broker (see [`crate::ledger`]): what it
//! records of each object a client may take back after a crash, and how a
//! returning process's claims are checked against what the lost broker
//! recorded: the object must be one it made (its memory file, or its slot
//! in an arena whose file it made), a name must be that object's, and
//! access to another user's object must be what its descriptor grants the
//! process now.

use super::*;
use crate::ledger::{Entry, Identity, KnownArena, Ledger};
use objmgr_proto::wire::HeldHandle;

impl Broker {
    /// What the ledger records of object `oid`: paging-file sections, and
    /// objects whose state is in an arena slot (not processes or jobs,
    /// which do not come back).
    fn ledger_entry(&self, oid: ObjectId) -> Option<Entry> {
        let object = self.objects.get(&oid)?;
        let identity = match &object.body {
            Body::Section(section) if !section.file_backed => Identity::Section {
                node: section.memory_node().ok()?,
                protection: section.protection.bits() | section.attributes.bits(),
            },
            Body::File(open) => Identity::Open {
                node: open.node,
                access: open.access,
                share: open.share,
                tag: open.opener,
            },
            &Body::Sync { slot, .. } | &Body::Thread { slot, .. } => {
                let arena = self.arena_of(oid)?;
                Identity::Sync {
                    arena: arena.id,
                    node: arena.node().ok()?,
                    slot,
                    solo: arena.is_solo(),
                }
            }
            _ => return None,
        };
        Some(Entry {
            object_type: object.object_type,
            domain: object.domain,
            path: object.path.clone(),
            sddl: object.security.to_sddl(),
            identity,
        })
    }

    /// Records new object `oid` in the ledger (system broker).
    pub(super) fn ledger_note(&mut self, oid: ObjectId) {
        if self.ledger.is_none() {
            return;
        }
        if let Some(entry) = self.ledger_entry(oid) {
            self.ledger.as_mut().expect("checked").object(oid, &entry);
        }
    }

    /// The lost broker's record `old` is replaced by the one of the object
    /// taken back (a broker that dies before it writes the ledger anew
    /// leaves one record of the object).
    pub(super) fn ledger_replaced(&mut self, old: u64) {
        if let Some(ledger) = &mut self.ledger {
            ledger.gone(old);
        }
    }

    /// A handle of client `id` to object `oid` was given `access`: the
    /// ledger records what another user's handles to an object were given
    /// (a handle keeps its access when the descriptor changes), once per
    /// new right.
    pub(super) fn ledger_grant(&mut self, id: ClientId, oid: ObjectId, access: u32) {
        if self.ledger.is_none() {
            return;
        }
        let uid = self.clients[&id].uid;
        let Some(object) = self.objects.get(&oid) else {
            return;
        };
        if uid == 0 || uid == object.domain || !recorded(&object.body) {
            return;
        }
        let users = self.ledger_grants.entry(oid).or_default();
        let had = match users.iter_mut().find(|(user, _)| *user == uid) {
            Some((_, had)) => had,
            None => {
                users.push((uid, 0));
                &mut users.last_mut().expect("pushed").1
            }
        };
        if access & !*had == 0 {
            return;
        }
        *had |= access;
        let all = *had;
        self.ledger
            .as_mut()
            .expect("checked")
            .granted(oid, uid, all);
    }

    /// Records object `oid`'s new descriptor (a record that makes the one
    /// before it dead: a user who changes a descriptor over and over makes
    /// the ledger written anew, not grow).
    pub(super) fn ledger_security(&mut self, oid: ObjectId) {
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        if let Some(object) = self.objects.get(&oid)
            && recorded(&object.body)
        {
            ledger.security(oid, &object.security.to_sddl());
        }
        self.rewrite_ledger_if_mostly_dead();
    }

    /// Writes the ledger anew once most of it is dead (not while a recovery
    /// still reads the lost broker's records).
    fn rewrite_ledger_if_mostly_dead(&mut self) {
        if self.ledger.as_ref().is_some_and(Ledger::wants_rewrite) && self.known.is_none() {
            self.rewrite_ledger();
        }
    }

    /// Records that object `oid` (with `body`) died; writes the ledger anew
    /// once most of it is dead.
    pub(super) fn ledger_gone(&mut self, oid: ObjectId, body: &Body) {
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        if !recorded(body) {
            return;
        }
        ledger.gone(oid);
        self.rewrite_ledger_if_mostly_dead();
    }

    /// Writes the ledger anew from the live objects (the lost broker's
    /// records are no longer needed once its recovery is over).
    pub(super) fn rewrite_ledger(&mut self) {
        let Some(mut ledger) = self.ledger.take() else {
            return;
        };
        let mut oids: Vec<ObjectId> = self.objects.keys().copied().collect();
        oids.sort_unstable();
        let entries: Vec<(ObjectId, Entry)> = oids
            .into_iter()
            .filter_map(|oid| Some((oid, self.ledger_entry(oid)?)))
            .collect();
        let grants = self
            .ledger_grants
            .iter()
            .flat_map(|(&oid, users)| users.iter().map(move |&(uid, access)| (oid, uid, access)));
        ledger.rewrite(entries.iter().map(|(oid, entry)| (*oid, entry)), grants);
        self.ledger = Some(ledger);
    }

    /// On the system broker, what the lost broker's ledger says of the
    /// object a returning handle names (`find`), with its id there, and the
    /// handle's claims checked against it: the object must be recorded (not
    /// in a private namespace, which died with the broker), the name the
    /// handle was opened by must be the object's, and the access claimed
    /// must be what the object's descriptor grants the process now, unless
    /// it is root's, or the object is its user's own (made by that user,
    /// which still owns it), whose processes share its state anyway.
    /// `None` on a per-user broker, which believes its user's processes.
    pub(super) fn checked_claim(
        &self,
        id: ClientId,
        held: &HeldHandle,
        find: impl FnOnce(&crate::ledger::Known) -> Option<(u64, &Entry)>,
    ) -> Result<Option<(u64, Entry)>, Failure> {
        if !self.system {
            return Ok(None);
        }
        let denied = |why: &str| {
            Failure::new(
                ERROR_ACCESS_DENIED,
                format!("handle {:#x} cannot be taken back: {why}", held.handle.0),
            )
        };
        let (old, entry) = self
            .known
            .as_ref()
            .and_then(find)
            .ok_or_else(|| denied("the lost broker made no such object"))?;
        if entry
            .path
            .as_deref()
            .is_some_and(|path| path.starts_with("\\Namespaces\\"))
        {
            return Err(denied("private namespaces do not survive their broker"));
        }
        if !held.name.is_empty() {
            let resolved = self.resolve_name(id, &held.name)?;
            if resolved.path.is_none() || resolved.path != entry.path {
                return Err(denied("the name is not that object's"));
            }
        }
        let client = &self.clients[&id];
        let claimed = entry.object_type.map_generic(held.access).0;
        let sd = SecurityDescriptor::from_sddl(&entry.sddl)
            .map_err(|_| denied("its descriptor is unreadable"))?;
        let own = client.uid == entry.domain
            && sd.owner.as_ref() == Some(&security::Sid::unix_user(client.uid));
        if client.uid != 0 && !own && claimed != 0 {
            let mapping = entry.object_type.generic_mapping();
            let granted = security::access_check(&sd, &client.token, claimed, &mapping);
            // (Or its handles were given it before the descriptor changed.)
            let given = self
                .known
                .as_ref()
                .map_or(0, |known| known.granted_to(old, client.uid));
            if given & claimed != claimed
                && granted.is_none_or(|granted| granted & claimed != claimed)
            {
                return Err(denied("its descriptor does not grant the access claimed"));
            }
        }
        Ok(Some((old, entry.clone())))
    }

    /// On the system broker, that `fd` (a memory file a returning process
    /// brings) is the broker's own: its memory files belong to its user.
    pub(super) fn check_made_here(&self, fd: &OwnedFd) -> Result<(), Failure> {
        if !self.system {
            return Ok(());
        }
        // (A memory file: its stat never waits on a file system.)
        match rustix::fs::fstat(fd) {
            Ok(stat) if stat.st_uid == self.own_uid => Ok(()),
            _ => Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the memory file brought is not one this broker's user made",
            )),
        }
    }

    /// On the system broker, the lost broker's arena `arena` as its ledger
    /// knows it, checked against `fd` (the same memory file) and client
    /// `id` (a domain's arena only for that user's processes, and root's).
    /// `None` on a per-user broker.
    pub(super) fn checked_arena(
        &self,
        id: ClientId,
        arena: u64,
        fd: &OwnedFd,
    ) -> Result<Option<KnownArena>, Failure> {
        if !self.system {
            return Ok(None);
        }
        let refused = |why: &str| {
            Failure::new(
                ERROR_ACCESS_DENIED,
                format!("arena {arena:#x} cannot be taken back: {why}"),
            )
        };
        let known = self
            .known
            .as_ref()
            .and_then(|known| known.arena(arena))
            .ok_or_else(|| refused("the lost broker made no such arena"))?;
        self.check_made_here(fd)?;
        if crate::section::file_node(fd).ok() != Some(known.node) {
            return Err(refused("the descriptor is another file"));
        }
        let uid = self.clients[&id].uid;
        if !known.solo && uid != known.domain && uid != 0 {
            return Err(refused("it is another user's own"));
        }
        Ok(Some(known))
    }
}

/// Whether the ledger records objects with `body`.
fn recorded(body: &Body) -> bool {
    match body {
        Body::Section(section) => !section.file_backed,
        Body::Sync { .. } | Body::Thread { .. } | Body::File(_) => true,
        _ => false,
    }
}
