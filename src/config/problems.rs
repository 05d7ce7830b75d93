//! Problems found while validating the configuration, each at its key path, so that one
//! run of `--check-config` shows everything that needs fixing.

use std::fmt;
use std::time::Duration;

/// One thing wrong with the configuration, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The problems found so far. Validation goes on after a problem, with a placeholder
/// value, so that every problem is found in one pass.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A positive, finite number of seconds, or `default` when the key is absent.
    pub fn seconds(&mut self, path: &str, value: Option<f64>, default: f64) -> Duration {
        let secs = value.unwrap_or(default);
        if secs.is_finite() && secs > 0.0 && secs < 1e9 {
            Duration::from_secs_f64(secs)
        } else {
            self.add(
                path,
                format!("must be a positive number of seconds, got {secs}"),
            );
            Duration::from_secs_f64(default)
        }
    }

    /// An integer in `1..=max`, or `default` when the key is absent.
    pub fn count(&mut self, path: &str, value: Option<i64>, default: i64, max: i64) -> usize {
        let n = value.unwrap_or(default);
        match usize::try_from(n) {
            Ok(count) if (1..=max).contains(&n) => count,
            _ => {
                self.add(path, format!("must be between 1 and {max}, got {n}"));
                usize::try_from(default).unwrap_or(1)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// The key paths below one table, e.g. `sources[2]`, and the problems found there.
pub struct At<'a> {
    pub path: &'a str,
    pub problems: &'a mut Problems,
}

impl At<'_> {
    /// The path of `key` in this table.
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// A problem with `key` of this table.
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        let path = self.key(key);
        self.problems.add(path, message);
    }

    pub fn seconds(&mut self, key: &str, value: Option<f64>, default: f64) -> Duration {
        let path = self.key(key);
        self.problems.seconds(&path, value, default)
    }

    pub fn count(&mut self, key: &str, value: Option<i64>, default: i64, max: i64) -> usize {
        let path = self.key(key);
        self.problems.count(&path, value, default, max)
    }
}
