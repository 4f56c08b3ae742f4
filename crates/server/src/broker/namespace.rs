//! Private namespaces (`CreatePrivateNamespace`, `OpenPrivateNamespace`,
//! `ClosePrivateNamespace`): directories of names whose boundary is a set
//! of SIDs, so that nobody outside the boundary can create the names a
//! service will use (squatting) or open them.
//!
//! - A namespace is found by its boundary: the boundary's name and SIDs.
//!   Creating or opening one needs every SID of the boundary in the caller's
//!   token (`ERROR_ACCESS_DENIED`); creating one that exists is
//!   `ERROR_ALREADY_EXISTS`, opening one that does not `ERROR_PATH_NOT_FOUND`.
//! - The namespace has a security descriptor of its own, checked on open.
//! - A process names objects in it as `alias\name`, with the alias it
//!   created or opened the namespace under; the objects' paths are
//!   `\Namespaces\<id>\name`.
//! - It lives while a process has it open; `PRIVATE_NAMESPACE_FLAG_DESTROY`
//!   takes its name away at once (objects in it live on by their handles).

use super::*;
use objmgr_proto::access::GenericMapping;
use objmgr_proto::section::MAX_PATH;

/// A private namespace.
#[derive(Debug)]
pub(super) struct Namespace {
    boundary: String,
    /// Sorted, so that the order SIDs were added in does not matter.
    sids: Vec<security::Sid>,
    security: Rc<SecurityDescriptor>,
    /// Processes' aliases for it that are open.
    open: u32,
    destroyed: bool,
}

/// `DIRECTORY_TRAVERSE`: using the names in a directory.
const DIRECTORY_TRAVERSE: u32 = 0x2;

/// Directory rights, as Windows maps them for directory objects.
const DIRECTORY_MAPPING: GenericMapping = GenericMapping {
    read: 0x0002_0003,
    write: 0x0002_000C,
    execute: 0x0002_0003,
    all: 0x000F_000F,
};

/// A name resolved for client `id`: its path, whether it is `Global\`, and
/// the private namespace it is in.
pub(super) struct Resolved {
    pub path: Option<String>,
    pub global: bool,
    pub namespace: Option<u32>,
}

/// `DIRECTORY_CREATE_OBJECT`: making names in a directory.
const DIRECTORY_CREATE_OBJECT: u32 = 0x4;
/// Most private namespaces one process may have open at once.
const MAX_ALIASES: usize = 256;

impl Broker {
    /// Where `name` lives for client `id`: an `alias\x` of a private
    /// namespace it has open, else a `Global\`/`Local\` name (`None` path
    /// for the empty name).
    pub(super) fn resolve_name(&self, id: ClientId, name: &str) -> Result<Resolved, Failure> {
        if let Some((alias, leaf)) = name.split_once('\\')
            && let Some(&(_, ns, _)) = self.clients[&id].aliases.iter().find(|(a, ..)| a == alias)
        {
            if leaf.is_empty() || leaf.contains('\\') || leaf.contains('\0') {
                return Err(Failure::new(
                    ERROR_INVALID_NAME,
                    format!("bad object name {name:?}"),
                ));
            }
            if name.encode_utf16().count() >= MAX_PATH {
                return Err(Failure::new(
                    ERROR_FILENAME_EXCED_RANGE,
                    format!("object name {name:?} is too long"),
                ));
            }
            return Ok(Resolved {
                path: Some(format!("\\Namespaces\\{ns}\\{leaf}")),
                global: false,
                namespace: Some(ns),
            });
        }
        let parsed = ObjectName::parse(name)
            .map_err(|code| Failure::new(code, format!("bad object name {name:?}")))?;
        Ok(Resolved {
            global: parsed
                .as_ref()
                .is_some_and(|n| n.scope == objmgr_proto::Scope::Global),
            path: parsed.map(|n| n.path(self.session_of(id))),
            namespace: None,
        })
    }

