"""Shared helpers of the measuring scripts (scripts/bench-*, scripts/measure-*).

Python 3.9+, standard library only. Every process a script starts goes through spawn(): it
runs in its own process group, and all of them are ended (SIGTERM, then SIGKILL after 3 s)
when the script exits, fails or is interrupted; that is the scripts' `trap`. Every server
listens on 127.0.0.1 on an ephemeral port.
"""

import atexit
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = ROOT / "target" / "release" / "socketio-exporter"
APP_DIR = ROOT / "tests" / "app"
BENCH_DIR = ROOT / "scripts" / "bench"
PROG = Path(sys.argv[0]).name
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(f"[{PROG}] {msg}", file=sys.stderr, flush=True)


def fail(msg):
    say(f"error: {msg}")
    sys.exit(1)


# ---------------------------------------------------------------- processes and cleanup

_procs = []
_tmpdirs = []


def _cleanup():
    for proc in reversed(_procs):
        stop(proc)
    _procs.clear()
    for path in _tmpdirs:
        shutil.rmtree(path, ignore_errors=True)
    _tmpdirs.clear()


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def tmpdir():
    path = tempfile.mkdtemp(prefix=f"{PROG}-")
    _tmpdirs.append(path)
    return Path(path)


def spawn(args, *, env=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, cwd=None):
    """Starts a process in its own process group; it is ended when the script exits."""
    full_env = dict(os.environ)
    # OTLP settings come from each script alone, never from the machine's environment.
    for name in list(full_env):
        if name.startswith("OTEL_"):
            del full_env[name]
    full_env.pop("RUST_LOG", None)
    if env:
        full_env.update(env)
    proc = subprocess.Popen([str(a) for a in args], env=full_env, stdin=stdin, stdout=stdout,
                            stderr=stderr, cwd=cwd, start_new_session=True, text=True)
    _procs.append(proc)
    return proc


def stop(proc, timeout=3.0):
    """SIGTERM to the process group, SIGKILL if it is still there after `timeout`."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc in _procs:
        _procs.remove(proc)


class Lines:
    """Drains a text stream on a thread (so the pipe never fills), keeps the last lines."""

    def __init__(self, stream, keep=200):
        self.queue = queue.Queue()
        self.last = []
        self.keep = keep

        def pump():
            for line in stream:
                line = line.rstrip("\n")
                self.last.append(line)
                del self.last[:-keep]
                self.queue.put(line)
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, predicate, timeout, what):
        """Returns the first line for which predicate(line) is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(f"{what}: nothing within {timeout:.0f} s; last output:\n" +
                     "\n".join(self.last[-20:]))
            try:
                line = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                fail(f"{what}: the process ended; last output:\n" + "\n".join(self.last[-20:]))
            result = predicate(line)
            if result:
                return result


def free_port():
    """A port the kernel just handed out, for programs that cannot bind port 0 themselves."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- building and installing

def cargo_build_exporter():
    if os.environ.get("BENCH_NO_BUILD") == "1" and EXPORTER.exists():
        say(f"BENCH_NO_BUILD=1: using {EXPORTER}")
        return EXPORTER
    say("cargo build --release --locked (the exporter)")
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    return EXPORTER


def cargo_build_bare_server():
    manifest = BENCH_DIR / "bare-server" / "Cargo.toml"
    target = ROOT / "target" / "bare-server"
    binary = target / "release" / "bare-server"
    if os.environ.get("BENCH_NO_BUILD") == "1" and binary.exists():
        return binary
    say("cargo build --release --locked (scripts/bench/bare-server)")
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--manifest-path",
                    str(manifest), "--target-dir", str(target)], check=True)
    return binary


def ensure_debian_packages(commands):
    """commands: {command: debian package}; installs the packages whose command is missing."""
    missing = sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    say(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    # Other builds on the machine may hold the dpkg lock for a while: wait for it.
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                           "-o", "DPkg::Lock::Timeout=300"] + missing,
                   check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_node_modules():
    subprocess.run([str(ROOT / "scripts" / "setup"), "node"], check=True)


# ---------------------------------------------------------------- the exporter and the app

class Exporter:
    """The release exporter with `config` (TOML text), listening on 127.0.0.1:0."""

    def __init__(self, config, env=None):
        directory = tmpdir()
        self.config_path = directory / "config.toml"
        self.config_path.write_text(config)
        self.proc = spawn([EXPORTER, "--config", self.config_path, "--listen", "127.0.0.1:0",
                           "--log-format", "json"], env=env, stdout=subprocess.DEVNULL)
        self.log = Lines(self.proc.stderr)

        def listening(line):
            try:
                event = json.loads(line)
            except ValueError:
                return None
            return event.get("address") if event.get("message") == "listening" else None

        self.addr = self.log.wait_for(listening, 15, "the exporter's listening line")
        self.url = f"http://{self.addr}"
        self.pid = self.proc.pid

    def metrics(self):
        return http_get(f"{self.url}/metrics")

    def stop(self):
        stop(self.proc)


class App:
    """tests/app/server.js with `args`; its stdout's first line gives the port."""

    def __init__(self, args, env=None):
        self.proc = spawn(["node", APP_DIR / "server.js", "--port", "0", *args], env=env)
        self.err = Lines(self.proc.stderr)
        self.out = Lines(self.proc.stdout)
        listening = self.out.wait_for(lambda l: json.loads(l), 20, "the test app's listening line")
        self.port = listening["port"]
        self.pid = listening["pid"]
        self.url = f"http://127.0.0.1:{self.port}"

    def truth(self):
        return json.loads(http_get(f"{self.url}/truth"))

    def stop(self):
        stop(self.proc, timeout=8)


