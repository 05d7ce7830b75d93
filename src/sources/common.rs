//! The keys every `[[sources]]` table has, whatever its type: name, scope, server id and
//! the namespace rules.

use serde::Deserialize;

use crate::config::problems::At;
use crate::namespaces::{NamespaceRules, RawGroup};

/// Keys every source has, whatever its type.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommon {
    /// The `source` label on self-metrics; the type name by default.
    pub name: Option<String>,
    /// `local` (default) or `cluster`.
    scope: Option<RawScope>,
    /// This host's admin-ui server id; the hostname by default.
    server_id: Option<String>,
    /// The environment variable that holds `server_id`.
    server_id_env: Option<String>,
    /// Namespace values per server before the rest fold into `__other__`.
    max_namespaces: Option<i64>,
    #[serde(default)]
    namespace_groups: Vec<RawGroup>,
}

/// The keys of [`RawCommon`], to split them from the type's own keys.
pub(crate) const COMMON_KEYS: [&str; 6] = [
    "name",
    "scope",
    "server_id",
    "server_id_env",
    "max_namespaces",
    "namespace_groups",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawScope {
    Local,
    Cluster,
}

/// Which of the servers whose counts arrive are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Only this exporter's own server: the one whose `serverId` is `server_id`, or
    /// `server_id#<pid>` for Node cluster workers on the same host.
    Local { server_id: String },
    /// Every server, each with a `server` label.
    Cluster,
}

impl Scope {
    /// Whether counts from `server_id` belong to this scope.
    pub fn includes(&self, server_id: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Local { server_id: own } => match server_id.strip_prefix(own.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('#'),
                None => false,
            },
        }
    }

    /// Whether counts reported under `server_id` belong to this scope: `None` (a report
    /// without an id, or with an empty one) is `own`, the source's own server.
    pub fn includes_reported(&self, server_id: Option<&str>, own: &str) -> bool {
        self.includes(server_id.unwrap_or(own))
    }
}

/// The common keys, validated.
pub(crate) struct Common {
    pub scope: Scope,
    /// The server that counts without a server id are attributed to.
    pub own_server_id: String,
    pub namespaces: NamespaceRules,
}

impl RawCommon {
    pub(crate) fn validate(self, at: &mut At<'_>) -> Common {
        let own_server_id = self.own_server_id(at);
        let scope = match self.scope.unwrap_or(RawScope::Local) {
            RawScope::Local => Scope::Local {
                server_id: own_server_id.clone(),
            },
            RawScope::Cluster => Scope::Cluster,
        };
        Common {
            scope,
            own_server_id,
            namespaces: NamespaceRules::validate(self.max_namespaces, self.namespace_groups, at),
        }
    }

    /// The admin-ui server id of this host: `server_id`, else the variable `server_id_env`,
    /// else the hostname (admin-ui's own default, and the pod name in Kubernetes).
    fn own_server_id(&self, at: &mut At<'_>) -> String {
        match (&self.server_id, &self.server_id_env) {
            (Some(_), Some(_)) => {
                at.add(
                    "server_id",
                    "set either server_id or server_id_env, not both",
                );
                String::new()
            }
            (Some(id), None) => {
                if id.is_empty() {
                    at.add("server_id", "must not be empty");
                }
                id.clone()
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(id) if !id.is_empty() => id,
                _ => {
                    at.add(
                        "server_id_env",
                        format!("environment variable {var} is not set or empty"),
                    );
                    String::new()
                }
            },
            (None, None) => gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_scope_matches_own_id_and_its_cluster_workers_only() {
        let scope = Scope::Local {
            server_id: "pod-a".into(),
        };
        assert!(scope.includes("pod-a"));
        assert!(scope.includes("pod-a#4242"));
        assert!(!scope.includes("pod-ab"));
        assert!(!scope.includes("pod-b"));
        assert!(Scope::Cluster.includes("anything"));
        // A report without a server id is the own server's, in either scope.
        assert!(scope.includes_reported(None, "pod-a"));
        assert!(!scope.includes_reported(Some("pod-b"), "pod-a"));
        assert!(Scope::Cluster.includes_reported(None, "this-host"));
    }
}
