//! Secrets in the configuration: given inline, by environment variable (`<key>_env`) or by
//! file (`<key>_file`); read when needed and never printed.

use std::fmt;
use std::path::PathBuf;

use super::problems::At;
use crate::regular_file;

/// A secret file larger than this is not a secret (and not read).
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// Where a secret comes from. Its value is read when needed and never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// Reads the secret's current value. Files are re-read on every call, so a rotated
    /// Kubernetes Secret is picked up at the next reconnect.
    pub fn read(&self) -> Result<String, SecretError> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::Env(var) => std::env::var(var).map_err(|_| SecretError::EnvUnset(var.clone())),
            Secret::File(path) => {
                let error = |reason: String| SecretError::File {
                    path: path.clone(),
                    reason,
                };
                let bytes =
                    regular_file::read(path, MAX_SECRET_BYTES).map_err(|e| error(e.brief()))?;
                let text = String::from_utf8(bytes).map_err(|_| error("not UTF-8".into()))?;
                Ok(text.trim_end_matches(['\r', '\n']).to_owned())
            }
        }
    }

    /// The key suffix this secret was given with.
    fn suffix(&self) -> &'static str {
        match self {
            Secret::Inline(_) => "",
            Secret::Env(_) => "_env",
            Secret::File(_) => "_file",
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

/// Says where the secret comes from, never what it is.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("inline (redacted)"),
            Secret::Env(var) => write!(f, "from environment variable {var}"),
            Secret::File(path) => write!(f, "from file {}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("cannot read {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// A username and its password, for basic auth or the admin-ui login.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {:?}, password {}", self.username, self.password)
    }
}

/// The three keys a secret can be given with, as written: `<key>`, `<key>_env`, `<key>_file`.
#[derive(Debug, Default)]
pub(crate) struct RawSecret {
    pub inline: Option<String>,
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl RawSecret {
    /// At most one of `<key>`, `<key>_env`, `<key>_file`; the variable must be set and the
    /// file readable now, so that `--check-config` catches a missing secret before deploy.
    pub(crate) fn validate(self, key: &str, at: &mut At<'_>) -> Option<Secret> {
        let given: Vec<Secret> = [
            self.inline.map(Secret::Inline),
            self.env.map(Secret::Env),
            self.file.map(Secret::File),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            at.add(
                key,
                format!("set only one of {key}, {key}_env and {key}_file"),
            );
            return given.into_iter().next();
        }
        let secret = given.into_iter().next()?;
        if let Err(e) = secret.read() {
            at.add(&format!("{key}{}", secret.suffix()), e.to_string());
        }
        Some(secret)
    }
}

/// Basic auth from `username` and `password` / `password_env` / `password_file`: a
/// username and a password come together or not at all.
pub(crate) fn credentials(
    username: Option<String>,
    password: RawSecret,
    at: &mut At<'_>,
) -> Option<Credentials> {
    match (username, password.validate("password", at)) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        (None, None) => None,
        (Some(_), None) => {
            at.add(
                "username",
                "is set but no password is: add password_env or password_file (or password)",
            );
            None
        }
        (None, Some(_)) => {
            at.add(
                "username",
                "missing: basic auth needs a username with the password",
            );
            None
        }
    }
}