class Scraper:
    """GET /metrics over one keep-alive connection, for tight polling loops."""

    def __init__(self, addr):
        import http.client
        host, port = addr.rsplit(":", 1)
        self._new = lambda: http.client.HTTPConnection(host, int(port), timeout=5)
        self.conn = self._new()

    def metrics(self):
        for attempt in (0, 1):
            try:
                self.conn.request("GET", "/metrics")
                return self.conn.getresponse().read().decode()
            except OSError:
                self.conn.close()
                self.conn = self._new()
                if attempt:
                    raise
        return ""


class Clients:
    """tests/app/clients.js: real socket.io-client connections, one command at a time."""

    def __init__(self):
        self.proc = spawn(["node", APP_DIR / "clients.js"], stdin=subprocess.PIPE)
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)
        self.seq = 0

    def command(self, op, **fields):
        self.seq += 1
        self.proc.stdin.write(json.dumps({"seq": self.seq, "op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        answer = self.out.wait_for(json.loads, 20, f"clients.js answer to {op}")
        if not answer.get("ok"):
            fail(f"clients.js {op}: {answer.get('error')}")
        return answer

    def stop(self):
        self.proc.stdin.close()
        stop(self.proc)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def http_post_json(url, body, token=None, timeout=5):
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode()


def http_put_text(url, text, timeout=10):
    request = urllib.request.Request(url, data=text.encode(), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text, name):
    """[(labels dict, value)] of the samples of metric `name` in a text-format body."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            out.append((labels, float(match.group(3))))
    return out


def connections(text):
    """{namespace: count} of websocket_connections (local scope: one series per namespace)."""
    return {labels.get("namespace"): value for labels, value in samples(text, "websocket_connections")}


def source_up(text, source):
    for labels, value in samples(text, "socketio_exporter_source_up"):
        if labels.get("source") == source:
            return value
    return None


# ---------------------------------------------------------------- /proc

def proc_status(pid):
    """/proc/PID/status as {field: value string}."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def rss_mib(pid, field="VmRSS"):
    return int(proc_status(pid)[field].split()[0]) / 1024


def cpu_seconds(pid):
    """CPU time of the process, all its threads, in seconds.

    The sum of the threads' scheduler run time (/proc/PID/task/*/schedstat, nanoseconds):
    utime + stime in /proc/PID/stat count in clock ticks (10 ms), too coarse for an idle
    exporter. Falls back to /proc/PID/stat where schedstat is missing.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:  # the thread just ended
                pass
        return total / 1e9
    except (FileNotFoundError, PermissionError):
        pass
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuWindow:
    """CPU time of several processes over a wall-clock window."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.start_cpu = [cpu_seconds(p) for p in self.pids]
        self.start_wall = time.monotonic()

    def finish(self):
        wall = time.monotonic() - self.start_wall
        used = [cpu_seconds(p) - c for p, c in zip(self.pids, self.start_cpu)]
        return wall, used


# ---------------------------------------------------------------- numbers

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def group(x):
    """A whole number with thousands separated by spaces, as the README writes them."""
    return f"{x:,.0f}".replace(",", " ")


def fmt_ms(seconds):
    ms = seconds * 1000
    if ms >= 1000:
        return f"{seconds:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def machine_line():
    """One line saying where the figures come from."""
    cpus = os.cpu_count()
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        revision += " with uncommitted changes"
    return (f"{time.strftime('%Y-%m-%d')}, revision {revision}, {cpus} CPUs ({model}), "
            f"load average {load[0]:.2f} at start")
