//! `/metrics` bodies, rendered and compressed at most once per published snapshot, so a
//! scrape costs a lookup. Counted self-metrics (errors, reloads) show at once; the process
//! metrics are refreshed at most once a second.
//! gzip when the scraper accepts it, as Prometheus does.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, VARY,
};
use tokio::time::Instant;

use crate::sinks::prometheus;
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;

/// How long a body may carry the same self-metrics (process CPU and memory, error
/// counters) when no new snapshot came.
const SELF_METRICS_REFRESH: Duration = Duration::from_secs(1);

struct Rendered {
    /// Held so that the pointer compared cannot be reused by a later snapshot.
    snapshot: Arc<Snapshot>,
    /// The self-metrics' change count it was rendered at.
    changes: u64,
    at: Instant,
    text: Bytes,
    gzip: Option<Bytes>,
}

/// The last rendered body.
#[derive(Default)]
pub(crate) struct ScrapeCache {
    last: Mutex<Option<Rendered>>,
}

impl ScrapeCache {
    /// The `/metrics` answer for `snapshot`: gzip when `request` accepts it.
    pub(crate) fn response(
        &self,
        request: &HeaderMap,
        snapshot: Arc<Snapshot>,
        telemetry: &Telemetry,
    ) -> Response<Full<Bytes>> {
        let gzip = accepts_gzip(request);
        let body = self.body(snapshot, telemetry, gzip);
        let mut response = Response::new(Full::new(body));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(prometheus::CONTENT_TYPE),
        );
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }

    fn body(&self, snapshot: Arc<Snapshot>, telemetry: &Telemetry, gzip: bool) -> Bytes {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let changes = telemetry.changes();
        let fresh = last.as_ref().is_some_and(|r| {
            Arc::ptr_eq(&r.snapshot, &snapshot)
                && r.changes == changes
                && r.at.elapsed() < SELF_METRICS_REFRESH
        });
        if !fresh {
            let text = Bytes::from(prometheus::render(&snapshot, telemetry));
            *last = Some(Rendered {
                snapshot,
                changes,
                at: Instant::now(),
                text,
                gzip: None,
            });
        }
        let rendered = last.as_mut().expect("rendered above");
        if !gzip {
            return rendered.text.clone();
        }
        rendered
            .gzip
            .get_or_insert_with(|| compress(&rendered.text))
            .clone()
    }
}

fn compress(text: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a weight above 0.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let weight = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && weight > 0.0
        })
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
        headers
    }

    #[test]
    fn gzip_is_chosen_as_http_says() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("br, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity, br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn one_render_per_snapshot_and_second_and_gzip_decodes_to_the_text() {
        let telemetry = Telemetry::new([]);
        let cache = ScrapeCache::default();
        let snapshot = Arc::new(Snapshot::default());
        let text = cache.body(snapshot.clone(), &telemetry, false);
        let gzip = cache.body(snapshot.clone(), &telemetry, true);
        assert!(text.as_ptr() == cache.body(snapshot.clone(), &telemetry, false).as_ptr());
        assert!(gzip.as_ptr() == cache.body(snapshot.clone(), &telemetry, true).as_ptr());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, text);

        // A new snapshot, or a second later, renders again.
        let next = Arc::new(Snapshot::default());
        assert!(text.as_ptr() != cache.body(next.clone(), &telemetry, false).as_ptr());
        let again = cache.body(next.clone(), &telemetry, false);
        tokio::time::advance(SELF_METRICS_REFRESH).await;
        assert!(again.as_ptr() != cache.body(next, &telemetry, false).as_ptr());
    }
}
