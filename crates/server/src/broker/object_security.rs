//! Security descriptors in the broker: the descriptor a new object gets,
//! the access check on every open, and reading and changing an object's
//! descriptor through a handle (`Get`/`SetKernelObjectSecurity`).

use super::*;
use objmgr_proto::access::{ACCESS_SYSTEM_SECURITY, READ_CONTROL, WRITE_DAC, WRITE_OWNER};
use objmgr_proto::security::{
    DACL_SECURITY_INFORMATION, Dacl, GROUP_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION,
    SACL_SECURITY_INFORMATION,
};

/// The owner and the whole descriptor (SDDL), for `objmgr stat` and `ls`.
pub(super) fn security_properties(sd: &SecurityDescriptor) -> [(String, String); 2] {
    let owner = sd.owner.as_ref().map(security::sddl::format_sid);
    [
        // Not "owner": a mutex's state has one (the thread that holds it).
        ("object_owner".to_owned(), owner.unwrap_or_default()),
        ("security".to_owned(), sd.to_sddl()),
    ]
}

impl Broker {
    /// The complete descriptor of an object client `id` creates: the SDDL it
    /// asked for (empty: none), the rest from its token. An owner or group
    /// the token does not hold is refused, as Windows refuses it without a
    /// privilege (root may name anyone).
    pub(super) fn security_for_new(
        &mut self,
        id: ClientId,
        sddl: &str,
    ) -> Result<Rc<SecurityDescriptor>, Failure> {
        if sddl.is_empty() {
            let token = self.clients[&id].token.clone();
            return Ok(self.default_security_of(&token));
        }
        let token = &self.clients[&id].token;
        let requested = SecurityDescriptor::from_sddl(sddl)
            .map_err(|e| Failure::new(ERROR_INVALID_SECURITY_DESCR, format!("{e}")))?;
        if let Some(owner) = &requested.owner
            && !token.may_own_as(owner)
        {
            return Err(Failure::new(
                ERROR_INVALID_OWNER,
                format!("{owner} cannot be made the owner by {}", token.user),
            ));
        }
        if let Some(group) = &requested.group
            && !token.may_group_as(group)
        {
            return Err(Failure::new(
                ERROR_INVALID_PRIMARY_GROUP,
                format!("{group} cannot be made the primary group by {}", token.user),
            ));
        }
        Ok(Rc::new(SecurityDescriptor::for_new_object(
            Some(&requested),
            token,
        )))
    }

    /// The default descriptor of what `token` creates, shared by all such
    /// objects (a descriptor is a few hundred bytes; programs make tens of
    /// thousands of objects).
    fn default_security_of(&mut self, token: &security::Token) -> Rc<SecurityDescriptor> {
        self.default_security
            .entry((token.user.clone(), token.primary_group.clone()))
            .or_insert_with(|| Rc::new(SecurityDescriptor::for_new_object(None, token)))
            .clone()
    }

    /// The access check for client `id` asking for `desired` on `oid`: the
    /// rights granted, or `ERROR_ACCESS_DENIED`.
    pub(super) fn check_access(
        &self,
        id: ClientId,
        oid: ObjectId,
        desired: u32,
    ) -> Result<AccessMask, Failure> {
        self.check_access_for(&self.clients[&id].token, oid, desired)
    }

