//! The TOML config, checked strictly, with errors that say file and line.
//!
//! An operator finds out about a typo when the config is checked, not when
//! an order goes wrong: unknown keys are errors, and every error, whether
//! TOML found it or a check after parsing did (a duplicate instrument id,
//! a bad decimal), names the file, the line and the key. Secrets are only
//! referenced here (see [`crate::secret`]) and read when asked.
//!
//! `examples/ordergate.toml` documents every key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::decimal::{self, WideDecimal};
use crate::ids::{InstrumentId, StrategyId, VenueId};
use crate::instrument::{Category, Instrument};
use crate::secret::{Secret, SecretSource};

/// Where each role runs (see `docs/ARCHITECTURE.md`, "Layouts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Every role on one thread: few cores, tests, CI.
    #[default]
    Single,
    /// One thread per role, each pinned to a configured core.
    Pinned,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Pinned => "pinned",
        }
    }
}

pub use crate::doorbell::WaitStrategy;

pub const DEFAULT_COMMAND_CAPACITY: usize = 1024;
pub const DEFAULT_EVENT_CAPACITY: usize = 8192;
pub const DEFAULT_MAX_OUTBOUND_BYTES: usize = 1 << 20;
pub const DEFAULT_RESEND_CAPACITY: usize = 65536;
/// How long a strategy with `cancel_on_disconnect` may be gone before its
/// orders are cancelled: long enough to ride out a restart of the strategy.
pub const DEFAULT_DISCONNECT_GRACE_MS: usize = 5000;
/// The journal's group commit interval and segment size.
pub const DEFAULT_GROUP_COMMIT_US: usize = 1000;
pub const DEFAULT_SEGMENT_MB: usize = 64;
pub const DEFAULT_RECV_WINDOW_MS: u32 = 5000;
/// Binance's documented maximum `recvWindow`.
pub const MAX_RECV_WINDOW_MS: u32 = 60_000;
/// Bounds of `ping_interval_ms` and `pong_timeout_ms`.
pub const MIN_LIVENESS_MS: u64 = 10;
pub const MAX_LIVENESS_MS: u64 = 600_000;
/// Ring capacities above this are almost certainly a typo (memory).
pub const MAX_RING_CAPACITY: usize = 1 << 24;

/// Why a config was refused. The `Display` form is the whole message an
/// operator needs: `file:line: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}")]
    At {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    Whole { origin: String, message: String },
}

impl ConfigError {
    /// The 1-based line the error is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::At { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Core ids for the `pinned` layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cores {
    pub gateway: usize,
    /// One per venue session, keyed by venue id (`[cores.sessions]`).
    pub sessions: BTreeMap<VenueId, usize>,
}

impl Cores {
    /// The core of `venue`'s session thread.
    pub fn session(&self, venue: VenueId) -> Option<usize> {
        self.sessions.get(&venue).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingsConfig {
    /// Per strategy per lane (power of two).
    pub command_capacity: usize,
    /// Per venue session (power of two).
    pub event_capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Unsent bytes buffered for one strategy before it is disconnected.
    pub max_outbound_bytes: usize,
    /// Sequenced messages kept per strategy for `ResendFrom`.
    pub resend_capacity: usize,
    /// What SIGTERM does with open orders, once what was sent is answered.
    pub on_shutdown: OnShutdown,
}

/// `[gateway] on_shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnShutdown {
    /// Open orders keep resting at the venue; the next start adopts them.
    #[default]
    Leave,
    /// Every open order is cancelled before the sidecar exits.
    Cancel,
}

impl OnShutdown {
    pub fn as_str(self) -> &'static str {
        match self {
            OnShutdown::Leave => "leave",
            OnShutdown::Cancel => "cancel",
        }
    }
}

/// `[journal]`: how the crash-safety journal is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalSettings {
    pub durability: crate::journal::Durability,
    pub segment_bytes: u64,
}

/// A secret reference with the config location it came from, so that an
/// error reading it (at start, long after parsing) still points at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub source: SecretSource,
    /// What it is, e.g. "`api_key` of [[venue]] binance-spot".
    pub what: String,
    pub origin: String,
    pub line: usize,
}

impl SecretSpec {
    pub fn resolve(&self) -> Result<Secret, ConfigError> {
        self.source.resolve().map_err(|e| ConfigError::At {
            origin: self.origin.clone(),
            line: self.line,
            message: format!("{}: {e}", self.what),
        })
    }
}

