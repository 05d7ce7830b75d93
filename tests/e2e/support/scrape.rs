//! A parser for the text exposition format, enough to find samples by name and labels.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                parse_sample(line).unwrap_or_else(|| panic!("unparsable sample line {line:?}"))
            })
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the sample with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// `websocket_connections` per namespace, for series without a `server` label.
    pub fn connections(&self) -> BTreeMap<String, u64> {
        self.series("websocket_connections")
            .into_iter()
            .filter(|s| !s.labels.contains_key("server"))
            .map(|s| (s.labels["namespace"].clone(), s.value as u64))
            .collect()
    }

    pub fn source_up(&self, source: &str) -> Option<f64> {
        self.value("socketio_exporter_source_up", &[("source", source)])
    }

    pub fn errors(&self, source: &str, reason: &str) -> f64 {
        self.value(
            "socketio_exporter_source_errors_total",
            &[("reason", reason), ("source", source)],
        )
        .unwrap_or_else(|| panic!("no errors counter for {source}/{reason}"))
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name_end, has_labels) = match line.find(['{', ' ']) {
        Some(i) => (i, line.as_bytes()[i] == b'{'),
        None => return None,
    };
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if has_labels {
        rest = &rest[1..];
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.insert(key.to_owned(), value);
            rest = after[end + 1..].trim_start_matches(',');
        }
    }
    let value = rest.trim().split(' ').next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[test]
fn parses_escaped_label_values() {
    let scrape = Scrape::parse("# HELP x y\nx{a=\"q\\\"b\\\\s\\nn\",b=\"\"} 2\ny 1.5\n");
    assert_eq!(
        scrape.value("x", &[("a", "q\"b\\s\nn"), ("b", "")]),
        Some(2.0)
    );
    assert_eq!(scrape.value("y", &[]), Some(1.5));
}
