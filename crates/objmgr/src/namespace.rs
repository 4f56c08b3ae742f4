//! Private namespaces (`CreatePrivateNamespace`, `OpenPrivateNamespace`,
//! `ClosePrivateNamespace`): a directory of names only processes inside a
//! boundary (a set of SIDs) can create or open, so that nobody else can
//! create a service's names first.
//!
//! Objects in it are named `alias\name`, with the alias this process created
//! or opened it under.
//!
//! ```no_run
//! use objmgr::namespace::{Boundary, PrivateNamespace};
//! use objmgr::security::Sid;
//! use objmgr::Section;
//!
//! let mut boundary = Boundary::new("MyService");
//! boundary.add_sid(Sid::unix_user(1000));
//! let namespace = PrivateNamespace::create(&boundary, "svc", None)?;
//! let section = Section::create("svc\\Data", 4096)?;
//! # drop((namespace, section));
//! # Ok::<(), objmgr::Error>(())
//! ```

use objmgr_proto::security::{SecurityDescriptor, Sid};
use objmgr_proto::wire::{Reply, Request};

use crate::connection::call;
use crate::error::*;

/// `CreateBoundaryDescriptor` / `AddSIDToBoundaryDescriptor`: the name and
/// SIDs that identify a private namespace. Creating or opening the
/// namespace needs every SID in the caller's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boundary {
    name: String,
    sids: Vec<Sid>,
}

impl Boundary {
    pub fn new(name: &str) -> Boundary {
        Boundary {
            name: name.to_owned(),
            sids: Vec::new(),
        }
    }

    pub fn add_sid(&mut self, sid: Sid) -> &mut Boundary {
        self.sids.push(sid);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sids(&self) -> &[Sid] {
        &self.sids
    }
}

/// An open private namespace; closed (`ClosePrivateNamespace`) on drop.
#[derive(Debug)]
pub struct PrivateNamespace {
    id: u32,
    generation: u64,
    alias: String,
    closed: bool,
}

impl PrivateNamespace {
    /// `CreatePrivateNamespace`: a new namespace with `boundary`, named by
    /// this process as `alias`. One with that boundary existing is
    /// `ERROR_ALREADY_EXISTS`; a boundary SID the caller does not hold,
    /// `ERROR_ACCESS_DENIED`. `security`: the namespace's descriptor (who
    /// may open it); `None`: the creator's default.
    pub fn create(
        boundary: &Boundary,
        alias: &str,
        security: Option<&SecurityDescriptor>,
    ) -> Result<PrivateNamespace> {
        let sddl = crate::handle::wire_sddl(security)?;
        Self::request(0, boundary, alias, sddl)
    }

    /// `OpenPrivateNamespace`: the namespace with `boundary`
    /// (`ERROR_PATH_NOT_FOUND` if none), named by this process as `alias`.
    pub fn open(boundary: &Boundary, alias: &str) -> Result<PrivateNamespace> {
        Self::request(1, boundary, alias, String::new())
    }

    fn request(op: u8, boundary: &Boundary, alias: &str, sddl: String) -> Result<PrivateNamespace> {
        let what = || {
            format!(
                "{} private namespace {:?} as {alias:?}",
                if op == 0 { "creating" } else { "opening" },
                boundary.name
            )
        };
        let too_long = |s: &str| s.len() > objmgr_proto::wire::MAX_STRING_LEN;
        if too_long(&boundary.name) || too_long(alias) {
            return Err(Error::new(
                ERROR_INVALID_PARAMETER,
                format!("{}: the boundary name or alias is too long", what()),
            ));
        }
        let request = Request::Namespace {
            op,
            boundary: boundary.name.clone(),
            sids: boundary.sids.iter().map(Sid::to_string).collect(),
            alias: alias.to_owned(),
            sddl,
            id: 0,
            destroy: false,
        };
        match call(&request, None).map_err(|e| e.within(&what()))? {
            (Reply::Value(id), _, generation) => Ok(PrivateNamespace {
                id,
                generation,
                alias: alias.to_owned(),
                closed: false,
            }),
            _ => Err(Error::new(
                ERROR_INVALID_DATA,
                format!("{}: unexpected reply", what()),
            )),
        }
    }

    /// The alias this process names objects in it by (`alias\name`).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// `ClosePrivateNamespace(handle, 0)`.
    pub fn close(mut self) -> Result<()> {
        self.close_with(false)
    }

    /// `ClosePrivateNamespace(handle, PRIVATE_NAMESPACE_FLAG_DESTROY)`: the
    /// namespace can no longer be opened (objects in it live on by their
    /// handles).
    pub fn destroy(mut self) -> Result<()> {
        self.close_with(true)
    }

    fn close_with(&mut self, destroy: bool) -> Result<()> {
        if self.closed || self.generation != crate::connection::generation() {
            return Ok(()); // closed already, or with its broker session
        }
        let request = Request::Namespace {
            op: 2,
            boundary: String::new(),
            sids: Vec::new(),
            alias: self.alias.clone(),
            sddl: String::new(),
            id: self.id,
            destroy,
        };
        // A refused destroy leaves it open: dropping it then closes it.
        call(&request, None)
            .map(|_| self.closed = true)
            .map_err(|e| e.within(&format!("closing private namespace {:?}", self.alias)))
    }
}

impl Drop for PrivateNamespace {
    fn drop(&mut self) {
        let _ = self.close_with(false);
    }
}
