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

/// Namespace names longer than this are summed into [`OVERFLOW_NAMESPACE`]: a label value
/// that long is an app bug or an attack, and Socket.IO namespaces are short paths.
pub(crate) const MAX_NAME_BYTES: usize = 1024;

/// A report whose counts cannot be summed exactly in 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the counts of this report do not sum exactly in 64 bits; refusing it rather than wrapping"
)]
pub struct Unsummable;

fn add(sum: &mut u64, count: u64) -> Result<(), Unsummable> {
    *sum = sum.checked_add(count).ok_or(Unsummable)?;
    Ok(())
}

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
    /// total stays exact. A name longer than [`MAX_NAME_BYTES`] is summed there too. Sums
    /// are checked: a report whose counts cannot be summed exactly is refused.
    pub fn fold(&self, report: Vec<(String, u64)>) -> Result<Folded, Unsummable> {
        let mut too_long = 0;
        // In place, without a map of every name: a report can hold 100 000 of them.
        let mut named: Vec<(String, u64)> = report
            .into_iter()
            .map(|(name, count)| (self.export_name(name, &mut too_long), count))
            .collect();
        named.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        let mut unsummable = false;
        named.dedup_by(|(name, count), (kept, sum)| {
            let same = name == kept;
            if same {
                unsummable |= add(sum, *count).is_err();
            }
            same
        });
        if unsummable {
            return Err(Unsummable);
        }
        let mut folded = too_long;
        if named.len() > self.max {
            let keep = self.max.saturating_sub(1);
            // The largest keep their own series, ties by name.
            named.select_nth_unstable_by(keep, |(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
            folded += named.len() - keep;
            let mut other = 0;
            for (_, count) in named.drain(keep..) {
                add(&mut other, count)?;
            }
            named.push((OVERFLOW_NAMESPACE.to_owned(), other));
        }
        let mut namespaces = BTreeMap::new();
        for (name, count) in named {
            add(namespaces.entry(name).or_default(), count)?;
        }
        Ok(Folded { namespaces, folded })
    }

    /// The name a namespace is exported under: its group's, or the overflow value for a
    /// name longer than [`MAX_NAME_BYTES`] (counted in `too_long`).
    fn export_name(&self, name: String, too_long: &mut usize) -> String {
        if name.len() > MAX_NAME_BYTES {
            *too_long += 1;
            return OVERFLOW_NAMESPACE.to_owned();
        }
        match self.group(&name) {
            Cow::Borrowed(_) => name,
            Cow::Owned(grouped) => grouped,
        }
    }

    /// The key a connection event for `name` moves in `namespaces`: its group, or the
    /// overflow value when the report folded names there. `None` when the report holds
    /// neither: an event never creates a series, since only a report says where it starts.
    pub fn event_key(&self, namespaces: &BTreeMap<String, u64>, name: &str) -> Option<String> {
        let grouped = self.group(name);
        if namespaces.contains_key(grouped.as_ref()) {
            Some(grouped.into_owned())
        } else if namespaces.contains_key(OVERFLOW_NAMESPACE) {
            Some(OVERFLOW_NAMESPACE.to_owned())
        } else {
            None
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
        let folded = rules
            .fold(report(&[("/", 1), ("/tenant-1", 2), ("/tenant-22", 3)]))
            .unwrap();
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
        let folded = rules
            .fold(report(&[
                ("/a", 1),
                ("/b", 9),
                ("/c", 5),
                ("/d", 1),
                ("/e", 2),
            ]))
            .unwrap();
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
        let folded = rules.fold(many).unwrap();
        assert_eq!(folded.namespaces.len(), 100);
        assert_eq!(folded.folded, 9_901);
        assert_eq!(folded.namespaces[OVERFLOW_NAMESPACE], 9_901);
    }

    #[test]
    fn sums_that_would_wrap_are_refused() {
        // Issue 10, repro 2: u64::MAX + 1 used to wrap to a false 0.
        let grouped = rules(100, &[(r"^/t-\d+$", "/t-*")]);
        assert_eq!(
            grouped.fold(report(&[("/t-1", u64::MAX), ("/t-2", 1)])),
            Err(Unsummable)
        );
        let capped = rules(2, &[]);
        assert_eq!(
            capped.fold(report(&[("/a", u64::MAX), ("/b", u64::MAX), ("/c", 1)])),
            Err(Unsummable)
        );
    }

    #[test]
    fn a_one_mebibyte_namespace_name_is_summed_into_overflow() {
        let huge = "/".repeat(1 << 20);
        let folded = rules(100, &[])
            .fold(report(&[(&huge, 3), ("/", 1)]))
            .unwrap();
        assert_eq!(
            folded.namespaces,
            BTreeMap::from([("/".into(), 1), (OVERFLOW_NAMESPACE.into(), 3)])
        );
        assert_eq!(folded.folded, 1);
    }

    #[test]
    fn events_move_only_what_the_report_holds() {
        let rules = rules(3, &[(r"^/t-\d+$", "/t-*")]);
        let mut namespaces = BTreeMap::from([("/a".to_owned(), 1), ("/t-*".to_owned(), 1)]);
        assert_eq!(
            rules.event_key(&namespaces, "/t-6").as_deref(),
            Some("/t-*")
        );
        assert_eq!(
            rules.event_key(&namespaces, "/new"),
            None,
            "no report holds /new"
        );
        namespaces.insert(OVERFLOW_NAMESPACE.into(), 4);
        assert_eq!(
            rules.event_key(&namespaces, "/new").as_deref(),
            Some(OVERFLOW_NAMESPACE),
            "names the report folded"
        );
    }
}
