//! The dashboard as Grafana reads it: panels, their targets, the template variables, and
//! how Grafana interpolates a selection of variables into a query.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{DASHBOARD, RATE_INTERVAL, SCRAPE_INTERVAL, read};

pub(super) fn load_dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// Every panel, rows included, and the panels inside collapsed rows.
pub(super) fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) panel: String,
    pub(super) ref_id: String,
    pub(super) expr: String,
    pub(super) instant: bool,
}

impl Target {
    /// The target of a panel's JSON.
    pub(super) fn of(panel_title: &str, target: &Value) -> Target {
        Target {
            panel: panel_title.to_owned(),
            ref_id: target["refId"].as_str().unwrap_or("").to_owned(),
            expr: target["expr"].as_str().unwrap_or("").to_owned(),
            instant: target["instant"] == true,
        }
    }

    pub(super) fn is(&self, (panel, ref_id): (&str, &str)) -> bool {
        self.panel == panel && self.ref_id == ref_id
    }
}

pub(super) fn targets(dashboard: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("");
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(Target::of(title, target));
        }
    }
    out
}

pub(super) fn target<'a>(targets: &'a [Target], panel: &str, ref_id: &str) -> &'a Target {
    targets
        .iter()
        .find(|t| t.is((panel, ref_id)))
        .unwrap_or_else(|| panic!("the dashboard has no panel {panel:?} with target {ref_id}"))
}

/// A `label_values(selector, label)` query variable.
#[derive(Debug, Clone)]
pub(super) struct Variable {
    pub(super) name: String,
    pub(super) selector: String,
    pub(super) label: String,
    pub(super) all_value: String,
}

pub(super) fn parse_label_values(query: &str) -> Option<(String, String)> {
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_owned(), label.trim().to_owned()))
}

pub(super) fn variables(dashboard: &Value) -> Vec<Variable> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"].as_str().unwrap_or("");
            let (selector, label) = parse_label_values(query).unwrap_or_else(|| {
                panic!("variable {}: not label_values(...): {query}", v["name"])
            });
            Variable {
                name: v["name"].as_str().unwrap().to_owned(),
                selector,
                label,
                all_value: v["allValue"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect()
}

// Grafana's variable interpolation, for what the tests select.

/// What the dashboard user picked for each variable; unnamed variables are All.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    picked: BTreeMap<String, Vec<String>>,
    range: Duration,
}

impl Selection {
    pub(super) fn all(range: Duration) -> Selection {
        Selection {
            picked: BTreeMap::new(),
            range,
        }
    }

    pub(super) fn pick(mut self, name: &str, values: &[&str]) -> Selection {
        self.picked.insert(
            name.to_owned(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        self
    }

    /// What Grafana substitutes for `$name`: a macro, or a variable as selected.
    fn value_of(&self, name: &str, variables: &[Variable]) -> Option<String> {
        match name {
            "__rate_interval" => Some(RATE_INTERVAL.to_owned()),
            "__interval" => Some(format!("{}s", SCRAPE_INTERVAL.as_secs())),
            "__range" => Some(format!("{}s", self.range.as_secs().max(1))),
            _ => {
                let variable = variables.iter().find(|v| v.name == name)?;
                Some(match self.picked.get(name) {
                    None => variable.all_value.clone(),
                    Some(values) if values.len() == 1 => regex_escape(&values[0]),
                    Some(values) => format!(
                        "({})",
                        values
                            .iter()
                            .map(|v| regex_escape(v))
                            .collect::<Vec<_>>()
                            .join("|")
                    ),
                })
            }
        }
    }
}

/// Escapes a value of a multi-value variable for a regex inside a PromQL string, as
/// Grafana's Prometheus datasource does (prometheusSpecialRegexEscape, with double quotes
/// escaped as under its prometheusSpecialCharsInLabelValues toggle).
fn regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// Substitutes variables and Grafana's macros in `text`. An unknown `$name` is an error.
pub(super) fn interpolate(
    text: &str,
    variables: &[Variable],
    selection: &Selection,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = selection
            .value_of(name, variables)
            .ok_or_else(|| format!("unknown variable ${name} in {text}"))?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}
