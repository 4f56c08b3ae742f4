//! The system broker's ledger in the broker (see [`crate::ledger`]): what it
//! records of each object a client may take back after a crash, and how a
//! returning process's claims are checked against what the lost broker
//! recorded: the object must be one it made (its memory file, or its slot
//! in an arena whose file it made), a name must be that object's, and
//! access to another user's object must be what its descriptor grants the
//! process now.

use super::*;
use crate::ledger::{Entry, Identity, KnownArena};
use objmgr_proto::wire::HeldHandle;

impl Broker {
    /// What the ledger records of object `oid`: paging-file sections, and
    /// objects whose state is in an arena slot (not processes or jobs,
    /// which do not come back).
    fn ledger_entry(&self, oid: ObjectId) -> Option<Entry> {
        let object = self.objects.get(&oid)?;
        let identity = match &object.body {
            Body::Section(section) if !section.file_backed => {
                Identity::Section(section.memory_node().ok()?)
            }
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

    /// Records object `oid`'s new descriptor.
    pub(super) fn ledger_security(&mut self, oid: ObjectId) {
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        if let Some(object) = self.objects.get(&oid)
            && recorded(&object.body)
        {
            ledger.security(oid, &object.security.to_sddl());
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
        if ledger.wants_rewrite() && self.known.is_none() {
            self.rewrite_ledger();
        }
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
        ledger.rewrite(entries.iter().map(|(oid, entry)| (*oid, entry)));
        self.ledger = Some(ledger);
    }

    /// On the system broker, what the lost broker's ledger says of the
    /// object a returning handle names (`find`), with the handle's claims
    /// checked against it: the object must be recorded, the name the handle
    /// was opened by must be the object's, and a process of another user
    /// (not root) must be granted the access claimed by the object's
    /// descriptor. `None` on a per-user broker, which believes its user's
    /// processes.
    pub(super) fn checked_claim(
        &self,
        id: ClientId,
        held: &HeldHandle,
        find: impl FnOnce(&crate::ledger::Known) -> Option<&Entry>,
    ) -> Result<Option<Entry>, Failure> {
        if !self.system {
            return Ok(None);
        }
        let denied = |why: &str| {
            Failure::new(
                ERROR_ACCESS_DENIED,
                format!("handle {:#x} cannot be taken back: {why}", held.handle.0),
            )
        };
        let entry = self
            .known
            .as_ref()
            .and_then(find)
            .ok_or_else(|| denied("the lost broker made no such object"))?;
        if !held.name.is_empty() {
            let resolved = self.resolve_name(id, &held.name)?;
            if resolved.path.is_none() || resolved.path != entry.path {
                return Err(denied("the name is not that object's"));
            }
        }
        let client = &self.clients[&id];
        let claimed = entry.object_type.map_generic(held.access).0;
        if client.uid != entry.domain && client.uid != 0 && claimed != 0 {
            let sd = SecurityDescriptor::from_sddl(&entry.sddl)
                .map_err(|_| denied("its descriptor is unreadable"))?;
            let mapping = entry.object_type.generic_mapping();
            let granted = security::access_check(&sd, &client.token, claimed, &mapping);
            if granted.is_none_or(|granted| granted & claimed != claimed) {
                return Err(denied("its descriptor does not grant the access claimed"));
            }
        }
        Ok(Some(entry.clone()))
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
        Body::Sync { .. } | Body::Thread { .. } => true,
        _ => false,
    }
}
