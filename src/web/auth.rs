//! Basic auth from the web config's `basic_auth_users`, checked as exporter-toolkit does:
//! bcrypt in constant time, an unknown user costs as much as a known one, and a cache of
//! outcomes keyed on a digest of user, hash and password so that a scrape does not pay a
//! bcrypt (~70 ms at cost 10) every time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use hyper::header::HeaderValue;

/// The toolkit's hash of "fakepassword", checked for unknown users so that timing does
/// not tell which users exist.
const FAKE_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
/// The toolkit's cache size; a tenth goes when it is full.
const CACHE_SIZE: usize = 100;

type Digest = [u8; 32];

/// Checks credentials; one per process, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct BasicAuth {
    cache: Mutex<HashMap<Digest, bool>>,
    /// One bcrypt at a time: it is CPU work, and a flood of wrong passwords must not
    /// take more than one core from the app.
    bcrypt: tokio::sync::Mutex<()>,
}

impl BasicAuth {
    /// Whether `authorization` names one of `users` with its password.
    pub(crate) async fn allows(
        &self,
        users: &BTreeMap<String, String>,
        authorization: Option<&HeaderValue>,
    ) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let known = users.get(&user);
        let hash = known.map_or(FAKE_HASH, String::as_str).to_owned();
        let key = digest(&user, &hash, &password);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
        let matches = match cached {
            Some(matches) => matches,
            None => {
                let _one = self.bcrypt.lock().await;
                let matches = tokio::task::spawn_blocking(move || {
                    // Like Go's bcrypt: a password over 72 bytes is an error, not truncated.
                    bcrypt::non_truncating_verify(password.as_bytes(), &hash).unwrap_or(false)
                })
                .await
                .unwrap_or(false);
                self.remember(key, matches);
                matches
            }
        };
        matches && known.is_some()
    }

    fn remember(&self, key: Digest, matches: bool) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_SIZE {
            for _ in 0..CACHE_SIZE / 10 {
                let victim = cache.keys().nth(fastrand::usize(..cache.len())).copied();
                if let Some(victim) = victim {
                    cache.remove(&victim);
                }
            }
        }
        cache.insert(key, matches);
    }
}

/// User and password of an `Authorization: Basic` header.
fn credentials(header: &HeaderValue) -> Option<(String, String)> {
    let encoded = header.to_str().ok()?;
    let (scheme, encoded) = encoded.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// SHA-256 over the three parts, each length-prefixed so that no two triples collide.
fn digest(user: &str, hash: &str, password: &str) -> Digest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes_and_outcomes_are_cached() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = BTreeMap::from([("alice".to_owned(), hash)]);
        let auth = BasicAuth::default();
        assert!(auth.allows(&users, Some(&basic("alice", "s3cret"))).await);
        assert!(!auth.allows(&users, Some(&basic("alice", "wrong"))).await);
        assert!(!auth.allows(&users, Some(&basic("bob", "s3cret"))).await);
        assert!(!auth.allows(&users, None).await);
        assert!(
            !auth
                .allows(&users, Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
        assert_eq!(auth.cache.lock().unwrap().len(), 3);
        // A cached outcome answers again, and the same.
        assert!(auth.allows(&users, Some(&basic("alice", "s3cret"))).await);
        assert_eq!(auth.cache.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_changed_hash_is_not_answered_from_the_cache() {
        let auth = BasicAuth::default();
        let old = BTreeMap::from([("alice".to_owned(), bcrypt::hash("old", 4).unwrap())]);
        let new = BTreeMap::from([("alice".to_owned(), bcrypt::hash("new", 4).unwrap())]);
        assert!(auth.allows(&old, Some(&basic("alice", "old"))).await);
        assert!(!auth.allows(&new, Some(&basic("alice", "old"))).await);
        assert!(auth.allows(&new, Some(&basic("alice", "new"))).await);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let auth = BasicAuth::default();
        for i in 0..1000u32 {
            auth.remember(digest("u", "h", &i.to_string()), false);
        }
        assert!(auth.cache.lock().unwrap().len() <= CACHE_SIZE);
    }
}
