//! Which venues this build can trade, and how their adapters are built.
//!
//! The app hands the registry one [`VenueSetup`] per configured venue
//! table and gets a ready adapter back; it never matches on venue ids
//! itself. A new venue adds one builder here.

use std::fmt;

use zeroize::Zeroizing;

use super::binance::{BinanceSpot, BinanceSpotConfig};
use super::VenueProtocol;
use crate::ids::VenueId;
use crate::instrument::Instrument;

/// Everything an adapter is built from: one venue table of the config,
/// with its credentials read, and the instruments traded there.
pub struct VenueSetup {
    pub id: VenueId,
    pub ws_url: String,
    pub rest_url: String,
    pub api_key: String,
    pub api_secret: Zeroizing<Vec<u8>>,
    pub recv_window_ms: u32,
    pub instruments: Vec<Instrument>,
    /// This installation and run (part of every client order id).
    pub namespace: crate::ids::Namespace,
}

impl fmt::Debug for VenueSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VenueSetup")
            .field("id", &self.id)
            .field("ws_url", &self.ws_url)
            .field("rest_url", &self.rest_url)
            .field("api_key", &super::binance::redact_key(&self.api_key))
            .field("api_secret", &"<redacted>")
            .field("recv_window_ms", &self.recv_window_ms)
            .field("instruments", &self.instruments.len())
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}: this build has no adapter for it yet")]
    Unsupported(VenueId),
    #[error("{venue}: {why}")]
    Invalid { venue: VenueId, why: String },
}

/// Builds one venue's adapter.
pub type Builder = fn(VenueSetup) -> Result<Box<dyn VenueProtocol>, SetupError>;

/// The venues this build supports.
#[derive(Clone)]
pub struct Registry {
    builders: Vec<(VenueId, Builder)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.builders.iter().map(|(id, _)| id))
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// No venues.
    pub fn empty() -> Self {
        Registry {
            builders: Vec::new(),
        }
    }

    /// Every venue ordergate ships an adapter for.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(VenueId::BinanceSpot, binance_spot);
        r
    }

    /// Adds (or replaces) the builder for `id`.
    pub fn register(&mut self, id: VenueId, builder: Builder) {
        self.builders.retain(|(v, _)| *v != id);
        self.builders.push((id, builder));
    }

    pub fn supports(&self, id: VenueId) -> bool {
        self.builders.iter().any(|(v, _)| *v == id)
    }

    pub fn build(&self, setup: VenueSetup) -> Result<Box<dyn VenueProtocol>, SetupError> {
        let id = setup.id;
        let (_, b) = self
            .builders
            .iter()
            .find(|(v, _)| *v == id)
            .ok_or(SetupError::Unsupported(id))?;
        b(setup)
    }
}

fn binance_spot(s: VenueSetup) -> Result<Box<dyn VenueProtocol>, SetupError> {
    Ok(Box::new(BinanceSpot::new(BinanceSpotConfig {
        ws_url: s.ws_url,
        rest_url: (!s.rest_url.is_empty()).then_some(s.rest_url),
        api_key: s.api_key,
        api_secret: s.api_secret.to_vec(),
        recv_window_ms: s.recv_window_ms,
        instruments: s.instruments,
        namespace: s.namespace,
    })))
}