/// A venue's API key and secret, read.
#[derive(Debug)]
pub struct Credentials {
    pub api_key: Secret,
    pub api_secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueConfig {
    pub id: VenueId,
    pub ws_url: String,
    pub rest_url: String,
    pub api_key: SecretSpec,
    pub api_secret: SecretSpec,
    pub recv_window_ms: u32,
    /// Trust only this PEM CA file instead of the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// The rate limiter's settings (`[venue.limits]`).
    pub limits: crate::session::LimitsConfig,
    /// WebSocket pings and the pong deadline (`ping_interval_ms`,
    /// `pong_timeout_ms`).
    pub liveness: crate::session::LivenessConfig,
}

impl VenueConfig {
    /// Reads the API key and secret now.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        Ok(Credentials {
            api_key: self.api_key.resolve()?,
            api_secret: self.api_secret.resolve()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyConfig {
    pub id: StrategyId,
    /// What the strategy says in its `Hello`.
    pub name: String,
    /// Cancel its open orders once it has been disconnected this long
    /// (ms); `None`: never (`cancel_on_disconnect` off).
    pub cancel_after_disconnect_ms: Option<u64>,
}

/// A loaded, checked config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file name errors are reported against.
    pub origin: String,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub layout: Layout,
    pub wait: WaitStrategy,
    /// Present exactly when `layout` is `Pinned`.
    pub cores: Option<Cores>,
    pub rings: RingsConfig,
    pub gateway: GatewayConfig,
    pub journal: JournalSettings,
    pub venues: Vec<VenueConfig>,
    pub strategies: Vec<StrategyConfig>,
    pub instruments: Vec<Instrument>,
}

impl Config {
    /// Reads and checks the config at `path`; errors name `path` as given.
    /// A relative `state_dir` or `socket` is taken from the directory the
    /// file is in (never from the working directory), so one config file
    /// always means one state directory and one lock.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = dir.canonicalize().map_err(read_err)?;
        let src = Source {
            text: &text,
            origin: &path.display().to_string(),
            base: Some(&base),
        };
        src.parse()
    }

