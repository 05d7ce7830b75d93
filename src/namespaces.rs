//! Cardinality control: namespace grouping and the per-server cap.
//!
//! Dynamic namespaces (`io.of(/^\/tenant-\d+$/)`) can make one namespace per tenant. Every
//! count passes through [`NamespaceRules::fold`] as it arrives, so neither the exported
//! series nor the exporter's memory grow past `max_namespaces` per server, whatever the
//! app sends.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::problems::At;

/// The namespace value that namespaces beyond `max_namespaces` are summed into.
pub(crate) const OVERFLOW_NAMESPACE: &str = "__other__";
/// Namespace values per server unless `max_namespaces` says otherwise.
const DEFAULT_MAX_NAMESPACES: i64 = 1000;
/// The largest `max_namespaces` accepted: memory grows with it.
const MAX_MAX_NAMESPACES: i64 = 100_000;

/// Cardinality control, applied to every server's counts as they arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceRules {
    /// Namespaces matching a pattern are renamed to its replacement and summed; the first
    /// matching group wins.
    pub groups: Vec<NamespaceGroup>,
    /// At most this many namespace values per server; the rest fold into [`OVERFLOW_NAMESPACE`].
    pub max: usize,
}

#[derive(Debug, Clone)]
pub struct NamespaceGroup {
    pub pattern: regex::Regex,
    /// The replacement, with `$1`-style references to the pattern's groups.
    pub replace: String,
}

/// `Regex` has no equality: two groups are equal when written the same.
impl PartialEq for NamespaceGroup {
    fn eq(&self, other: &NamespaceGroup) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.replace == other.replace
    }
}

/// A server's counts after the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    pub namespaces: BTreeMap<String, u64>,
    /// How many namespace values were summed into [`OVERFLOW_NAMESPACE`].
    pub folded: usize,
}

/// One `namespace_groups` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pattern: String,
    replace: String,
}

impl NamespaceRules {
    /// The rules from a source's `max_namespaces` and `namespace_groups` keys.
    pub fn validate(max: Option<i64>, groups: Vec<RawGroup>, at: &mut At<'_>) -> NamespaceRules {
        let max = at.count(
            "max_namespaces",
            max,
            DEFAULT_MAX_NAMESPACES,
            MAX_MAX_NAMESPACES,
        );
        let groups = groups
            .into_iter()
            .enumerate()
            .filter_map(
                |(j, RawGroup { pattern, replace })| match regex::Regex::new(&pattern) {
                    Ok(pattern) => Some(NamespaceGroup { pattern, replace }),
                    Err(e) => {
                        at.add(
                            &format!("namespace_groups[{j}].pattern"),
                            format!("not a valid regular expression: {e}"),
                        );
                        None
                    }
                },
            )
            .collect();
        NamespaceRules { groups, max }
    }

    /// The namespace value a name is exported under: the first matching group's replacement,
    /// or the name itself.
    pub fn group<'a>(&self, name: &'a str) -> Cow<'a, str> {
        for group in &self.groups {
            if group.pattern.is_match(name) {
                return group.pattern.replace(name, group.replace.as_str());
            }
        }
        Cow::Borrowed(name)
    }

    /// Groups and caps one server's report. Over the cap, the largest namespaces keep their
    /// own series (ties by name) and the rest are summed into [`OVERFLOW_NAMESPACE`], so the
    /// total stays exact.
    pub fn fold(&self, report: Vec<(String, u64)>) -> Folded {
        let mut namespaces: BTreeMap<String, u64> = BTreeMap::new();
        for (name, count) in report {
            let name = match self.group(&name) {
                Cow::Borrowed(_) => name,
                Cow::Owned(grouped) => grouped,
            };
            *namespaces.entry(name).or_default() += count;
        }
        if namespaces.len() <= self.max {
            return Folded {
                namespaces,
                folded: 0,
            };
        }
        let mut ranked: Vec<(String, u64)> = namespaces.into_iter().collect();
        ranked.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
        let overflow = ranked.split_off(self.max - 1);
        let folded = overflow.len();
        let mut namespaces: BTreeMap<String, u64> = ranked.into_iter().collect();
        *namespaces.entry(OVERFLOW_NAMESPACE.to_owned()).or_default() +=
            overflow.iter().map(|(_, count)| count).sum::<u64>();
        Folded { namespaces, folded }
    }

    /// The key a connection event for `name` moves in `namespaces`: its group, or the
    /// overflow value when a new name would break the cap.
    pub fn event_key(&self, namespaces: &BTreeMap<String, u64>, name: &str) -> String {
        let grouped = self.group(name);
        if namespaces.contains_key(grouped.as_ref()) || namespaces.len() + 1 < self.max {
            grouped.into_owned()
        } else {
            OVERFLOW_NAMESPACE.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max: usize, groups: &[(&str, &str)]) -> NamespaceRules {
        NamespaceRules {
            groups: groups
                .iter()
                .map(|(p, r)| NamespaceGroup {
                    pattern: regex::Regex::new(p).unwrap(),
                    replace: (*r).to_owned(),
                })
                .collect(),
            max,
        }
    }

    fn report(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn groups_sum_matching_namespaces() {
        let rules = rules(100, &[(r"^/tenant-\d+$", "/tenant-*")]);
        let folded = rules.fold(report(&[("/", 1), ("/tenant-1", 2), ("/tenant-22", 3)]));
        assert_eq!(
            folded.namespaces,
            BTreeMap::from([("/".into(), 1), ("/tenant-*".into(), 5)])
        );
        assert_eq!(folded.folded, 0);
    }

    #[test]
    fn replacement_can_use_capture_groups() {
        let rules = rules(100, &[(r"^/(\w+)-\d+$", "/$1-*")]);
        assert_eq!(rules.group("/room-7"), "/room-*");
        assert_eq!(rules.group("/chat"), "/chat");
    }

    #[test]
    fn over_the_cap_the_largest_stay_and_the_rest_sum_into_overflow() {
        let rules = rules(3, &[]);
        let folded = rules.fold(report(&[
            ("/a", 1),
            ("/b", 9),
            ("/c", 5),
            ("/d", 1),
            ("/e", 2),
        ]));
        assert_eq!(
            folded.namespaces,
            BTreeMap::from([
                ("/b".into(), 9),
                ("/c".into(), 5),
                (OVERFLOW_NAMESPACE.into(), 4)
            ])
        );
        assert_eq!(folded.folded, 3);
        assert_eq!(
            folded.namespaces.values().sum::<u64>(),
            18,
            "the total stays exact"
        );
    }

    #[test]
    fn ten_thousand_dynamic_namespaces_stay_within_the_cap() {
        let rules = rules(100, &[]);
        let many: Vec<(String, u64)> = (0..10_000).map(|i| (format!("/t-{i}"), 1)).collect();
        let folded = rules.fold(many);
        assert_eq!(folded.namespaces.len(), 100);
        assert_eq!(folded.folded, 9_901);
        assert_eq!(folded.namespaces[OVERFLOW_NAMESPACE], 9_901);
    }

    #[test]
    fn events_for_new_names_overflow_at_the_cap() {
        let rules = rules(3, &[(r"^/t-\d+$", "/t-*")]);
        let mut namespaces = BTreeMap::from([("/a".to_owned(), 1)]);
        assert_eq!(rules.event_key(&namespaces, "/t-5"), "/t-*");
        namespaces.insert("/t-*".into(), 1);
        assert_eq!(
            rules.event_key(&namespaces, "/t-6"),
            "/t-*",
            "existing group"
        );
        assert_eq!(rules.event_key(&namespaces, "/new"), OVERFLOW_NAMESPACE);
    }
}
