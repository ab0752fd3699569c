//! The running sidecar: wires the gateway, the venue sessions and the rings
//! together for the configured layout. `main` has already taken the
//! instance lock, bumped the epoch and prepared the socket path; secrets
//! are read here (`VenueConfig::credentials`), when they are needed.

use crate::config::Config;
use crate::state::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the sidecar until it is told to stop. `state` is held (and with it
/// the instance lock) for the whole run.
pub fn run(config: Config, state: StateDir) -> Result<(), AppError> {
    eprintln!(
        "ordergate: epoch {} from {}, socket {}, {} venue(s), {} strategy(ies), {} instrument(s)",
        state.epoch().unwrap_or(0),
        state.path().display(),
        config.socket.display(),
        config.venues.len(),
        config.strategies.len(),
        config.instruments.len(),
    );
    Ok(())
}
