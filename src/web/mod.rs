//! What every listener shares on the way to the routes: TLS, basic auth and extra
//! response headers from the web config file (`--web.config.file`, exporter-toolkit's
//! format), the cached `/metrics` body and the landing page.
//!
//! Like the toolkit, which re-reads the file on every request, certificates, keys and
//! users change without a restart: each connection and request looks at the files'
//! metadata, and only a change makes it read them again. A change that does not load
//! is logged once and the running setup stays; TLS itself cannot be switched on or off
//! without a restart.

pub(crate) mod auth;
pub(crate) mod landing;
pub(crate) mod scrape;
pub(crate) mod tls;
pub(crate) mod web_config;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;

use self::auth::BasicAuth;
use self::tls::TlsError;
use self::web_config::{WebConfig, WebConfigError};

/// Why the web config could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    #[error(transparent)]
    Config(#[from] WebConfigError),
    #[error("web config file {}: tls_server_config: {source}", path.display())]
    Tls { path: PathBuf, source: TlsError },
}

/// The web config in force, for one connection or request.
pub(crate) struct Loaded {
    /// TLS for new connections, when on.
    pub tls: Option<Arc<ServerConfig>>,
    /// User → bcrypt hash; empty: no basic auth.
    pub users: BTreeMap<String, String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A file's identity and version; `None` when it cannot be read.
type Stamp = Option<(SystemTime, u64, u64)>;

struct Current {
    /// The web config file, then the certificate files it names.
    files: Vec<PathBuf>,
    stamps: Vec<Stamp>,
    /// When `stamps` were last compared with the files.
    checked: Option<Instant>,
    loaded: Arc<Loaded>,
}

/// The files are stat'ed at most this often, not at every request: a rotated certificate
/// or password applies within it.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The web layer: one per process, shared by every listener.
pub(crate) struct Web {
    path: Option<PathBuf>,
    current: Mutex<Current>,
    pub auth: BasicAuth,
}

impl Web {
    /// No web config file: plain HTTP, no basic auth, no extra headers.
    pub(crate) fn open() -> Web {
        let loaded = Loaded {
            tls: None,
            users: BTreeMap::new(),
            headers: Vec::new(),
        };
        Web {
            path: None,
            current: Mutex::new(Current {
                files: Vec::new(),
                stamps: Vec::new(),
                checked: None,
                loaded: Arc::new(loaded),
            }),
            auth: BasicAuth::default(),
        }
    }

    /// Loads the web config file and everything it names; errors stop the start.
    pub(crate) fn load(path: &Path) -> Result<Web, WebError> {
        let (loaded, files) = build(path, WebConfig::load(path)?)?;
        Ok(Web {
            path: Some(path.to_owned()),
            current: Mutex::new(Current {
                stamps: stamps(&files),
                files,
                checked: Some(Instant::now()),
                loaded: Arc::new(loaded),
            }),
            auth: BasicAuth::default(),
        })
    }

    /// Whether the listeners speak TLS (fixed at start).
    pub(crate) fn is_tls(&self) -> bool {
        self.current().tls.is_some()
    }

    /// The web config in force, read again first if one of its files changed (looked at
    /// once every [`CHECK_EVERY`] at most, so a scrape does not stat files).
    pub(crate) fn current(&self) -> Arc<Loaded> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(path) = &self.path else {
            return current.loaded.clone();
        };
        if current.checked.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return current.loaded.clone();
        }
        current.checked = Some(Instant::now());
        let now = stamps(&current.files);
        if now == current.stamps {
            return current.loaded.clone();
        }
        // Taken before reading: a change during the read is seen next time. A file that
        // does not load is reported once, not at every request.
        current.stamps = now;
        match WebConfig::load(path)
            .map_err(WebError::from)
            .and_then(|config| build(path, config))
        {
            Ok((loaded, _)) if loaded.tls.is_some() != current.loaded.tls.is_some() => {
                tracing::warn!(
                    "web config file {}: TLS cannot be switched on or off without a restart; \
                     keeping the running web config",
                    path.display()
                );
            }
            Ok((loaded, files)) => {
                tracing::info!(file = %path.display(), "web config reloaded");
                current.stamps = stamps(&files);
                current.files = files;
                current.loaded = Arc::new(loaded);
            }
            Err(e) => tracing::warn!("{e}; keeping the running web config"),
        }
        current.loaded.clone()
    }
}

/// Builds TLS from the web config at `path`; returns what it loaded and the files it read.
fn build(path: &Path, config: WebConfig) -> Result<(Loaded, Vec<PathBuf>), WebError> {
    let mut files = vec![path.to_owned()];
    let tls = match &config.tls {
        Some(settings) => {
            files.extend(settings.files().map(Path::to_owned));
            let server = tls::server_config(settings).map_err(|source| WebError::Tls {
                path: path.to_owned(),
                source,
            })?;
            Some(Arc::new(server))
        }
        None => None,
    };
    let loaded = Loaded {
        tls,
        users: config.users,
        headers: config.headers,
    };
    Ok((loaded, files))
}

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(file).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

/// `--check-config` for the web config file: the file and the certificates it names.
/// Returns a summary for the user.
pub fn check(path: &Path) -> Result<String, String> {
    let config = WebConfig::load(path).map_err(|e| e.to_string())?;
    let mut out = format!("web config: {}", path.display());
    match &config.tls {
        Some(settings) => {
            let _ = write!(
                out,
                "\n  tls: on, client certificates: {:?}",
                settings.client_auth
            );
        }
        None => out.push_str("\n  tls: off"),
    }
    let _ = write!(
        out,
        "\n  basic auth: {} user(s)\n  extra headers: {}",
        config.users.len(),
        config.headers.len()
    );
    build(path, config).map_err(|e| e.to_string())?;
    Ok(out)
}
