//! API keys and secrets: where they come from, and a holder that never
//! prints them and wipes them when dropped.
//!
//! The config only says where a secret lives (an environment variable or a
//! file), never the secret itself, so a config can be shared, committed and
//! pasted into a bug report. Files must not be readable by group or other:
//! a world-readable key file is a leak waiting to happen, so it is refused
//! rather than warned about.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file (trailing whitespace and newline removed).
    File(PathBuf),
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is empty")]
    EnvEmpty(String),
    #[error("cannot read secret file {path}: {source}")]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "secret file {path} has mode {mode:04o}: group or other can access it; \
         run `chmod 600 {path}`"
    )]
    FileTooOpen { path: PathBuf, mode: u32 },
    #[error("secret file {0} is empty")]
    FileEmpty(PathBuf),
}

impl SecretSource {
    /// Reads the secret now. Called when the sidecar starts (or on request
    /// by `check-config --secrets`), not when the config is parsed, so a
    /// config can be checked on a machine that does not hold the keys.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(name) => {
                let value =
                    std::env::var_os(name).ok_or_else(|| SecretError::EnvMissing(name.clone()))?;
                let secret = Secret::new(value.into_encoded_bytes());
                if secret.expose().is_empty() {
                    return Err(SecretError::EnvEmpty(name.clone()));
                }
                Ok(secret)
            }
            SecretSource::File(path) => read_secret_file(path),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let read_err = |source| SecretError::FileRead {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::FileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = std::fs::read(path).map_err(read_err)?;
    // Editors add a final newline; it is never part of a key. Truncating
    // keeps the removed bytes in the buffer, which `Secret`'s drop wipes
    // along with the rest of the capacity.
    let len = bytes.trim_ascii_end().len();
    bytes.truncate(len);
    let secret = Secret::new(bytes);
    if secret.expose().is_empty() {
        return Err(SecretError::FileEmpty(path.to_owned()));
    }
    Ok(secret)
}

/// Secret bytes: shown as `[redacted]` by `Debug` and `Display`, wiped
/// (including spare capacity) when dropped.
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret { bytes }
    }

    /// The secret itself, for signing. Keep the borrow short.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret as text (API keys are ASCII); an error if it is not UTF-8.
    pub fn expose_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.bytes)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Accepts `{ env = "VAR" }` or `{ file = "/path" }`. A plain value is
/// refused without echoing it: it is probably the secret itself.
impl<'de> serde::Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SourceVisitor)
    }
}

struct SourceVisitor;

const SOURCE_KEYS: &[&str] = &["env", "file"];
const INLINE_SECRET: &str = "secrets are never written in the config: \
     use { env = \"VARIABLE\" } or { file = \"/path/to/file\" }";

impl<'de> serde::de::Visitor<'de> for SourceVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ env = \"VARIABLE\" } or { file = \"/path/to/file\" }")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(INLINE_SECRET))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(INLINE_SECRET))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(INLINE_SECRET))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut found: Option<SecretSource> = None;
        while let Some(key) = map.next_key::<String>()? {
            let source = match key.as_str() {
                "env" => {
                    let name: String = map.next_value()?;
                    if name.is_empty() || name.contains(['=', '\0']) {
                        return Err(A::Error::custom(format!(
                            "{name:?} is not an environment variable name"
                        )));
                    }
                    SecretSource::Env(name)
                }
                "file" => {
                    let path: PathBuf = map.next_value()?;
                    if path.as_os_str().is_empty() {
                        return Err(A::Error::custom("the secret file path is empty"));
                    }
                    SecretSource::File(path)
                }
                other => return Err(A::Error::unknown_field(other, SOURCE_KEYS)),
            };
            if found.is_some() {
                return Err(A::Error::custom(
                    "give exactly one of `env` or `file`, not both",
                ));
            }
            found = Some(source);
        }
        found.ok_or_else(|| A::Error::custom("give one of `env` or `file`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_everywhere() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), b"hunter2");
        assert_eq!(s.expose_str(), Ok("hunter2"));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Holder {
        key: SecretSource,
    }

    #[test]
    fn inline_secret_is_not_echoed() {
        let err = toml::from_str::<Holder>("key = \"sk-12345\"").unwrap_err();
        assert!(!err.message().contains("sk-12345"), "{err}");
        assert!(err.message().contains("never written in the config"));
        let ok: Holder = toml::from_str("key = { env = \"X\" }").unwrap();
        assert_eq!(ok.key, SecretSource::Env("X".into()));
        let both = toml::from_str::<Holder>("key = { env = \"X\", file = \"/y\" }");
        assert!(both.unwrap_err().message().contains("exactly one"));
        let bad = toml::from_str::<Holder>("key = { env = \"\" }").unwrap_err();
        assert!(bad.message().contains("not an environment variable name"));
    }
}
