"""image-context: the Dockerfile's build context (after .dockerignore) builds the
exporter, and the revision reaches build_info."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .common import EXPORTER, ROOT, Report, exporter_env, free_port, http_get

REVISION = "context-check"


def dockerignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as Docker's patternmatcher reads it (anchored at the root;
    `*` and `?` stay within one path element, `**` spans any number)."""
    pattern = os.path.normpath(pattern.strip()).lstrip("/")
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out += "(.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
        i += 1
    return re.compile(out + "$")


def build_context(root: Path, dest: Path, dockerignore: Path) -> list[str]:
    """Copies what `docker build` would send (after .dockerignore) from root to dest."""
    rules = []
    for line in dockerignore.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, dockerignore_regex(line[1:] if negate else line)))

    def excluded(rel: str) -> bool:
        # A path is excluded when it or a parent matches; the last matching rule wins.
        parts = rel.split("/")
        result = False
        for negate, rx in rules:
            if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
                result = not negate
        return result

    copied = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Skip excluded directories unless a negation could bring something back.
        if not any(neg for neg, _ in rules):
            dirnames[:] = [d for d in dirnames if not excluded(rel_dir + d)]
        for f in filenames:
            rel = rel_dir + f
            if not excluded(rel):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / rel, dest / rel)
                copied.append(rel)
    return copied


def build_info(binary: Path, cfg: Path) -> str:
    """The build_info line the binary, started with `cfg`, serves on /metrics ("" if none)."""
    port = free_port()
    proc = subprocess.Popen([str(binary), f"--config={cfg}", f"--listen=127.0.0.1:{port}"],
                            env=exporter_env({"SOCKETIO_ADMIN_PASSWORD": "x"}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, body = http_get(port, "/metrics", proc, time.monotonic() + 15)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return next((l for l in body.splitlines() if l.startswith("socketio_exporter_build_info{")), "")


def run(args: argparse.Namespace) -> int:
    """Builds the exporter from the Dockerfile's build context, as its builder stage does
    (no .git; the revision from SOCKETIO_EXPORTER_REVISION), and checks build_info.

    The image itself is built for <arch>-unknown-linux-musl, which this toolchain cannot
    add here; this build uses the host target. It proves the context holds everything
    cargo needs and that the revision reaches the binary."""
    rep = Report()
    where = "image build context"
    # A fixed place for the copy (and copy2 keeps mtimes), so cargo's fingerprints hold
    # from one run to the next and only a changed source is rebuilt.
    target_dir = Path(args.target_dir).resolve()
    ctx = target_dir / "context"
    shutil.rmtree(ctx, ignore_errors=True)
    copied = build_context(ROOT, ctx, Path(args.dockerignore or ROOT / ".dockerignore"))
    rep.check(not any(c.startswith((".git/", "target/")) or "/node_modules/" in c for c in copied), where,
              f"{len(copied)} files: no .git, target or node_modules")
    env = {**os.environ, "SOCKETIO_EXPORTER_REVISION": REVISION, "CARGO_TARGET_DIR": str(target_dir)}
    proc = subprocess.run(["cargo", "build", "--locked", "--quiet", "--bin", EXPORTER], cwd=ctx, env=env,
                          capture_output=True, text=True)
    if not rep.check(proc.returncode == 0, where, "cargo build --locked succeeds in it (no .git)",
                     (proc.stdout + proc.stderr).strip()[-2000:]):
        return 1
    cfg = ctx / "config.toml"
    rep.check(cfg.is_file(), where, "holds config.toml, which the Dockerfile copies into the image")
    line = build_info(target_dir / "debug" / EXPORTER, cfg)
    rep.check(f'revision="{REVISION}"' in line, where,
              "socketio_exporter_build_info carries SOCKETIO_EXPORTER_REVISION from the build", line or "no build_info")
    return rep.exit_status()
