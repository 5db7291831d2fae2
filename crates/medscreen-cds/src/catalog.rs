//! Several packs' services behind one discovery document.
//!
//! A [`Cds`] is one pack: its engine, its value sets, its three services. A server that offers
//! several packs holds one [`Cds`] per pack rather than one `Cds` over several packs, because a
//! pack's services differ from another's in everything below the route: the engine that screens,
//! the subject set that decides whether an order is the pack's drug, the prefetch templates and the
//! rule list that feedback names. Keeping them apart means a request to a pack's service is screened
//! by that pack alone, and `Cds::new` stays what a library user with one pack calls. The catalog
//! only routes: it numbers every service once, in pack order, so that the server can remember which
//! service (and so which pack's rules) issued a card.

use serde_json::{Value, json};

use super::service::{Cds, ServiceDef};

/// The packs a server offers, the first the default, and their services numbered in that order.
#[derive(Debug)]
pub struct Catalog {
    packs: Vec<Cds>,
    /// `(pack, service within the pack)` of each service, in discovery order.
    index: Vec<(usize, usize)>,
}

/// Why packs cannot be offered together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogError {
    /// No pack was given.
    Empty,
    /// Two packs offer a service with this id (the same pack given twice, or two packs of one name).
    DuplicateService(String),
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogError::Empty => f.write_str("no rule pack to offer services for"),
            CatalogError::DuplicateService(id) => write!(
                f,
                "two packs offer the service `{id}`; each pack can be offered once"
            ),
        }
    }
}

impl std::error::Error for CatalogError {}

impl Catalog {
    /// The services of `packs`, in that order; every service id must be unique.
    pub fn new(packs: Vec<Cds>) -> Result<Catalog, CatalogError> {
        if packs.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut index = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (p, cds) in packs.iter().enumerate() {
            for (s, def) in cds.services().iter().enumerate() {
                if !seen.insert(def.id.as_str()) {
                    return Err(CatalogError::DuplicateService(def.id.clone()));
                }
                index.push((p, s));
            }
        }
        Ok(Catalog { packs, index })
    }

    /// The packs, the default first.
    pub fn packs(&self) -> &[Cds] {
        &self.packs
    }

    /// The default pack (the first).
    #[expect(
        clippy::indexing_slicing,
        reason = "a catalog is never empty: `new` refuses no packs, `From<Cds>` has one"
    )]
    pub fn default_pack(&self) -> &Cds {
        &self.packs[0]
    }

    /// Every service, in discovery order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceDef> + '_ {
        self.packs.iter().flat_map(|c| c.services())
    }

    /// The number of the service `id` (its place in [`Catalog::services`]).
    pub fn find(&self, id: &str) -> Option<usize> {
        self.services().position(|s| s.id == id)
    }

    /// The service numbered `n`, and the pack that screens its requests.
    pub fn get(&self, n: usize) -> Option<(&Cds, &ServiceDef)> {
        let &(p, s) = self.index.get(n)?;
        let cds = self.packs.get(p)?;
        Some((cds, cds.services().get(s)?))
    }

    /// The discovery document (`GET /cds-services`): each pack's services, with that pack's prefetch.
    pub fn discovery(&self) -> Value {
        let services: Vec<Value> = self
            .packs
            .iter()
            .flat_map(Cds::discovery_services)
            .collect();
        json!({ "services": services })
    }
}

/// One pack's services.
impl From<Cds> for Catalog {
    fn from(cds: Cds) -> Catalog {
        let index = (0..cds.services().len()).map(|s| (0, s)).collect();
        Catalog {
            packs: vec![cds],
            index,
        }
    }
}
