//! TLS client setup for venue connections.
//!
//! One crypto provider (rustls' `ring`) for the whole process, and client
//! configs that trust either the bundled webpki roots (production: no
//! dependence on the host's CA bundle) or a given PEM CA file (tests
//! against the simulator, private gateways).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("a different rustls crypto provider is already installed as the process default")]
    OtherProviderInstalled,
    #[error("CA file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("CA file {0} holds no certificates")]
    NoCertificates(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs rustls' `ring` provider as the process default. Calling it
/// again is fine; finding a different provider already installed (by a
/// library that chose for us) is an error, since it would silently change
/// the cipher suites every connection uses.
pub fn install_crypto_provider() -> Result<(), TlsError> {
    let ours = rustls::crypto::ring::default_provider();
    if let Some(current) = CryptoProvider::get_default() {
        return same_provider(current, &ours)
            .then_some(())
            .ok_or(TlsError::OtherProviderInstalled);
    }
    match ours.install_default() {
        Ok(()) => Ok(()),
        // Lost a race with another thread: fine if it installed the same.
        Err(_) => match CryptoProvider::get_default() {
            Some(current) if same_provider(current, &rustls::crypto::ring::default_provider()) => {
                Ok(())
            }
            _ => Err(TlsError::OtherProviderInstalled),
        },
    }
}

/// Providers are not comparable as such; the same cipher suites and key
/// exchange groups in the same order is what matters for the handshake.
fn same_provider(a: &CryptoProvider, b: &CryptoProvider) -> bool {
    a.cipher_suites
        .iter()
        .map(|s| s.suite())
        .eq(b.cipher_suites.iter().map(|s| s.suite()))
        && a.kx_groups
            .iter()
            .map(|g| g.name())
            .eq(b.kx_groups.iter().map(|g| g.name()))
}

/// A client config trusting the webpki roots, or only the certificates in
/// `ca_file` when given. Built on the `ring` provider explicitly, so it
/// works whether or not [`install_crypto_provider`] ran.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let ca_err = |e: &dyn std::fmt::Display| TlsError::CaFile {
                path: path.to_owned(),
                detail: e.to_string(),
            };
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_err(&e))?;
            for cert in certs {
                let cert = cert.map_err(|e| ca_err(&e))?;
                roots.add(cert).map_err(|e| ca_err(&e))?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificates(path.to_owned()));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 CA made with `openssl req -x509` for this test.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjjCCATWgAwIBAgIUFVvq7dU04wmNv0iZrNJRCP23GDswCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRb3JkZXJnYXRlIHRlc3QgQ0EwIBcNMjYxMTI3MTE1MzExWhgP
MjEyNjExMDMxMTUzMTFaMBwxGjAYBgNVBAMMEW9yZGVyZ2F0ZSB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFjJIESEgBW7jrVNFFwgoMth/p9SjWy2r
FQCf/dMpJE9WKN7fuYzCwLouSD6rZGF2u/qGKk/KsrpIsGfTo2ykG6NTMFEwHQYD
VR0OBBYEFOUvM8SKQmANlnLs8U3WTOqd9KtYMB8GA1UdIwQYMBaAFOUvM8SKQmAN
lnLs8U3WTOqd9KtYMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIg
M+Pkhz87PcjytzyuQKc5KZN/YaFlsF1tHcYRsxLTC8sCIGlNbPgbzUclywTohxAN
tgwLc7WqQra2SaaMgjImlLNU
-----END CERTIFICATE-----
";

    #[test]
    fn provider_install_is_idempotent() {
        install_crypto_provider().unwrap();
        install_crypto_provider().unwrap();
    }

    #[test]
    fn default_roots_and_ca_file() {
        client_config(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        client_config(Some(&ca)).unwrap();

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            client_config(Some(&empty)),
            Err(TlsError::NoCertificates(_))
        ));
        let missing = dir.path().join("missing.pem");
        let err = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
