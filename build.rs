//! Records the git revision for `socketio_exporter_build_info{revision}`.
//! `SOCKETIO_EXPORTER_REVISION` overrides it (image builds have no `.git`).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SOCKETIO_EXPORTER_REVISION");
    for watched in [".git/HEAD", ".git/refs/heads"] {
        if Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let revision = std::env::var("SOCKETIO_EXPORTER_REVISION")
        .ok()
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SOCKETIO_EXPORTER_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let revision = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !revision.is_empty()).then_some(revision)
}