    /// Parses and checks `text`; `origin` is the name errors use. With no
    /// file to resolve them against, relative paths are refused.
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let src = Source {
            text,
            origin,
            base: None,
        };
        src.parse()
    }

    pub fn venue(&self, id: VenueId) -> Option<&VenueConfig> {
        self.venues.iter().find(|v| v.id == id)
    }

    pub fn instrument(&self, id: InstrumentId) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.id == id)
    }

    pub fn strategy_by_name(&self, name: &str) -> Option<&StrategyConfig> {
        self.strategies.iter().find(|s| s.name == name)
    }
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Spanned<PathBuf>,
    socket: Spanned<PathBuf>,
    layout: Option<Spanned<Layout>>,
    #[serde(default)]
    wait: WaitStrategy,
    cores: Option<Spanned<RawCores>>,
    rings: Option<RawRings>,
    gateway: Option<RawGateway>,
    journal: Option<RawJournal>,
    #[serde(default)]
    venue: Vec<Spanned<RawVenue>>,
    #[serde(default)]
    strategy: Vec<Spanned<RawStrategy>>,
    #[serde(default)]
    instrument: Vec<Spanned<RawInstrument>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCores {
    gateway: Spanned<usize>,
    /// Venue id = core, e.g. `sessions = { binance-spot = 3 }`.
    sessions: Spanned<BTreeMap<VenueId, usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRings {
    command_capacity: Option<Spanned<usize>>,
    event_capacity: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    max_outbound_bytes: Option<Spanned<usize>>,
    resend_capacity: Option<Spanned<usize>>,
    #[serde(default)]
    on_shutdown: OnShutdown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    #[serde(default)]
    durability: RawDurability,
    group_commit_us: Option<Spanned<usize>>,
    segment_mb: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawDurability {
    #[default]
    Group,
    EveryRecord,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Preset {
    Mainnet,
    Testnet,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVenue {
    id: Spanned<VenueId>,
    preset: Option<Spanned<Preset>>,
    ws_url: Option<Spanned<String>>,
    rest_url: Option<Spanned<String>>,
    api_key: Spanned<SecretSource>,
    api_secret: Spanned<SecretSource>,
    recv_window_ms: Option<Spanned<u32>>,
    ping_interval_ms: Option<Spanned<u64>>,
    pong_timeout_ms: Option<Spanned<u64>>,
    ca_file: Option<PathBuf>,
    limits: Option<RawLimits>,
}

/// `[venue.limits]`: the rate limiter of that venue's session.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// Per cent of every rule kept for cancels and reduce-only orders.
    critical_reserve_percent: Option<Spanned<u16>>,
    window_margin_ms: Option<u64>,
    stale_order_ms: Option<Spanned<u64>>,
    max_in_flight: Option<Spanned<usize>>,
    pass_through: Option<bool>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// One `[[venue.limits.rule]]`: a limit that replaces the venue's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    counts: Spanned<String>,
    window_ms: u64,
    limit: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrategy {
    id: Spanned<u32>,
    name: Spanned<String>,
    #[serde(default)]
    cancel_on_disconnect: bool,
    disconnect_grace_ms: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawCategory {
    Spot,
    Linear,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstrument {
    id: Spanned<u32>,
    venue: Spanned<VenueId>,
    symbol: Spanned<String>,
    category: Spanned<RawCategory>,
    tick: Spanned<DecimalText>,
    lot: Spanned<DecimalText>,
    min_qty: Spanned<DecimalText>,
    min_notional: Spanned<DecimalText>,
}

/// A decimal written as a TOML string (or integer). Floats are refused:
/// TOML floats are binary, and "0.1" must stay exactly 0.1.
struct DecimalText(String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DecimalText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"0.01\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(s.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DecimalText, E> {
                Err(E::custom(format!(
                    "write decimals as strings (\"{v}\"): a TOML float is binary and inexact"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

// ---- checking ----------------------------------------------------------

/// The config text, for turning byte offsets into lines and sections.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
    /// The config file's directory (canonical), for relative paths.
    base: Option<&'a Path>,
}

fn binance_spot_preset(p: Preset) -> (&'static str, &'static str) {
    match p {
        Preset::Mainnet => (
            "wss://ws-api.binance.com:443/ws-api/v3",
            "https://api.binance.com",
        ),
        Preset::Testnet => (
            "wss://ws-api.testnet.binance.vision/ws-api/v3",
            "https://testnet.binance.vision",
        ),
    }
}

fn venue_category(v: VenueId) -> Category {
    match v {
        VenueId::BinanceSpot | VenueId::BybitSpot => Category::Spot,
        VenueId::BinanceUsdm | VenueId::BybitLinear => Category::LinearPerp,
    }
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::At {
            origin: self.origin.to_owned(),
            line: self.line_of(span.start),
            message: message.into(),
        }
    }

    fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Whole {
            origin: self.origin.to_owned(),
            message: message.into(),
        }
    }

    /// The table header (`[cores]`, `[[venue]]`) in force at `offset`.
    fn section_at(&self, offset: usize) -> String {
        let end = offset.min(self.text.len());
        let line_end = self.text[end..]
            .find('\n')
            .map_or(self.text.len(), |i| end + i);
        self.text[..line_end]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| {
                let l = l.split('#').next().unwrap_or(l).trim_end();
                l.to_owned()
            })
            .unwrap_or_else(|| "the top-level table".to_owned())
    }

    /// The key whose value starts at `offset`, read back from the line:
    /// `tick` for `tick = 0.01`, `api_key.env` inside an inline table.
    fn key_at(&self, offset: usize) -> Option<String> {
        let end = offset.min(self.text.len());
        let line_start = self.text[..end].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &self.text[line_start..end];
        let eq = prefix.find('=')?;
        let outer = prefix[..eq].trim();
        if outer.is_empty() || outer.starts_with('[') {
            return None;
        }
        let after = &prefix[eq + 1..];
        if let Some(brace) = after.rfind('{') {
            let inner_from = after.rfind(',').filter(|&c| c > brace).unwrap_or(brace) + 1;
            let inner = &after[inner_from..];
            if let Some(ieq) = inner.find('=') {
                return Some(format!("{outer}.{}", inner[..ieq].trim()));
            }
        }
        Some(outer.to_owned())
    }

    /// Rewrites a TOML/serde error in our terms: which key, where.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let msg = e.message().trim_end().replace('\n', ": ");
        let Some(span) = e.span() else {
            return self.whole(msg);
        };
        let section = self.section_at(span.start);
        let key = self.key_at(span.start);
        let in_section = match &key {
            Some(key) => format!("`{key}` in {section}"),
            None => section,
        };
        let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
            let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let expected = expected.trim_start_matches(',').trim();
            let expected = if let Some(list) = expected.strip_prefix("expected one of ") {
                format!(" (expected one of: {})", list.replace('`', ""))
            } else if let Some(one) = expected.strip_prefix("expected ") {
                format!(" (expected: {})", one.replace('`', ""))
            } else {
                String::new()
            };
            format!("unknown key `{key}` in {in_section}{expected}")
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            let key = rest.split('`').next().unwrap_or(rest);
            format!("missing key `{key}` in {in_section}")
        } else {
            format!("{in_section}: {msg}")
        };
        self.err(&span, message)
    }

    fn parse(&self) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(self.text).map_err(|e| self.toml_error(&e))?;
        self.build(raw)
    }

    /// `path` if absolute; else `path` taken from the config file's
    /// directory, when there is a file.
    fn resolve_path(&self, key: &str, path: &Spanned<PathBuf>) -> Result<PathBuf, ConfigError> {
        let p = path.get_ref();
        if p.is_absolute() {
            return Ok(p.clone());
        }
        let Some(base) = self.base else {
            return Err(self.err(
                &path.span(),
                format!(
                    "`{key}` must be an absolute path (got {p:?}): a relative path is only taken from the directory of a config file, never from the working directory, since two sidecars started from different directories must not trade one account"
                ),
            ));
        };
        Ok(join_lexically(base, p))
    }

    fn build(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let state_dir = self.resolve_path("state_dir", &raw.state_dir)?;
        let socket = self.resolve_path("socket", &raw.socket)?;
        crate::state::check_socket_path(&socket)
            .map_err(|e| self.err(&raw.socket.span(), format!("`socket`: {e}")))?;

        let venues = self.venues(&raw.venue)?;
        let strategies = self.strategies(&raw.strategy)?;
        let instruments = self.instruments(&raw.instrument, &venues)?;

        let layout = raw.layout.as_ref().map_or(Layout::Single, |l| *l.get_ref());
        let cores = match (layout, &raw.cores) {
            (Layout::Single, None) => None,
            (Layout::Single, Some(c)) => {
                return Err(self.err(
                    &c.span(),
                    "[cores] is only used with layout = \"pinned\"; remove it or set the layout",
                ))
            }
            (Layout::Pinned, None) => {
                let span = raw.layout.as_ref().map(|l| l.span()).unwrap_or(0..0);
                return Err(self.err(
                    &span,
                    "layout = \"pinned\" needs a [cores] table with `gateway` and `sessions` core ids",
                ));
            }
            (Layout::Pinned, Some(c)) => Some(self.cores(c.get_ref(), &venues)?),
        };

        let rings = raw.rings.as_ref();
        let rings = RingsConfig {
            command_capacity: self.capacity(
                rings.and_then(|r| r.command_capacity.as_ref()),
                "[rings] `command_capacity`",
                DEFAULT_COMMAND_CAPACITY,
            )?,
            event_capacity: self.capacity(
                rings.and_then(|r| r.event_capacity.as_ref()),
                "[rings] `event_capacity`",
                DEFAULT_EVENT_CAPACITY,
            )?,
        };
        let gw = raw.gateway.as_ref();
        let min_outbound = crate::protocol::MAX_FRAME + 4;
        let max_outbound_bytes = self.at_least(
            gw.and_then(|g| g.max_outbound_bytes.as_ref()),
            "[gateway] `max_outbound_bytes`",
            DEFAULT_MAX_OUTBOUND_BYTES,
            min_outbound,
            "one whole frame",
        )?;
        let resend_capacity = self.at_least(
            gw.and_then(|g| g.resend_capacity.as_ref()),
            "[gateway] `resend_capacity`",
            DEFAULT_RESEND_CAPACITY,
            1,
            "one message",
        )?;

        let j = raw.journal.as_ref();
        let group_us = self.at_least(
            j.and_then(|j| j.group_commit_us.as_ref()),
            "[journal] `group_commit_us`",
            DEFAULT_GROUP_COMMIT_US,
            1,
            "1 µs",
        )?;
        let segment_mb = self.at_least(
            j.and_then(|j| j.segment_mb.as_ref()),
            "[journal] `segment_mb`",
            DEFAULT_SEGMENT_MB,
            1,
            "1 MB",
        )?;
        let durability = j.map(|j| j.durability).unwrap_or_default();
        if let Some(v) = j
            .and_then(|j| j.group_commit_us.as_ref())
            .filter(|_| durability != RawDurability::Group)
        {
            return Err(self.err(
                &v.span(),
                "[journal] `group_commit_us` applies only to durability = \"group\"",
            ));
        }
        let journal = JournalSettings {
            durability: match durability {
                RawDurability::Group => crate::journal::Durability::Group {
                    interval: std::time::Duration::from_micros(group_us as u64),
                },
                RawDurability::EveryRecord => crate::journal::Durability::EveryRecord,
                RawDurability::None => crate::journal::Durability::None,
            },
            segment_bytes: segment_mb as u64 * (1 << 20),
        };

        if venues.is_empty() {
            return Err(self.whole("no [[venue]] is configured"));
        }
        if strategies.is_empty() {
            return Err(self.whole("no [[strategy]] is configured"));
        }
        if instruments.is_empty() {
            return Err(self.whole("no [[instrument]] is configured"));
        }

        Ok(Config {
            origin: self.origin.to_owned(),
            state_dir,
            socket,
            layout,
            wait: raw.wait,
            cores,
            rings,
            gateway: GatewayConfig {
                max_outbound_bytes,
                resend_capacity,
                on_shutdown: gw.map(|g| g.on_shutdown).unwrap_or_default(),
            },
            journal,
            venues,
            strategies,
            instruments,
        })
    }

    fn cores(&self, c: &RawCores, venues: &[VenueConfig]) -> Result<Cores, ConfigError> {
        let sessions = c.sessions.get_ref();
        for v in venues {
            if !sessions.contains_key(&v.id) {
                return Err(self.err(
                    &c.sessions.span(),
                    format!(
                        "[cores] `sessions` has no core for venue {}: give every [[venue]] its core, keyed by venue id (`sessions = {{ {} = 3 }}`)",
                        v.id, v.id
                    ),
                ));
            }
        }
        for id in sessions.keys() {
            if !venues.iter().any(|v| v.id == *id) {
                return Err(self.err(
                    &c.sessions.span(),
                    format!("[cores] `sessions` names venue {id}, which has no [[venue]] table"),
                ));
            }
        }
        let mut seen = vec![*c.gateway.get_ref()];
        for &core in sessions.values() {
            if seen.contains(&core) {
                return Err(self.err(
                    &c.sessions.span(),
                    format!("[cores] `sessions`: core {core} is used twice; every pinned thread needs its own core"),
                ));
            }
            seen.push(core);
        }
        Ok(Cores {
            gateway: *c.gateway.get_ref(),
            sessions: sessions.clone(),
        })
    }

    fn capacity(
        &self,
        v: Option<&Spanned<usize>>,
        what: &str,
        default: usize,
    ) -> Result<usize, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let n = *v.get_ref();
        if n < 2 || !n.is_power_of_two() || n > MAX_RING_CAPACITY {
            return Err(self.err(
                &v.span(),
                format!("{what} is {n}; it must be a power of two from 2 to {MAX_RING_CAPACITY}"),
            ));
        }
        Ok(n)
    }

    fn at_least(
        &self,
        v: Option<&Spanned<usize>>,
        what: &str,
        default: usize,
        min: usize,
        why: &str,
    ) -> Result<usize, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let n = *v.get_ref();
        if n < min {
            return Err(self.err(
                &v.span(),
                format!("{what} is {n}; it must be at least {min} ({why})"),
            ));
        }
        Ok(n)
    }

    fn venues(&self, raw: &[Spanned<RawVenue>]) -> Result<Vec<VenueConfig>, ConfigError> {
        let mut out: Vec<VenueConfig> = Vec::with_capacity(raw.len());
        let mut lines: HashMap<VenueId, usize> = HashMap::new();
        for rv in raw {
            let table_span = rv.span();
            let rv = rv.get_ref();
            let id = *rv.id.get_ref();
            let line = self.line_of(rv.id.span().start);
            if let Some(first) = lines.insert(id, line) {
                return Err(self.err(
                    &rv.id.span(),
                    format!("[[venue]] `id`: venue {id} is configured twice (first at line {first}); one account per venue"),
                ));
            }
            let preset = match &rv.preset {
                None => None,
                Some(p) if id == VenueId::BinanceSpot => Some(binance_spot_preset(*p.get_ref())),
                Some(p) => {
                    return Err(self.err(
                        &p.span(),
                        format!("[[venue]] {id} `preset`: no presets are known for {id}; set `ws_url` and `rest_url`"),
                    ))
                }
            };
            let ws_url = self.url(
                id,
                "ws_url",
                rv.ws_url.as_ref(),
                preset.map(|p| p.0),
                &table_span,
                ("wss", "ws"),
            )?;
            let rest_url = self.url(
                id,
                "rest_url",
                rv.rest_url.as_ref(),
                preset.map(|p| p.1),
                &table_span,
                ("https", "http"),
            )?;
            let recv_window_ms = match &rv.recv_window_ms {
                None => DEFAULT_RECV_WINDOW_MS,
                Some(w) if (1..=MAX_RECV_WINDOW_MS).contains(w.get_ref()) => *w.get_ref(),
                Some(w) => {
                    return Err(self.err(
                        &w.span(),
                        format!(
                            "[[venue]] {id} `recv_window_ms` is {}; it must be from 1 to {MAX_RECV_WINDOW_MS}",
                            w.get_ref()
                        ),
                    ))
                }
            };
            let secret = |key: &str, s: &Spanned<SecretSource>| SecretSpec {
                source: s.get_ref().clone(),
                what: format!("`{key}` of [[venue]] {id}"),
                origin: self.origin.to_owned(),
                line: self.line_of(s.span().start),
            };
            let limits = self.limits(id, rv.limits.as_ref(), recv_window_ms)?;
            let defaults = crate::session::LivenessConfig::default();
            let ms = |key: &str, v: &Option<Spanned<u64>>, default: Duration| {
                match v {
                None => Ok(default),
                Some(v) if (MIN_LIVENESS_MS..=MAX_LIVENESS_MS).contains(v.get_ref()) => {
                    Ok(Duration::from_millis(*v.get_ref()))
                }
                Some(v) => Err(self.err(
                    &v.span(),
                    format!(
                        "[[venue]] {id} `{key}` is {}; it must be from {MIN_LIVENESS_MS} to {MAX_LIVENESS_MS}",
                        v.get_ref()
                    ),
                )),
            }
            };
            let liveness = crate::session::LivenessConfig {
                ping_interval: ms(
                    "ping_interval_ms",
                    &rv.ping_interval_ms,
                    defaults.ping_interval,
                )?,
                pong_timeout: ms(
                    "pong_timeout_ms",
                    &rv.pong_timeout_ms,
                    defaults.pong_timeout,
                )?,
            };
            out.push(VenueConfig {
                id,
                ws_url,
                rest_url,
                api_key: secret("api_key", &rv.api_key),
                api_secret: secret("api_secret", &rv.api_secret),
                recv_window_ms,
                ca_file: rv.ca_file.clone(),
                limits,
                liveness,
            });
        }
        Ok(out)
    }

    /// `[venue.limits]`, checked: the stale bound stays below the receive
    /// window, the reserve is a share, rules name what they count.
    fn limits(
        &self,
        id: VenueId,
        raw: Option<&RawLimits>,
        recv_window_ms: u32,
    ) -> Result<crate::session::LimitsConfig, ConfigError> {
        use crate::limiter::{Counts, Rule};
        let mut l = crate::session::LimitsConfig::default();
        l.stale_ms = l.stale_ms.min(recv_window_ms as u64 / 2);
        let Some(raw) = raw else { return Ok(l) };
        if let Some(p) = &raw.critical_reserve_percent {
            if *p.get_ref() > 90 {
                return Err(self.err(
                    &p.span(),
                    format!("[venue.limits] of {id}: `critical_reserve_percent` is {}; it must be at most 90", p.get_ref()),
                ));
            }
            l.reserve_permille = *p.get_ref() * 10;
        }
        if let Some(m) = raw.window_margin_ms {
            l.margin_ms = m;
        }
        if let Some(st) = &raw.stale_order_ms {
            let v = *st.get_ref();
            if v == 0 || v >= recv_window_ms as u64 {
                return Err(self.err(
                    &st.span(),
                    format!("[venue.limits] of {id}: `stale_order_ms` is {v}; it must be above 0 and below recv_window_ms ({recv_window_ms}) minus the round trip"),
                ));
            }
            l.stale_ms = v;
        }
        if let Some(m) = &raw.max_in_flight {
            if *m.get_ref() == 0 {
                return Err(self.err(
                    &m.span(),
                    format!("[venue.limits] of {id}: `max_in_flight` must be at least 1"),
                ));
            }
            l.max_in_flight = *m.get_ref();
        }
        l.pass_through = raw.pass_through.unwrap_or(false);
        for r in &raw.rule {
            let counts = match r.counts.get_ref().as_str() {
                "weight" => Counts::Weight,
                "orders" => Counts::Orders,
                "requests" => Counts::Requests,
                "connections" => Counts::Connections,
                other => {
                    return Err(self.err(
                        &r.counts.span(),
                        format!("[[venue.limits.rule]] of {id}: `counts` is {other:?}; expected one of weight, orders, requests, connections"),
                    ))
                }
            };
            l.overrides
                .push(Rule::new(counts, r.window_ms.max(1), r.limit));
        }
        Ok(l)
    }

    /// An explicit URL, else the preset's; TLS required except to loopback.
    fn url(
        &self,
        venue: VenueId,
        key: &str,
        explicit: Option<&Spanned<String>>,
        preset: Option<&str>,
        table_span: &Range<usize>,
        (secure, plain): (&str, &str),
    ) -> Result<String, ConfigError> {
        let Some(url) = explicit else {
            return preset.map(str::to_owned).ok_or_else(|| {
                self.err(
                    table_span,
                    format!("missing key `{key}` in [[venue]] {venue} (or set `preset` where the venue has presets)"),
                )
            });
        };
        let text = url.get_ref();
        let fail = |why: String| {
            self.err(
                &url.span(),
                format!("[[venue]] {venue} `{key}` {text:?}: {why}"),
            )
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| fail(format!("not a URL (expected {secure}://host/...)")))?;
        let host = url_host(rest).ok_or_else(|| fail("no host".to_owned()))?;
        if scheme.eq_ignore_ascii_case(secure) {
            Ok(text.clone())
        } else if scheme.eq_ignore_ascii_case(plain) {
            if is_loopback(host) {
                Ok(text.clone())
            } else {
                Err(fail(format!(
                    "{plain}:// (no TLS) is allowed only to loopback hosts; use {secure}://"
                )))
            }
        } else {
            Err(fail(format!(
                "scheme must be {secure}:// (or {plain}:// to loopback)"
            )))
        }
    }

    fn strategies(&self, raw: &[Spanned<RawStrategy>]) -> Result<Vec<StrategyConfig>, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        let mut ids: HashMap<u32, usize> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for rs in raw {
            let rs = rs.get_ref();
            let id = *rs.id.get_ref();
            let name = rs.name.get_ref();
            if let Some(first) = ids.insert(id, self.line_of(rs.id.span().start)) {
                return Err(self.err(
                    &rs.id.span(),
                    format!(
                        "[[strategy]] `id`: strategy id {id} is used twice (first at line {first})"
                    ),
                ));
            }
            if name.is_empty() || name.len() > crate::protocol::MAX_STR {
                return Err(self.err(
                    &rs.name.span(),
                    format!(
                        "[[strategy]] `name` must be 1 to {} bytes",
                        crate::protocol::MAX_STR
                    ),
                ));
            }
            if let Some(first) = names.insert(name.clone(), self.line_of(rs.name.span().start)) {
                return Err(self.err(
                    &rs.name.span(),
                    format!("[[strategy]] `name`: strategy name {name:?} is used twice (first at line {first}); strategies log in by name"),
                ));
            }
            if let Some(g) = rs
                .disconnect_grace_ms
                .as_ref()
                .filter(|_| !rs.cancel_on_disconnect)
            {
                return Err(self.err(
                    &g.span(),
                    "[[strategy]] `disconnect_grace_ms` has no effect without `cancel_on_disconnect = true`",
                ));
            }
            let grace = self.at_least(
                rs.disconnect_grace_ms.as_ref(),
                "[[strategy]] `disconnect_grace_ms`",
                DEFAULT_DISCONNECT_GRACE_MS,
                0,
                "0",
            )?;
            out.push(StrategyConfig {
                id,
                name: name.clone(),
                cancel_after_disconnect_ms: rs.cancel_on_disconnect.then_some(grace as u64),
            });
        }
        Ok(out)
    }

    fn instruments(
        &self,
        raw: &[Spanned<RawInstrument>],
        venues: &[VenueConfig],
    ) -> Result<Vec<Instrument>, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        let mut ids: HashMap<u32, usize> = HashMap::new();
        let mut symbols: HashMap<(VenueId, String), usize> = HashMap::new();
        for ri in raw {
            let table_span = ri.span();
            let ri = ri.get_ref();
            let id = *ri.id.get_ref();
            if id == 0 {
                return Err(self.err(
                    &ri.id.span(),
                    "[[instrument]] `id` 0 is reserved (it means \"all instruments\" in CancelAll)",
                ));
            }
            if let Some(first) = ids.insert(id, self.line_of(ri.id.span().start)) {
                return Err(self.err(
                    &ri.id.span(),
                    format!("[[instrument]] `id`: instrument id {id} is used twice (first at line {first})"),
                ));
            }
            let venue = *ri.venue.get_ref();
            if !venues.iter().any(|v| v.id == venue) {
                return Err(self.err(
                    &ri.venue.span(),
                    format!("[[instrument]] {id} `venue`: {venue} has no [[venue]] table"),
                ));
            }
            let symbol = ri.symbol.get_ref();
            if symbol.is_empty()
                || symbol.len() > crate::protocol::MAX_STR
                || symbol.chars().any(char::is_whitespace)
            {
                return Err(self.err(
                    &ri.symbol.span(),
                    format!(
                        "[[instrument]] {id} `symbol` {symbol:?} must be 1 to {} bytes without spaces",
                        crate::protocol::MAX_STR
                    ),
                ));
            }
            if let Some(first) = symbols.insert(
                (venue, symbol.clone()),
                self.line_of(ri.symbol.span().start),
            ) {
                return Err(self.err(
                    &ri.symbol.span(),
                    format!("[[instrument]] {id} `symbol`: {venue} {symbol} is already configured (line {first})"),
                ));
            }
            let category = match ri.category.get_ref() {
                RawCategory::Spot => Category::Spot,
                RawCategory::Linear => Category::LinearPerp,
            };
            if category != venue_category(venue) {
                return Err(self.err(
                    &ri.category.span(),
                    format!("[[instrument]] {id} `category` does not match venue {venue}"),
                ));
            }

            let dec_err = |key: &str, v: &Spanned<DecimalText>, why: String| {
                self.err(
                    &v.span(),
                    format!("[[instrument]] {id} `{key}` {:?}: {why}", v.get_ref().0),
                )
            };
            let step = |key: &str, v: &Spanned<DecimalText>| -> Result<u8, ConfigError> {
                let d = WideDecimal::parse(&v.get_ref().0)
                    .map_err(|e| dec_err(key, v, e.to_string()))?;
                if d.mantissa <= 0 {
                    return Err(dec_err(key, v, "must be positive".to_owned()));
                }
                Ok(d.normalized().scale)
            };
            step("tick", &ri.tick)?;
            let qty_scale = step("lot", &ri.lot)?;
            let min_qty = decimal::parse_fixed(&ri.min_qty.get_ref().0, qty_scale)
                .map_err(|e| dec_err("min_qty", &ri.min_qty, format!("{e} (the lot's scale)")))?;
            if min_qty < 0 {
                return Err(dec_err(
                    "min_qty",
                    &ri.min_qty,
                    "must not be negative".to_owned(),
                ));
            }
            let min_notional = WideDecimal::parse(&ri.min_notional.get_ref().0)
                .map_err(|e| dec_err("min_notional", &ri.min_notional, e.to_string()))?;
            if min_notional.mantissa < 0 {
                return Err(dec_err(
                    "min_notional",
                    &ri.min_notional,
                    "must not be negative".to_owned(),
                ));
            }
            let instrument = Instrument::from_strings(
                id,
                venue,
                symbol,
                category,
                &ri.tick.get_ref().0,
                &ri.lot.get_ref().0,
                &ri.min_qty.get_ref().0,
                &ri.min_notional.get_ref().0,
            )
            .map_err(|e| self.err(&table_span, format!("[[instrument]] {id}: {e}")))?;
            out.push(instrument);
        }
        Ok(out)
    }
}

