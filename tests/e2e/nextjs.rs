//! The Next.js example (`examples/nextjs`) in development mode. Saving its pages, its
//! API route and the module that holds the Socket.IO handle reloads them (hot reload),
//! while clients stay connected. What the exporter exports must stay exact through every
//! reload: through admin-ui (`socketio_admin`) and through the app's own route
//! (`http_json`), which loses its handle, and says 0, when the handle is not on
//! `globalThis`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    Clients, Exporter, Scrape, admin_config, collect_lines, eventually, first_line, http_get,
};

const ROUTE: &str = "/api/admin/monitoring/dashboard";

/// A first compile on a busy machine, and each recompile after a save.
const COMPILE: Duration = Duration::from_secs(60);

/// How often the exporters are scraped during the edits.
const SCRAPE_EVERY: Duration = Duration::from_millis(200);

/// A file a developer saves: the first `needle` in it becomes `replacement`, and then
/// `url` answers with `witness` (`{n}` is the number of the save).
struct Edit {
    file: &'static str,
    url: &'static str,
    needle: &'static str,
    replacement: &'static str,
    witness: &'static str,
}

const EDITS: &[Edit] = &[
    Edit {
        file: "app/page.js",
        url: "/",
        needle: "</h1>",
        replacement: " (saved {n})</h1>",
        witness: "(saved {n})</h1>",
    },
    Edit {
        file: "app/dashboard/page.js",
        url: "/dashboard",
        needle: "</h1>",
        replacement: " (saved {n})</h1>",
        witness: "(saved {n})</h1>",
    },
    Edit {
        file: "app/layout.js",
        url: "/",
        needle: "<body>",
        replacement: "<body data-saved=\"{n}\">",
        witness: "data-saved=\"{n}\"",
    },
    Edit {
        file: "app/api/admin/monitoring/dashboard/route.js",
        url: ROUTE,
        needle: "{ serverId:",
        replacement: "{ saved: {n}, serverId:",
        witness: "{\"saved\":{n},",
    },
    // The module behind the handle: a module-level variable there would be reset here.
    Edit {
        file: "lib/socketio.js",
        url: ROUTE,
        needle: "return { engineClients",
        replacement: "return { saved: {n}, engineClients",
        witness: "\"socketio\":{\"saved\":{n},",
    },
];

/// The example's directory with its npm packages (and the test app's, for the clients)
/// installed. Without them the test is skipped, except under CI=true, where a missing
/// dependency is a failure.
fn example_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("examples/nextjs");
    let missing = [
        (dir.join("node_modules/next"), "nextjs"),
        (root.join("tests/app/node_modules/socket.io-client"), "node"),
    ]
    .into_iter()
    .filter(|(package, _)| !package.is_dir())
    .map(|(_, part)| part)
    .collect::<Vec<_>>();
    if missing.is_empty() {
        return Some(dir);
    }
    let missing = format!(
        "npm packages are missing: run scripts/setup {} (scripts/test does)",
        missing.join(" ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{missing}");
    eprintln!("skipped: {missing}");
    None
}

/// `npm run dev` of the example, in its own process group (npm, sh, node).
struct NextDev {
    child: Child,
    addr: SocketAddr,
}

