"""What the checks share: the report, the binary under test, and readers of manifests,
`--check-config` output and Prometheus configs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
EXPORTER = "socketio-exporter"


class Report:
    def __init__(self, quiet: bool = False) -> None:
        self.failures = 0
        self.passed = 0
        self.quiet = quiet

    def ok(self, where: str, what: str) -> None:
        self.passed += 1
        if not self.quiet:
            print(f"ok   {where}: {what}")

    def fail(self, where: str, what: str) -> None:
        print(f"FAIL {where}: {what}")
        self.failures += 1

    def check(self, cond: bool, where: str, what: str, detail: str = "") -> bool:
        if cond:
            self.ok(where, what)
        else:
            self.fail(where, what + (f" ({detail})" if detail else ""))
        return cond

    def exit_status(self) -> int:
        return 1 if self.failures else 0


# ---------------------------------------------------------------------------------------
# Manifests


def load_docs(path: Path) -> list:
    """The non-empty documents of a YAML stream."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def pod_spec(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def by_kind_name(docs: list[dict], kind: str, name: str) -> dict | None:
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    return None


def host_port(url: str) -> tuple[str, int]:
    m = re.fullmatch(r"\w+://([^:/]+):(\d+)/?", url)
    if not m:
        raise ValueError(url)
    return m.group(1), int(m.group(2))


# ---------------------------------------------------------------------------------------
# Prometheus configs and promtool


def static_targets(job: dict) -> list[str]:
    """The targets of a scrape job's static_configs."""
    return [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]


def promtool_check(promtool: str, what: str, path: str) -> tuple[int, str]:
    """`promtool check WHAT PATH`: its exit status and output (stdout, then stderr)."""
    proc = subprocess.run([promtool, "check", what, path], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def promtool_check_yaml(promtool: str, what: str, data) -> tuple[int, str]:
    """`promtool check WHAT` on `data` written out as a YAML file."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(data, f)
    try:
        return promtool_check(promtool, what, f.name)
    finally:
        os.unlink(f.name)


# ---------------------------------------------------------------------------------------
# The binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, proc: subprocess.Popen, deadline: float) -> tuple[int | str, str]:
    """GETs a path of a starting server on loopback: (status, body), retried until it
    answers, or ("no answer", "") once `proc` has exited or the deadline has passed."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                return "no answer", ""
            time.sleep(0.05)


def exporter_env(env: dict[str, str]) -> dict[str, str]:
    """Only `env` (as in the container) and a PATH."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}


def config_path_of(args: list[str], env: dict[str, str], default: str | None) -> str | None:
    for i, a in enumerate(args):
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
    return env.get("SOCKETIO_EXPORTER_CONFIG", default)


def with_config(args: list[str], path: str) -> list[str]:
    """The container's args with --config pointing at `path` (a local copy)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a.startswith("--config="):
            continue
        if a == "--config":
            skip = True
            continue
        out.append(a)
    return [f"--config={path}", *out]


def listen_of(check_config_output: str) -> str | None:
    """The listen address `--check-config` reports."""
    m = re.search(r"^listen: (\S+)$", check_config_output, re.M)
    return m.group(1) if m else None


def loopback_endpoint_port(check_config_output: str) -> str | None:
    """The port of the first source endpoint on loopback `--check-config` reports."""
    m = re.search(r"^    url: ws://127\.0\.0\.1:(\d+)/", check_config_output, re.M)
    return m.group(1) if m else None


class Binary:
    def __init__(self, path: str) -> None:
        self.path = path

    def check_config(self, args: list[str], env: dict[str, str]) -> tuple[int, str]:
        proc = subprocess.run(
            [self.path, *args, "--check-config"],
            env=exporter_env(env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.returncode, proc.stdout + proc.stderr

    def default_listen(self) -> str:
        """The listen address the binary uses when the config has no [listen] table."""
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('environment = "x"\n[[sources]]\ntype = "socketio_admin"\n'
                    'endpoint = "http://127.0.0.1:3000"\nserver_id = "x"\n')
        try:
            rc, out = self.check_config([f"--config={f.name}"], {})
        finally:
            os.unlink(f.name)
        listen = listen_of(out)
        if rc != 0 or not listen:
            raise RuntimeError(f"cannot read the default listen address from --check-config: {out}")
        return listen

    def serve_and_probe(self, args: list[str], env: dict[str, str], paths: list[str]) -> list[str]:
        """Starts the binary, GETs each path, then SIGTERMs it. Returns the problems."""
        port = free_port()
        problems = []
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [self.path, *args, f"--listen=127.0.0.1:{port}"],
                env=exporter_env(env),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + 15
                for path in paths:
                    status, _ = http_get(port, path, proc, deadline)
                    if status != 200:
                        problems.append(f"GET {path} answered {status}, expected 200")
            finally:
                problems += self._stop(proc)
            if problems:
                log.seek(0)
                problems.append("log: " + log.read().decode(errors="replace")[-600:])
        return problems

    @staticmethod
    def _stop(proc: subprocess.Popen) -> list[str]:
        """SIGTERMs the binary; the problems if it does not exit 0 within 5 s."""
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return ["still running 5 s after SIGTERM"]
        return [f"exited with {rc} after SIGTERM"] if rc != 0 else []