    /// The access check for `token`.
    pub(super) fn check_access_for(
        &self,
        token: &security::Token,
        oid: ObjectId,
        desired: u32,
    ) -> Result<AccessMask, Failure> {
        let object = &self.objects[&oid];
        let mapping = object.object_type.generic_mapping();
        match security::access_check(&object.security, token, desired, &mapping) {
            Some(granted) => Ok(object.object_type.map_generic(granted)),
            None => Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "the security descriptor of {} does not grant {} access {desired:#x}",
                    object.path.as_deref().unwrap_or("the object"),
                    token.user
                ),
            )),
        }
    }

    /// The `Local\` session of client `id`: the one session of a per-user
    /// broker; on the system broker one per user.
    pub(super) fn session_of(&self, id: ClientId) -> u32 {
        if self.system {
            self.clients[&id].uid.saturating_add(1)
        } else {
            SESSION
        }
    }

    /// Whether client `id` may see the object at `path` in listings: on the
    /// system broker, `Global\` names and its own session's (root: all).
    pub(super) fn visible_to(&self, id: ClientId, path: &str) -> bool {
        if !self.system || self.clients[&id].uid == 0 {
            return true;
        }
        let own = format!("\\Sessions\\{}\\", self.session_of(id));
        path.starts_with("\\BaseNamedObjects\\")
            || path.starts_with(&own)
            || self.clients[&id]
                .aliases
                .iter()
                .any(|(_, ns, _)| path.starts_with(&format!("\\Namespaces\\{ns}\\")))
    }

    /// Creating a name in `Global\` on the system broker needs the analogue
    /// of `SeCreateGlobalPrivilege`: root, or membership of the
    /// administrators group (`objmgrd --admin-group`).
    pub(super) fn check_create_global(
        &self,
        id: ClientId,
        global: bool,
        name: &str,
    ) -> Result<(), Failure> {
        let token = &self.clients[&id].token;
        if self.system
            && global
            && !token.is_system()
            && !token.has(&security::Sid::administrators())
        {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "creating {name} in Global\\ needs root or the administrators group \
                     (SeCreateGlobalPrivilege); Local\\ names are this user's own"
                ),
            ));
        }
        Ok(())
    }

    /// The token of process `pid`, from `/proc/<pid>/status` (real uid, real
    /// gid, supplementary groups): for a process that has not connected
    /// yet, which a handle is duplicated into. `None` if it cannot be read.
    pub(super) fn token_of_pid(&self, pid: u32) -> Option<security::Token> {
        let ids = process::proc_ids(pid)?;
        Some(security::Token::for_unix(
            ids.uid,
            ids.gid,
            &ids.groups,
            self.admin_gid,
        ))
    }

    /// The broker's own user's token: for processes it started that have
    /// not connected yet (they run as it does).
    pub(super) fn own_token(&self) -> security::Token {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        security::Token::for_unix(uid, gid, &[], None)
    }

    /// The descriptor of an object the broker makes for itself (process and
    /// thread objects): its own user's default.
    pub(super) fn own_security(&mut self) -> Rc<SecurityDescriptor> {
        let token = self.own_token();
        self.default_security_of(&token)
    }

    /// `Get`/`SetKernelObjectSecurity`: the parts `which` of the
    /// descriptor of the object behind `handle`, read (with `READ_CONTROL`;
    /// the SACL with `ACCESS_SYSTEM_SECURITY`) or replaced by those of
    /// `sddl` (owner and group with `WRITE_OWNER`, DACL with `WRITE_DAC`).
    pub(super) fn object_security(
        &mut self,
        id: ClientId,
        handle: Handle,
        set: bool,
        which: u32,
        sddl: &str,
    ) -> Result<Outcome, Failure> {
        let all = OWNER_SECURITY_INFORMATION
            | GROUP_SECURITY_INFORMATION
            | DACL_SECURITY_INFORMATION
            | SACL_SECURITY_INFORMATION;
        if which & !all != 0 || which == 0 {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("unknown security information {which:#x}"),
            ));
        }
        let entry = *self.clients[&id]
            .handles
            .get(handle)
            .ok_or_else(|| not_open(handle))?;
        let mut needed = 0;
        if which & SACL_SECURITY_INFORMATION != 0 {
            needed |= ACCESS_SYSTEM_SECURITY;
        }
        if set {
            if which & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION) != 0 {
                needed |= WRITE_OWNER;
            }
            if which & DACL_SECURITY_INFORMATION != 0 {
                needed |= WRITE_DAC;
            }
        } else if which & !SACL_SECURITY_INFORMATION != 0 {
            needed |= READ_CONTROL;
        }
        if !entry.access.contains(needed) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "the handle lacks access {:#x} for this",
                    needed & !entry.access.0
                ),
            ));
        }
        if set {
            let given = SecurityDescriptor::from_sddl(sddl)
                .map_err(|e| Failure::new(ERROR_INVALID_SECURITY_DESCR, e.to_string()))?;
            let token = &self.clients[&id].token;
            let missing = |what: &str| {
                Failure::new(
                    ERROR_INVALID_SECURITY_DESCR,
                    format!("the descriptor given has no {what}"),
                )
            };
            let owner = match (which & OWNER_SECURITY_INFORMATION != 0, &given.owner) {
                (false, _) => None,
                (true, None) => return Err(missing("owner")),
                (true, Some(owner)) if !token.may_own_as(owner) => {
                    return Err(Failure::new(
                        ERROR_INVALID_OWNER,
                        format!("{owner} cannot be made the owner by {}", token.user),
                    ));
                }
                (true, Some(owner)) => Some(owner.clone()),
            };
            let group = match (which & GROUP_SECURITY_INFORMATION != 0, &given.group) {
                (false, _) => None,
                (true, None) => return Err(missing("group")),
                (true, Some(group)) if !token.may_group_as(group) => {
                    return Err(Failure::new(
                        ERROR_INVALID_PRIMARY_GROUP,
                        format!("{group} cannot be made the primary group by {}", token.user),
                    ));
                }
                (true, Some(group)) => Some(group.clone()),
            };
            // Copied first if other objects share it.
            let sd = Rc::make_mut(
                &mut self
                    .objects
                    .get_mut(&entry.object)
                    .expect("a handle's object is alive")
                    .security,
            );
            if let Some(owner) = owner {
                sd.owner = Some(owner);
            }
            if let Some(group) = group {
                sd.group = Some(group);
            }
            if which & DACL_SECURITY_INFORMATION != 0 {
                // No DACL in what was given means none: a NULL DACL.
                sd.dacl = match given.dacl {
                    Dacl::NotPresent => Dacl::Null,
                    dacl => dacl,
                };
            }
            if which & SACL_SECURITY_INFORMATION != 0 {
                sd.sacl = given.sacl;
            }
        }
        if set {
            self.ledger_security(entry.object);
        }
        let shown = self.objects[&entry.object].security.parts(which);
        let text = shown.to_sddl();
        if text.len() > objmgr_proto::wire::MAX_STRING_LEN {
            return Err(Failure::new(
                ERROR_INVALID_SECURITY_DESCR,
                "the descriptor is too long to send as SDDL",
            ));
        }
        Ok(Outcome::reply(Reply::Text(text)))
    }
}