impl NextDev {
    fn start(dir: &Path) -> NextDev {
        let mut child = Command::new("npm")
            .args(["run", "dev", "--silent"])
            .current_dir(dir)
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("SOCKETIO_ADMIN_PASSWORD", "changeit")
            .env_remove("NODE_ENV")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start npm run dev: are Node.js and npm installed?");
        let (lines, _) = collect_lines(child.stdout.take().unwrap());
        let mut app = NextDev {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let ready = first_line(
            &lines,
            COMPILE,
            |line| line.strip_prefix("> Ready on http://").map(str::to_owned),
            || "npm run dev did not print its \"> Ready on\" line".to_owned(),
        );
        let (addr, mode) = ready.split_once(' ').expect("address and mode");
        assert_eq!(
            mode, "(development)",
            "npm run dev runs in development mode"
        );
        app.addr = addr.parse().unwrap();
        app
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `path` answers 200 with `witness` in the body, and returns the body.
    fn get_until(&self, path: &str, witness: &str) -> String {
        eventually(COMPILE, || match http_get(&self.addr, path) {
            Ok((200, body)) if body.contains(witness) => Ok(body),
            Ok((status, body)) => Err(format!("GET {path}: {status}, no {witness:?} in {body}")),
            Err(err) => Err(format!("GET {path}: {err}")),
        })
    }
}

impl Drop for NextDev {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The example's files as they were; written back when dropped, even after a failure.
struct Originals(Vec<(PathBuf, String)>);

impl Originals {
    fn read(dir: &Path) -> Originals {
        Originals(
            EDITS
                .iter()
                .map(|edit| {
                    let path = dir.join(edit.file);
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(
                        text.contains(edit.needle),
                        "{}: no {:?}",
                        edit.file,
                        edit.needle
                    );
                    (path, text)
                })
                .collect(),
        )
    }
}

impl Drop for Originals {
    fn drop(&mut self) {
        for (path, text) in &self.0 {
            let _ = std::fs::write(path, text);
        }
    }
}

/// Exact counts, and a clear message for the bug this guards against: 0 where there are
/// clients.
fn check(scrape: &Scrape, want: &BTreeMap<String, u64>) -> Result<(), String> {
    let got = scrape.connections();
    let zeros: Vec<&String> = want
        .iter()
        .filter(|(namespace, count)| **count > 0 && got.get(*namespace) == Some(&0))
        .map(|(namespace, _)| namespace)
        .collect();
    if !zeros.is_empty() {
        return Err(format!("0 for {zeros:?}, which have clients: {got:?}"));
    }
    if got != *want {
        return Err(format!("{got:?}, expected {want:?}"));
    }
    Ok(())
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

#[test]
fn saving_pages_and_the_api_route_in_dev_mode_keeps_every_count_exact() {
    let Some(dir) = example_dir() else { return };
    let originals = Originals::read(&dir);
    let app = NextDev::start(&dir);
    // The first compile of each page and of the route, before anything is measured.
    for edit in EDITS {
        app.get_until(edit.url, "");
    }

    let mut clients = Clients::start();
    clients.connect_url("c1", &app.url(), &["/", "/chat", "/notifications"]);
    clients.connect_url("c2", &app.url(), &["/chat", "/notifications"]);
    clients.connect_url("c3", &app.url(), &["/notifications"]);
    let sockets = counts(&[("/", 1), ("/chat", 2), ("/notifications", 3)]);

    // Both exporters use their defaults for the server id: the hostname, which is also
    // admin-ui's serverId and the route's serverId.
    let admin = Exporter::start(&admin_config(&app.url(), ""));
    // The route counts every namespace, admin-ui's too, where the other exporter is the
    // one socket. Its timeout covers a recompile after a save; interval + timeout must stay
    // below stale_after.
    let http_json = Exporter::start(&format!(
        r#"environment = "test"
[sync]
interval_secs = 1
stale_after_secs = 8

[[sources]]
type = "http_json"
endpoint = "{}{ROUTE}"
interval_secs = 0.5
timeout_secs = 5
namespaces_pointer = "/socketio/namespaces"
clients_pointer = "/socketio/engineClients"
server_id_pointer = "/serverId""#,
        app.url()
    ));
    let mut with_admin = sockets.clone();
    with_admin.insert("/admin".to_owned(), 1);
    let watched = [
        (&admin, &sockets, "socketio_admin"),
        (&http_json, &with_admin, "http_json"),
    ];
    for (exporter, want, source) in watched {
        eventually(Duration::from_secs(20), || {
            check(&exporter.scrape(), want).map_err(|e| format!("{source}: {e}"))
        });
    }

    let editing = AtomicBool::new(true);
    let (scrapes, bad) = thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let start = Instant::now();
            let (mut scrapes, mut bad) = (0, Vec::new());
            while editing.load(Ordering::Relaxed) {
                for (exporter, want, source) in watched {
                    scrapes += 1;
                    if let Err(e) = check(&exporter.scrape(), want) {
                        bad.push(format!("{source} at {:.1?}: {e}", start.elapsed()));
                    }
                }
                thread::sleep(SCRAPE_EVERY);
            }
            (scrapes, bad)
        });
        for n in 1..=2 {
            let n = n.to_string();
            for (edit, (path, original)) in EDITS.iter().zip(&originals.0) {
                let saved = original.replacen(edit.needle, &edit.replacement.replace("{n}", &n), 1);
                std::fs::write(path, saved).unwrap();
                app.get_until(edit.url, &edit.witness.replace("{n}", &n));
            }
        }
        // One more admin-ui stats period and several route polls after the last reload.
        thread::sleep(Duration::from_secs(3));
        editing.store(false, Ordering::Relaxed);
        watcher.join().unwrap()
    });

    assert!(
        bad.is_empty(),
        "{} of {scrapes} scrapes during the edits were not exact:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(scrapes >= 20, "only {scrapes} scrapes during the edits");
    for (exporter, _, source) in watched {
        assert_eq!(exporter.scrape().source_up(source), Some(1.0), "{source}");
    }
    // The route itself still sees the server after the reloads.
    let body = app.get_until(ROUTE, "\"/chat\":2");
    assert!(body.contains("\"/notifications\":3"), "{body}");
}