/// `base` (canonical: no symlinks, `.` or `..`) joined with the relative
/// `rel`, with `.` and `..` taken out so the result names the directory
/// plainly (and counts no extra bytes against the socket path limit).
fn join_lexically(base: &Path, rel: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The host of `rest` (what follows `scheme://`): without user info, port
/// or path; IPv6 literals keep their brackets off.
fn url_host(rest: &str) -> Option<&str> {
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_loopback() {
        assert_eq!(url_host("127.0.0.1:9000/ws"), Some("127.0.0.1"));
        assert_eq!(url_host("[::1]:9000/ws"), Some("::1"));
        assert_eq!(url_host("user:pw@localhost/x"), Some("localhost"));
        assert_eq!(url_host("api.binance.com"), Some("api.binance.com"));
        assert_eq!(url_host("/path"), None);
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("LOCALHOST"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("localhost.example.com"));
    }

    #[test]
    fn key_and_section_from_the_text() {
        let text = "a = 1\n[[venue]]\nid = \"x\" # c\napi_key = { env = 5 }\n";
        let src = Source {
            text,
            origin: "t.toml",
            base: None,
        };
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(src.section_at(at("1")), "the top-level table");
        assert_eq!(src.section_at(at("\"x\"")), "[[venue]]");
        assert_eq!(src.key_at(at("\"x\"")).as_deref(), Some("id"));
        assert_eq!(src.key_at(at("5")).as_deref(), Some("api_key.env"));
        assert_eq!(src.key_at(at("{")).as_deref(), Some("api_key"));
        assert_eq!(src.line_of(at("api_key")), 4);
    }
}