    /// The `Namespace` request.
    #[expect(clippy::too_many_arguments, reason = "the fields of one request")]
    pub(super) fn namespace_request(
        &mut self,
        id: ClientId,
        op: u8,
        boundary: &str,
        sids: &[String],
        alias: &str,
        sddl: &str,
        ns: u32,
        destroy: bool,
    ) -> Result<Outcome, Failure> {
        match op {
            0 | 1 => {}
            2 => return self.close_namespace(id, ns, alias, destroy),
            _ => {
                return Err(Failure::new(
                    ERROR_INVALID_PARAMETER,
                    format!("unknown namespace operation {op}"),
                ));
            }
        }
        if alias.is_empty()
            || alias.contains(['\\', '\0'])
            || ["global", "local", "session"].contains(&alias.to_ascii_lowercase().as_str())
        {
            return Err(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!("{alias:?} cannot be a namespace alias"),
            ));
        }
        if self.clients[&id].aliases.len() >= MAX_ALIASES {
            return Err(Failure::new(
                ERROR_NOT_ENOUGH_QUOTA,
                format!("a process may have {MAX_ALIASES} private namespaces open at most"),
            ));
        }
        if self.clients[&id].aliases.iter().any(|(a, ..)| a == alias) {
            return Err(Failure::new(
                ERROR_DUP_NAME,
                format!("this process has a namespace open as {alias:?} already"),
            ));
        }
        let mut parsed: Vec<security::Sid> = sids
            .iter()
            .map(|s| {
                security::Sid::parse(s)
                    .ok_or_else(|| Failure::new(ERROR_INVALID_SID, format!("{s:?} is not a SID")))
            })
            .collect::<Result<_, _>>()?;
        parsed.sort();
        parsed.dedup();
        let token = &self.clients[&id].token;
        if let Some(outside) = parsed.iter().find(|sid| !token.has(sid)) {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                format!(
                    "{} is outside the boundary: it does not hold {outside}",
                    token.user
                ),
            ));
        }
        let found = self
            .namespaces
            .iter()
            .find(|(_, n)| !n.destroyed && n.boundary == boundary && n.sids == parsed)
            .map(|(&ns, _)| ns);
        let (ns, granted) = match (op, found) {
            (0, Some(_)) => {
                return Err(Failure::new(
                    ERROR_ALREADY_EXISTS,
                    format!("a private namespace with boundary {boundary:?} exists"),
                ));
            }
            (0, None) => {
                let security = self.security_for_new(id, sddl)?;
                let ns = self.free_namespace_id();
                self.namespaces.insert(
                    ns,
                    Namespace {
                        boundary: boundary.to_owned(),
                        sids: parsed,
                        security,
                        open: 0,
                        destroyed: false,
                    },
                );
                // Its creator may do everything with it.
                (ns, DIRECTORY_MAPPING.all)
            }
            (_, None) => {
                return Err(Failure::new(
                    ERROR_PATH_NOT_FOUND,
                    format!("no private namespace with boundary {boundary:?}"),
                ));
            }
            (_, Some(ns)) => {
                // Opening asks to traverse it (to use the names in it).
                let granted = security::access_check(
                    &self.namespaces[&ns].security,
                    token,
                    objmgr_proto::access::MAXIMUM_ALLOWED,
                    &DIRECTORY_MAPPING,
                )
                .filter(|g| g & DIRECTORY_TRAVERSE != 0)
                .ok_or_else(|| {
                    Failure::new(
                        ERROR_ACCESS_DENIED,
                        "the namespace's security descriptor does not let this process in",
                    )
                })?;
                (ns, granted)
            }
        };
        if let Some(namespace) = self.namespaces.get_mut(&ns) {
            namespace.open += 1;
        }
        self.client(id)
            .aliases
            .push((alias.to_owned(), ns, granted));
        Ok(Outcome::reply(Reply::Value(ns)))
    }

    fn close_namespace(
        &mut self,
        id: ClientId,
        ns: u32,
        alias: &str,
        destroy: bool,
    ) -> Result<Outcome, Failure> {
        let aliases = &mut self.client(id).aliases;
        let Some(at) = aliases.iter().position(|(a, n, _)| *n == ns && a == alias) else {
            return Err(Failure::new(
                ERROR_INVALID_HANDLE,
                format!("this process has no namespace {ns} open as {alias:?}"),
            ));
        };
        // Destroying takes DELETE (its creator has it).
        if destroy && aliases[at].2 & objmgr_proto::access::DELETE == 0 {
            return Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "destroying a private namespace needs DELETE access to it",
            ));
        }
        aliases.remove(at);
        if destroy && let Some(namespace) = self.namespaces.get_mut(&ns) {
            namespace.destroyed = true;
        }
        self.release_namespace(ns);
        Ok(Outcome::reply(Reply::Value(ns)))
    }

    /// A namespace id not in use, nor by names left from an earlier one, so
    /// that a live namespace is never replaced when the counter wraps.
    fn free_namespace_id(&mut self) -> u32 {
        loop {
            let ns = self.next_namespace;
            self.next_namespace = self.next_namespace.checked_add(1).unwrap_or(1);
            let prefix = format!("\\Namespaces\\{ns}\\");
            let named = self
                .names
                .range::<String, _>(prefix.clone()..)
                .next()
                .is_some_and(|(path, _)| path.starts_with(&prefix));
            if !self.namespaces.contains_key(&ns) && !named {
                return ns;
            }
        }
    }

    /// Whether client `id` may create names in namespace `ns`
    /// (`DIRECTORY_CREATE_OBJECT`).
    pub(super) fn check_namespace_create(
        &self,
        id: ClientId,
        ns: Option<u32>,
    ) -> Result<(), Failure> {
        let Some(ns) = ns else {
            return Ok(());
        };
        let allowed = self.clients[&id]
            .aliases
            .iter()
            .any(|&(_, n, granted)| n == ns && granted & DIRECTORY_CREATE_OBJECT != 0);
        if allowed {
            Ok(())
        } else {
            Err(Failure::new(
                ERROR_ACCESS_DENIED,
                "the namespace's security descriptor does not let this process create names in it",
            ))
        }
    }

    /// One opening of `ns` fewer; the namespace goes with its last.
    pub(super) fn release_namespace(&mut self, ns: u32) {
        if let Some(namespace) = self.namespaces.get_mut(&ns) {
            namespace.open = namespace.open.saturating_sub(1);
            if namespace.open == 0 {
                self.namespaces.remove(&ns);
            }
        }
    }
}
