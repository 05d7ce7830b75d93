//! Records the git revision for `socketio_exporter_build_info{revision}`.
//! `SOCKETIO_EXPORTER_REVISION` overrides it (image builds have no `.git`).
//! Links the binary with packed relative relocations where the C library loads them.

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
    if pack_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether to link with packed relative relocations (DT_RELR): the dynamic loader then
/// applies a few KiB of them at start instead of reading half a MiB of `.rela.dyn`, whose
/// pages stay resident (0.8 MiB less RSS, README "Performance"). glibc 2.36 is the first
/// to load them, so only when building on and for such a glibc; the image's static musl
/// build is left alone. `SOCKETIO_EXPORTER_PORTABLE=1` builds a binary for older glibc.
fn pack_relocations() -> bool {
    println!("cargo:rerun-if-env-changed=SOCKETIO_EXPORTER_PORTABLE");
    let var = |key| std::env::var(key).unwrap_or_default();
    if var("SOCKETIO_EXPORTER_PORTABLE") == "1"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("TARGET") != var("HOST")
    {
        return false;
    }
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&output.stdout);
    let mut version = text
        .trim()
        .strip_prefix("glibc ")
        .unwrap_or_default()
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major_minor = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    major_minor >= (2, 36)
}

fn git_revision() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let revision = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !revision.is_empty()).then_some(revision)
}
