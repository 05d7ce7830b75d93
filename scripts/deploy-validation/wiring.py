#!/usr/bin/env python3
"""Checks that the deploy artefacts wire the config keys, ports and paths the binary uses.

Run by scripts/validate-deploy with the Python of its tools venv (PyYAML):

  wiring.py split RENDERED.yaml SOURCE OUT_DIR
      Sort a rendered kustomization into OUT_DIR/SOURCE.core.yaml (core Kubernetes
      objects, for kubernetes-validate) and OUT_DIR/SOURCE.crds.json (Prometheus Operator
      objects, for crds.mjs).

  wiring.py components RENDERED.yaml
      Checks the render of fixtures/opt-in: the sidecar component adds the exporter to the
      opted-in Deployment, keeps its init containers, volumes, labels and annotations, and
      leaves the other Deployment alone.

  wiring.py image-context --target-dir DIR [--dockerignore FILE]
      Copies the Dockerfile's build context (after .dockerignore) and builds the exporter
      in it as the builder stage does (cargo build --locked, no .git, the revision from
      SOCKETIO_EXPORTER_REVISION; host target), then checks build_info's revision.

  wiring.py check --binary PATH --promtool PATH --compose-config FILE VARIANT=RENDERED...
      Kubernetes (per rendered variant: native, classic, cluster):
        - config.toml is taken from the ConfigMap that the exporter container mounts at
          its --config path, and the binary's --check-config accepts it with the env the
          container gets (downward API, Secret values);
        - the container port, the probes, the PodMonitor and the prometheus.io
          annotations use the listen port --check-config reports;
        - the binary, started with that config, answers 200 on every probe and scrape
          path and stops on SIGTERM within 5 s;
        - securityContext, resources, image tag, sidecar form, scope per variant;
        - the PrometheusRule's spec is deploy/prometheus/alerts.yml and passes
          `promtool check rules`.
      Dockerfile: USER, EXPOSE (the binary's default port), ENTRYPOINT, no HEALTHCHECK.
      Compose (the output of `docker-compose config`): the exporter's config passes
      --check-config with the service's environment; published port, Prometheus scrape
      target, Grafana provisioning paths and datasource URL, OTLP endpoint and collector
      ports line up; every bind-mount source exists; `promtool check config` passes on
      the files as the Prometheus container sees them.

Exit status 1 when any check fails; each failure is printed as "FAIL <where>: <what>".
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = "socketio-exporter"
CRD_GROUP = "monitoring.coreos.com/"
# Measured resident memory of the exporter (README, "Performance"), in MiB.
MEASURED_RSS_MIB = 5
# What the downward API gives as metadata.name in the checks.
SAMPLE_POD_NAME = "socketio-app-5d8f7c9b6d-x7k2p"


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


# ---------------------------------------------------------------------------------------
# split


def cmd_split(args: argparse.Namespace) -> int:
    docs = [d for d in yaml.safe_load_all(Path(args.rendered).read_text()) if d is not None]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    core, crds = [], []
    for doc in docs:
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            print(f"FAIL {args.source}: a document without apiVersion/kind: {doc!r:.80}")
            return 1
        if str(doc["apiVersion"]).startswith(CRD_GROUP):
            crds.append({"source": args.source, "object": doc})
        else:
            core.append(doc)
    (out / f"{args.source}.core.yaml").write_text(yaml.safe_dump_all(core, sort_keys=False))
    (out / f"{args.source}.crds.json").write_text(json.dumps(crds, indent=1))
    print(f"{args.source}: {len(core)} core objects, {len(crds)} Prometheus Operator objects")
    return 0


# ---------------------------------------------------------------------------------------
# components: what the sidecar component changes in an app, and what it leaves


def cmd_components(args: argparse.Namespace) -> int:
    """Checks the render of fixtures/opt-in (web opted in, redis not)."""
    rep = Report()
    docs = [d for d in yaml.safe_load_all(Path(args.rendered).read_text()) if d]
    source = [d for d in yaml.safe_load_all((Path(__file__).parent / "fixtures/opt-in/deployments.yaml").read_text()) if d]
    where = "sidecar component"
    web, redis = by_kind_name(docs, "Deployment", "web"), by_kind_name(docs, "Deployment", "redis")
    rep.check(redis == by_kind_name(source, "Deployment", "redis"), where,
              "leaves a Deployment without the socketio-exporter/sidecar annotation unchanged")
    spec = pod_spec(web)
    names = [c["name"] for c in spec.get("initContainers", [])]
    rep.check(sorted(names) == ["migrate", EXPORTER], where, "adds the sidecar and keeps the app's init containers", str(names))
    rep.check([c["name"] for c in spec.get("containers", [])] == ["app"], where, "leaves the app containers alone")
    vols = sorted(v["name"] for v in spec.get("volumes", []))
    rep.check(vols == ["data", "socketio-exporter-config"], where, "adds its config volume and keeps the app's", str(vols))
    meta = web["spec"]["template"]["metadata"]
    rep.check(meta.get("annotations", {}).get("example.com/keep") == "yes", where, "keeps the pod's annotations")
    rep.check(meta.get("labels") == {"app": "web", "socketio-exporter/sidecar": "true"}, where,
              "adds the PodMonitor's pod label and keeps the app's", str(meta.get("labels")))
    rep.check(any(d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("socketio-exporter-config-") for d in docs),
              where, "generates the config ConfigMap")
    return 1 if rep.failures else 0


# ---------------------------------------------------------------------------------------
# the binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Binary:
    def __init__(self, path: str) -> None:
        self.path = path

    def check_config(self, args: list[str], env: dict[str, str]) -> tuple[int, str]:
        proc = subprocess.run(
            [self.path, *args, "--check-config"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
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
        m = re.search(r"^listen: (\S+)$", out, re.M)
        if rc != 0 or not m:
            raise RuntimeError(f"cannot read the default listen address from --check-config: {out}")
        return m.group(1)

    def serve_and_probe(self, args: list[str], env: dict[str, str], paths: list[str]) -> list[str]:
        """Starts the binary, GETs each path, then SIGTERMs it. Returns the problems."""
        port = free_port()
        problems = []
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [self.path, *args, f"--listen=127.0.0.1:{port}"],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + 15
                for path in paths:
                    status = None
                    while status is None:
                        try:
                            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                                status = r.status
                        except urllib.error.HTTPError as e:
                            status = e.code
                        except OSError:
                            if proc.poll() is not None or time.monotonic() > deadline:
                                status = "no answer"
                            else:
                                time.sleep(0.05)
                    if status != 200:
                        problems.append(f"GET {path} answered {status}, expected 200")
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=5)
                    if rc != 0:
                        problems.append(f"exited with {rc} after SIGTERM")
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    problems.append("still running 5 s after SIGTERM")
            if problems:
                log.seek(0)
                problems.append("log: " + log.read().decode(errors="replace")[-600:])
        return problems


# ---------------------------------------------------------------------------------------
# the image's build context


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


def cmd_image_context(args: argparse.Namespace) -> int:
    """Builds the exporter from the Dockerfile's build context, as its builder stage does
    (no .git; the revision from SOCKETIO_EXPORTER_REVISION), and checks build_info.

    The image itself is built for <arch>-unknown-linux-musl, which this toolchain cannot
    add here; this build uses the host target. It proves the context holds everything
    cargo needs and that the revision reaches the binary."""
    rep = Report()
    where = "image build context"
    revision = "context-check"
    # A fixed place for the copy (and copy2 keeps mtimes), so cargo's fingerprints hold
    # from one run to the next and only a changed source is rebuilt.
    target_dir = Path(args.target_dir).resolve()
    ctx = target_dir / "context"
    shutil.rmtree(ctx, ignore_errors=True)
    copied = build_context(ROOT, ctx, Path(args.dockerignore or ROOT / ".dockerignore"))
    rep.check(not any(c.startswith((".git/", "target/")) or "/node_modules/" in c for c in copied), where,
              f"{len(copied)} files: no .git, target or node_modules")
    env = {**os.environ, "SOCKETIO_EXPORTER_REVISION": revision, "CARGO_TARGET_DIR": str(target_dir)}
    proc = subprocess.run(["cargo", "build", "--locked", "--quiet", "--bin", EXPORTER], cwd=ctx, env=env,
                          capture_output=True, text=True)
    if not rep.check(proc.returncode == 0, where, "cargo build --locked succeeds in it (no .git)",
                     (proc.stdout + proc.stderr).strip()[-2000:]):
        return 1
    binary = target_dir / "debug" / EXPORTER
    cfg = ctx / "config.toml"
    rep.check(cfg.is_file(), where, "holds config.toml, which the Dockerfile copies into the image")
    port = free_port()
    proc = subprocess.Popen([str(binary), f"--config={cfg}", f"--listen=127.0.0.1:{port}"],
                            env={"PATH": os.environ.get("PATH", ""), "SOCKETIO_ADMIN_PASSWORD": "x"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body, deadline = "", time.monotonic() + 15
    try:
        while not body and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    line = next((l for l in body.splitlines() if l.startswith("socketio_exporter_build_info{")), "")
    rep.check(f'revision="{revision}"' in line, where,
              "socketio_exporter_build_info carries SOCKETIO_EXPORTER_REVISION from the build", line or "no build_info")
    return 1 if rep.failures else 0


# ---------------------------------------------------------------------------------------
# Dockerfile


def parse_dockerfile(path: Path) -> dict:
    """Instructions of the final stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append([])
        if stages:  # ARGs before the first FROM only parameterise the FROM lines
            stages[-1].append((word, rest.strip()))
    final = stages[-1]
    info = {"from": final[0][1], "user": None, "expose": [], "entrypoint": None,
            "env": {}, "healthcheck": False, "args": {}}
    for word, rest in (i for s in stages for i in s):
        if word == "HEALTHCHECK":
            info["healthcheck"] = True
    for word, rest in final:
        if word == "USER":
            info["user"] = rest
        elif word == "EXPOSE":
            info["expose"] += rest.split()
        elif word == "ENTRYPOINT":
            info["entrypoint"] = json.loads(rest)
        elif word == "ENV":
            k, _, v = rest.partition("=")
            info["env"][k] = v
        elif word == "ARG":
            k, _, v = rest.partition("=")
            info["args"][k] = v
    return info


def check_dockerfile(rep: Report, binary: Binary, version: str) -> dict:
    where = "Dockerfile"
    d = parse_dockerfile(ROOT / "Dockerfile")
    default = binary.default_listen()
    port = default.rsplit(":", 1)[1]
    rep.check(d["expose"] == [port], where, f"EXPOSE {port}, the binary's default port ({default})",
              f"EXPOSE {d['expose']}")
    rep.check(d["user"] == "65532:65532", where, "USER 65532:65532 (distroless nonroot)", f"USER {d['user']}")
    rep.check(not d["healthcheck"], where, "no HEALTHCHECK (probes belong to the orchestrator)")
    rep.check("distroless/static" in d["from"] and d["from"].endswith(":nonroot"), where,
              "final stage is distroless/static :nonroot", d["from"])
    rep.check(d["entrypoint"] == [f"/usr/local/bin/{EXPORTER}"], where,
              f"ENTRYPOINT runs /usr/local/bin/{EXPORTER}", str(d["entrypoint"]))
    rep.check(d["args"].get("VERSION") == version, where, f"ARG VERSION defaults to the crate version {version}",
              str(d["args"].get("VERSION")))
    return d


# ---------------------------------------------------------------------------------------
# Kubernetes


def pod_spec(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def find_exporter(docs: list[dict]) -> list[tuple[dict, str, dict]]:
    """(workload, "initContainers"|"containers", container) for every exporter container."""
    found = []
    for doc in docs:
        spec = pod_spec(doc)
        for field in ("initContainers", "containers"):
            for c in spec.get(field, []) or []:
                if c.get("name") == EXPORTER:
                    found.append((doc, field, c))
    return found


def by_kind_name(docs: list[dict], kind: str, name: str) -> dict | None:
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    return None


def secret_value(docs: list[dict], name: str, key: str) -> str | None:
    s = by_kind_name(docs, "Secret", name)
    if s is None:
        return None
    if key in (s.get("stringData") or {}):
        return s["stringData"][key]
    if key in (s.get("data") or {}):
        return base64.b64decode(s["data"][key]).decode()
    return None


def container_env(rep: Report, where: str, docs: list[dict], workload: dict, c: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    if c.get("envFrom"):
        rep.fail(where, "envFrom is not followed by this check: list variables under env")
    for e in c.get("env", []) or []:
        name, vf = e["name"], e.get("valueFrom")
        if vf is None:
            env[name] = str(e.get("value", ""))
        elif "fieldRef" in vf:
            field = vf["fieldRef"]["fieldPath"]
            env[name] = {"metadata.name": SAMPLE_POD_NAME,
                         "metadata.namespace": workload.get("metadata", {}).get("namespace", "default")}.get(field, "x")
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            value = secret_value(docs, ref["name"], ref["key"])
            if rep.check(value is not None, where, f"env {name} comes from Secret {ref['name']} key {ref['key']}, which the manifests define"):
                env[name] = value
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = by_kind_name(docs, "ConfigMap", ref["name"])
            value = (cm or {}).get("data", {}).get(ref["key"])
            if rep.check(value is not None, where, f"env {name} comes from ConfigMap {ref['name']} key {ref['key']}"):
                env[name] = value
        else:
            rep.fail(where, f"env {name}: unsupported valueFrom {list(vf)}")
    return env


def mounted_config(rep: Report, where: str, docs: list[dict], workload: dict, c: dict, path: str) -> str | None:
    """The text of the file at `path` in the container, from the ConfigMap mounted there."""
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", []) or []}
    for m in c.get("volumeMounts", []) or []:
        mount = m["mountPath"].rstrip("/")
        if m.get("subPath"):
            if path != mount:
                continue
            rel = m["subPath"]
        elif path.startswith(mount + "/"):
            rel = path[len(mount) + 1:]
        else:
            continue
        vol = volumes.get(m["name"])
        if vol is None or "configMap" not in vol:
            rep.fail(where, f"{path} is mounted from volume {m['name']}, which is not a ConfigMap volume")
            return None
        cm_name = vol["configMap"]["name"]
        key = rel
        for item in vol["configMap"].get("items", []) or []:
            if item["path"] == rel:
                key = item["key"]
        cm = by_kind_name(docs, "ConfigMap", cm_name)
        if cm is None or key not in (cm.get("data") or {}):
            rep.fail(where, f"{path}: ConfigMap {cm_name} with key {key} is not in the manifests")
            return None
        rep.ok(where, f"--config {path} is key {key} of ConfigMap {cm_name}, mounted at {mount}")
        return cm["data"][key]
    rep.fail(where, f"--config {path} is not under any volumeMount of the container")
    return None


def port_number(c: dict, port) -> int | None:
    if isinstance(port, int):
        return port
    for p in c.get("ports", []) or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def quantity_mib(q: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1000 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    if not m:
        return float("nan")
    return float(m.group(1)) * units.get(m.group(2), 1 / 2**20)


def check_security(rep: Report, where: str, workload: dict, c: dict, user: str) -> None:
    pod = pod_spec(workload).get("securityContext", {}) or {}
    sc = c.get("securityContext", {}) or {}

    def eff(key):
        return sc.get(key, pod.get(key))

    uid, gid = (int(x) for x in user.split(":"))
    rep.check(eff("runAsNonRoot") is True, where, "runAsNonRoot")
    rep.check(eff("runAsUser") in (None, uid), where, f"runAsUser is the image's user {uid}", str(eff("runAsUser")))
    rep.check(eff("runAsGroup") in (None, gid), where, f"runAsGroup is the image's group {gid}", str(eff("runAsGroup")))
    rep.check(sc.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem")
    rep.check(sc.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation: false")
    rep.check("ALL" in (sc.get("capabilities", {}) or {}).get("drop", []), where, "capabilities drop ALL")
    seccomp = (eff("seccompProfile") or {}).get("type")
    rep.check(seccomp == "RuntimeDefault", where, "seccompProfile RuntimeDefault", str(seccomp))


def check_resources(rep: Report, where: str, c: dict) -> None:
    r = c.get("resources", {}) or {}
    req, lim = r.get("requests", {}) or {}, r.get("limits", {}) or {}
    rep.check("cpu" in req, where, "a CPU request")
    req_mem, lim_mem = quantity_mib(req.get("memory", "0")), quantity_mib(lim.get("memory", "0"))
    rep.check(req_mem >= 2 * MEASURED_RSS_MIB, where,
              f"memory request {req.get('memory')} ≥ 2 × the measured {MEASURED_RSS_MIB} MiB RSS")
    rep.check(lim_mem >= 2 * req_mem, where, f"memory limit {lim.get('memory')} leaves headroom over the request")


def selects(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        return False  # not used by the shipped manifests
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def check_variant(rep: Report, binary: Binary, promtool: str, variant: str, rendered: Path,
                  docker: dict, version: str) -> dict | None:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    where = f"kubernetes/{variant}"
    found = find_exporter(docs)
    if not rep.check(len(found) == 1, where, f"exactly one {EXPORTER} container", f"found {len(found)}"):
        return None
    workload, field, c = found[0]
    where = f"{where} {workload['kind']}/{workload['metadata']['name']}"

    # Sidecar form.
    if variant == "native":
        rep.check(field == "initContainers" and c.get("restartPolicy") == "Always", where,
                  "native sidecar: an init container with restartPolicy: Always")
    else:
        rep.check(field == "containers" and "restartPolicy" not in c, where, "a plain container")

    # Image: the crate version, as the Dockerfile labels it.
    tag = str(c.get("image", "")).rsplit(":", 1)[-1]
    rep.check(tag == version, where, f"image tag is the crate version {version}", c.get("image"))

    # The config the binary reads, with the env the container gets.
    env = container_env(rep, where, docs, workload, c)
    args = [str(a) for a in c.get("args", []) or []]
    if c.get("command"):
        rep.fail(where, "command overrides the image's ENTRYPOINT; use args")
    cfg_path = config_path_of(args, env, docker["env"].get("SOCKETIO_EXPORTER_CONFIG"))
    text = mounted_config(rep, where, docs, workload, c, cfg_path) if cfg_path else None
    if text is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, "config.toml")
        local.write_text(text)
        run_args = with_config(args, str(local))
        rc, out = binary.check_config(run_args, env)
        if not rep.check(rc == 0, where, "--check-config accepts the shipped ConfigMap with the container's env", out.strip()):
            return None
        listen = re.search(r"^listen: (\S+)$", out, re.M).group(1)
        port = int(listen.rsplit(":", 1)[1])
        rep.check(listen.startswith("0.0.0.0:") or listen.startswith("[::]:"), where,
                  f"listens on all interfaces ({listen}), so the kubelet and Prometheus reach it")
        scope = re.search(r"^    scope: (.*)$", out, re.M).group(1)
        if variant == "cluster":
            rep.check(scope == "cluster", where, "scope = cluster", scope)
            rep.check(workload["spec"].get("replicas") == 1, where, "one replica (two would double the count)")
            rep.check((workload["spec"].get("strategy") or {}).get("type") == "Recreate", where,
                      "strategy Recreate (never two exporters at once)")
        else:
            rep.check(scope == f'local, server id "{SAMPLE_POD_NAME}"', where,
                      "local scope, server id = the pod name (downward API)", scope)

        # Ports and probes.
        ports = [p for p in c.get("ports", []) or [] if p.get("containerPort") == port]
        if rep.check(len(ports) == 1, where, f"a container port {port} (the listen port)"):
            port_name = ports[0].get("name")
            rep.check(ports[0].get("protocol", "TCP") == "TCP", where, "the port is TCP")
        else:
            port_name = None
        probe_paths = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
        live_paths = set()
        for probe, path in probe_paths.items():
            p = c.get(probe)
            if p is None:
                rep.check(probe == "startupProbe", where, f"has a {probe}")
                continue
            get = p.get("httpGet") or {}
            rep.check(get.get("path") == path and port_number(c, get.get("port")) == port, where,
                      f"{probe} GETs {path} on port {port}", f"{get.get('path')} on {get.get('port')}")
            live_paths.add(get.get("path"))

        # Scrape config: PodMonitors that select this pod, and prometheus.io annotations.
        labels = workload["spec"]["template"]["metadata"].get("labels", {}) or {}
        monitors = [d for d in docs if d.get("kind") == "PodMonitor"]
        for pm in monitors:
            pwhere = f"kubernetes/{variant} PodMonitor/{pm['metadata']['name']}"
            rep.check(selects(pm["spec"].get("selector", {}), labels), pwhere, f"selects the pods of {workload['metadata']['name']}")
            rep.check("namespaceSelector" not in pm["spec"], pwhere, "scrapes its own namespace")
            for ep in pm["spec"].get("podMetricsEndpoints", []):
                rep.check(ep.get("port") == port_name and port_name is not None, pwhere,
                          f"scrapes the port named {port_name}", str(ep.get("port")))
                path = ep.get("path", "/metrics")
                rep.check(path == "/metrics", pwhere, "scrapes /metrics", path)
                live_paths.add(path)
                rep.check(ep.get("honorLabels") is True, pwhere, "honorLabels: true keeps the Socket.IO `namespace` label")
                copies = [r for r in ep.get("relabelings", []) or []
                          if r.get("sourceLabels") == ["__meta_kubernetes_namespace"]
                          and r.get("targetLabel") == "kubernetes_namespace"
                          and r.get("action", "replace") == "replace"]
                rep.check(len(copies) == 1, pwhere, "copies the Kubernetes namespace into kubernetes_namespace")
        if variant != "classic":
            rep.check(len(monitors) >= 1, where, "a PodMonitor scrapes it")
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {}) or {}
        if annotations.get("prometheus.io/scrape") == "true":
            rep.check(annotations.get("prometheus.io/port") == str(port), where,
                      f"prometheus.io/port is {port}", str(annotations.get("prometheus.io/port")))
            path = annotations.get("prometheus.io/path", "/metrics")
            rep.check(path == "/metrics", where, "prometheus.io/path is /metrics", path)
            live_paths.add(path)
        else:
            rep.fail(where, "no prometheus.io/scrape annotation on the pod template")

        # The binary really serves those paths, and stops in time.
        problems = binary.serve_and_probe(run_args, env, sorted(live_paths))
        grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)
        rep.check(not problems, where,
                  f"the binary with this config answers 200 on {', '.join(sorted(live_paths))} and exits 0 on SIGTERM within 5 s",
                  "; ".join(problems))
        rep.check(grace > 5, where, f"terminationGracePeriodSeconds {grace} > the exporter's 5 s shutdown")

    check_security(rep, where, workload, c, docker["user"])
    check_resources(rep, where, c)

    # The example app's port is the one the sidecar config calls.
    if variant in ("native", "classic"):
        endpoint = re.search(r"^    url: ws://127\.0\.0\.1:(\d+)/", out, re.M)
        app = [x for x in pod_spec(workload).get("containers", []) if x.get("name") != EXPORTER]
        app_ports = {p["containerPort"] for x in app for p in x.get("ports", []) or []}
        rep.check(endpoint is not None and int(endpoint.group(1)) in app_ports, where,
                  "the config's endpoint is the app container's port on loopback",
                  f"endpoint port {endpoint and endpoint.group(1)}, app ports {sorted(app_ports)}")

    # The PrometheusRule is the rule file, and promtool accepts it.
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    source = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for r in rules:
        rwhere = f"kubernetes/{variant} PrometheusRule/{r['metadata']['name']}"
        rep.check(r["spec"] == source, rwhere, "spec equals deploy/prometheus/alerts.yml")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(r["spec"], f)
        proc = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        rep.check(proc.returncode == 0, rwhere, "promtool check rules accepts its spec", proc.stdout + proc.stderr)
    return c


# ---------------------------------------------------------------------------------------
# compose


def host_port(url: str) -> tuple[str, int]:
    m = re.fullmatch(r"\w+://([^:/]+):(\d+)/?", url)
    if not m:
        raise ValueError(url)
    return m.group(1), int(m.group(2))


# The compose stack's exporters and the app each one is the sidecar of.
SIDECARS = {"exporter": "app", "nextjs-exporter": "nextjs"}


def app_port(app: dict) -> str | None:
    """The port an app service serves on: PORT in its environment or its Dockerfile, or
    the --port of its ENTRYPOINT."""
    if "PORT" in (app.get("environment") or {}):
        return str(app["environment"]["PORT"])
    build = app.get("build")
    if not build:
        return None
    d = parse_dockerfile(Path(build["context"]) / build.get("dockerfile", "Dockerfile"))
    entry = d["entrypoint"]
    return d["env"].get("PORT") or (entry[entry.index("--port") + 1] if entry and "--port" in entry else None)


def check_sidecar(rep: Report, binary: Binary, services: dict, name: str, app_name: str,
                  container_file, docker: dict) -> tuple[dict[str, str], int] | None:
    """The exporter service `name` beside `app_name`; its environment and listen port."""
    ex, app = services[name], services[app_name]
    ewhere = f"compose {name}"
    rep.check(ex.get("network_mode") == f"service:{app_name}", ewhere,
              f"shares the app's network namespace (network_mode service:{app_name})")
    rep.check(str(ex.get("user")) == docker["user"], ewhere, f"runs as the image's user {docker['user']}", str(ex.get("user")))
    rep.check(ex.get("read_only") is True, ewhere, "read-only root filesystem")
    rep.check("ALL" in (ex.get("cap_drop") or []), ewhere, "drops all capabilities")
    rep.check(ex.get("build", {}).get("dockerfile") == "Dockerfile", ewhere, "builds the repository's Dockerfile")
    rep.check("SOCKETIO_EXPORTER_REVISION" in (ex.get("build", {}).get("args") or {}), ewhere,
              "passes SOCKETIO_EXPORTER_REVISION to the build")
    rep.check(ex.get("profiles") == app.get("profiles"), ewhere, f"runs in the same profiles as {app_name}",
              f"{ex.get('profiles')} vs {app.get('profiles')}")
    command = ex.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    env = {k: str(v) for k, v in (ex.get("environment") or {}).items()}
    cfg_path = config_path_of(command, env, docker["env"].get("SOCKETIO_EXPORTER_CONFIG"))
    local = container_file(name, cfg_path)
    if not rep.check(local is not None and local.is_file(), ewhere, f"--config {cfg_path} is a mounted file"):
        return None
    rc, out = binary.check_config(with_config(command, str(local)), env)
    if not rep.check(rc == 0, ewhere, f"--check-config accepts {local.relative_to(ROOT)} with the service's environment", out.strip()):
        return None
    port = int(re.search(r"^listen: (\S+)$", out, re.M).group(1).rsplit(":", 1)[1])
    published = [str(p) for p in app.get("ports", []) or []]
    rep.check(any(re.search(rf":{port}(/tcp)?$", p) for p in published), f"compose {app_name}",
              f"publishes the exporter's port {port}", str(published))
    endpoint = re.search(r"^    url: ws://127\.0\.0\.1:(\d+)/", out, re.M)
    port_of_app = app_port(app)
    rep.check(endpoint is not None and endpoint.group(1) == port_of_app, ewhere,
              f"the config's endpoint is {app_name}'s port on loopback",
              f"endpoint {endpoint and endpoint.group(1)}, {app_name} port {port_of_app}")
    server_id = re.search(r'server id "([^"]*)"', out)
    rep.check(server_id is not None and server_id.group(1) == app.get("hostname"), ewhere,
              "server_id is the app container's hostname (admin-ui's default serverId)",
              f"{server_id and server_id.group(1)} vs hostname {app.get('hostname')}")
    return env, port


def check_compose(rep: Report, binary: Binary, promtool: str, compose_file: Path, docker: dict) -> None:
    cfg = yaml.safe_load(compose_file.read_text())
    services = cfg.get("services", {})
    where = "compose"
    for name in (*SIDECARS, *SIDECARS.values(), "prometheus", "grafana", "otel-collector"):
        rep.check(name in services, where, f"service {name}")
    if rep.failures:
        return

    # Every bind mount source exists (docker-compose config does not check).
    mounts: dict[str, list[tuple[Path, str]]] = {}
    for name, svc in services.items():
        for v in svc.get("volumes", []) or []:
            if isinstance(v, str):
                src, _, rest = v.partition(":")
                tgt = rest.split(":")[0]
            else:
                src, tgt = v.get("source"), v.get("target")
            src_path = Path(src)
            if src_path.is_absolute():
                mounts.setdefault(name, []).append((src_path, tgt))
                rel = src_path.relative_to(ROOT) if src_path.is_relative_to(ROOT) else src_path
                rep.check(src_path.exists(), f"compose {name}", f"bind-mount source {rel} exists")
        build = svc.get("build")
        if build:
            df = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            rep.check(df.is_file(), f"compose {name}", f"Dockerfile {df.relative_to(ROOT)} exists")

    def container_file(service: str, target: str) -> Path | None:
        for src, tgt in mounts.get(service, []):
            if target == tgt:
                return src
            if target.startswith(tgt.rstrip("/") + "/") and src.is_dir():
                return src / target[len(tgt.rstrip("/")) + 1:]
        return None

    # Each exporter: sidecar of its app, config checked by the binary.
    checked = {ex: check_sidecar(rep, binary, services, ex, app, container_file, docker)
               for ex, app in SIDECARS.items()}
    if None in checked.values():
        return
    env, port = checked["exporter"]

    # Prometheus: staged as the container sees its files, then promtool check config.
    pwhere = "compose prometheus"
    prom_cfg_path = "/etc/prometheus/prometheus.yml"
    prom_local = container_file("prometheus", prom_cfg_path)
    if not rep.check(prom_local is not None, pwhere, f"{prom_cfg_path} is mounted"):
        return
    prom = yaml.safe_load(prom_local.read_text())
    with tempfile.TemporaryDirectory() as stage:
        for src, tgt in mounts["prometheus"]:
            dst = Path(stage + tgt)
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
        absolute = [r for r in prom.get("rule_files", []) if r.startswith("/")]
        rep.check(not absolute, pwhere, "rule_files are relative to the config file, so the staged check sees them", str(absolute))
        proc = subprocess.run([promtool, "check", "config", stage + prom_cfg_path], capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        rep.check(proc.returncode == 0, pwhere, "promtool check config (with the rule files as mounted)", output)
        found = re.search(r"(\d+) rule files found", output)
        rep.check(found is not None and int(found.group(1)) >= 1, pwhere, "loads the alert rules", output)
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    job = jobs.get(EXPORTER)
    if rep.check(job is not None, pwhere, f"a scrape job named {EXPORTER} (the PodMonitor's job label)"):
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        rep.check(targets == [f"app:{port}"], pwhere, f"scrapes app:{port}", str(targets))
        nextjs_port = checked["nextjs-exporter"][1]
        found = [(n, sd.get("port")) for sd in job.get("dns_sd_configs", []) for n in sd.get("names", [])]
        rep.check(("nextjs", nextjs_port) in found, pwhere,
                  f"finds nextjs:{nextjs_port} by DNS (while the nextjs profile runs)", str(found))
        rep.check(job.get("metrics_path", "/metrics") == "/metrics", pwhere, "scrapes /metrics")
        rep.check(job.get("honor_labels") is True, pwhere, "honor_labels: true keeps the Socket.IO `namespace` label")

    # OpenTelemetry Collector: endpoints line up, pipelines are complete.
    owhere = "compose otel-collector"
    col_path = "/etc/otelcol-contrib/config.yaml"  # where the contrib image reads its config
    col_local = container_file("otel-collector", col_path)
    if rep.check(col_local is not None, owhere, f"{col_path} (the contrib image's config path) is mounted"):
        rep.check(col_local == ROOT / "deploy/otel-collector/config.yaml", owhere, "from deploy/otel-collector/config.yaml")
        check_otel_config(rep, col_local, env, jobs)
    rep.check(str(services["otel-collector"].get("image", "")).startswith("otel/opentelemetry-collector-contrib:"),
              owhere, "runs the contrib distribution (it has the prometheus exporter)")

    # Grafana: provisioning as issue 6 ships it, dashboards where the provider reads.
    gwhere = "compose grafana"
    prov = container_file("grafana", "/etc/grafana/provisioning")
    if rep.check(prov is not None and prov.is_dir(), gwhere, "grafana/provisioning is mounted at /etc/grafana/provisioning"):
        for f in sorted((prov / "datasources").glob("*.y*ml")):
            for ds in yaml.safe_load(f.read_text()).get("datasources", []):
                if ds.get("type") == "prometheus":
                    host, dport = host_port(ds["url"])
                    rep.check(host == "prometheus" and dport == 9090, gwhere,
                              f"datasource {f.name} points at the prometheus service's :9090", ds["url"])
        providers = [p for f in sorted((prov / "dashboards").glob("*.y*ml"))
                     for p in yaml.safe_load(f.read_text()).get("providers", [])]
        rep.check(len(providers) >= 1, gwhere, "a dashboard provider")
        for p in providers:
            path = p.get("options", {}).get("path", "")
            local = container_file("grafana", path)
            rep.check(local is not None and (local / "socketio-exporter.json").is_file(), gwhere,
                      f"provider {p.get('name')} reads {path}, where grafana/dashboards (socketio-exporter.json) is mounted")


KNOWN_COMPONENTS = {
    # What deploy/otel-collector/config.yaml may use: all in the contrib distribution.
    "receivers": {"otlp", "prometheus"},
    "processors": {"batch", "memory_limiter", "resource", "attributes"},
    "exporters": {"debug", "prometheus", "otlp", "otlphttp"},
    "extensions": {"health_check"},
}


def check_otel_config(rep: Report, path: Path, exporter_env: dict[str, str], jobs: dict) -> None:
    where = "otel-collector/config.yaml"
    col = yaml.safe_load(path.read_text())
    for section, known in KNOWN_COMPONENTS.items():
        for cid in col.get(section, {}) or {}:
            ctype = cid.split("/", 1)[0]
            rep.check(ctype in known, where, f"{section}.{cid} is a known component type", ctype)
    pipelines = (col.get("service", {}) or {}).get("pipelines", {}) or {}
    rep.check("metrics" in pipelines, where, "a metrics pipeline")
    for pname, p in pipelines.items():
        rep.check(pname.split("/", 1)[0] in ("metrics", "traces", "logs"), where, f"pipeline {pname} has a signal type")
        for section in ("receivers", "processors", "exporters"):
            for cid in p.get(section, []) or []:
                rep.check(cid in (col.get(section) or {}), where, f"pipeline {pname} uses {section[:-1]} {cid}, which is defined")
        rep.check(bool(p.get("receivers")) and bool(p.get("exporters")), where, f"pipeline {pname} has receivers and exporters")
    protocols = ((col.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}
    proto = exporter_env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    endpoint = exporter_env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if rep.check(endpoint is not None, "compose exporter", "OTEL_EXPORTER_OTLP_ENDPOINT is set"):
        host, port = host_port(endpoint)
        recv = (protocols.get("grpc" if proto == "grpc" else "http") or {}).get("endpoint", "")
        rep.check(host == "otel-collector" and recv.endswith(f":{port}"), "compose exporter",
                  f"OTEL_EXPORTER_OTLP_ENDPOINT ({proto}) reaches the collector's OTLP {proto} receiver",
                  f"{endpoint} vs receiver {recv}")
    prom_exp = (col.get("exporters") or {}).get("prometheus") or {}
    job = jobs.get("otel-collector")
    if rep.check(job is not None and bool(prom_exp), "compose prometheus", "scrapes the collector's prometheus exporter"):
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        port = prom_exp.get("endpoint", "").rsplit(":", 1)[-1]
        rep.check(targets == [f"otel-collector:{port}"], "compose prometheus", f"targets otel-collector:{port}", str(targets))


ANNOTATION_JOB = ROOT / "deploy/kubernetes/scrape-annotations/prometheus-job.yml"


def check_annotation_job(rep: Report, promtool: str) -> None:
    """The scrape job for annotation-based discovery: promtool, honor_labels, relabeling.

    Debian's promtool is built without Kubernetes service discovery, so the check swaps
    kubernetes_sd_configs for a static target; the relabel rules are checked as written.
    """
    where = "scrape-annotations/prometheus-job.yml"
    cfg = yaml.safe_load(ANNOTATION_JOB.read_text())
    jobs = cfg.get("scrape_configs", [])
    rep.check(len(jobs) == 1 and jobs[0].get("job_name") == EXPORTER, where, f"one job named {EXPORTER}")
    for job in jobs:
        rep.check(job.get("honor_labels") is True, where, "honor_labels: true keeps the Socket.IO `namespace` label")
        relabels = job.get("relabel_configs", [])
        rep.check(any(r.get("source_labels") == ["__meta_kubernetes_namespace"]
                      and r.get("target_label") == "kubernetes_namespace" for r in relabels),
                  where, "copies the Kubernetes namespace into kubernetes_namespace")
        rep.check(any(r.get("source_labels") == ["__meta_kubernetes_pod_annotation_prometheus_io_port",
                                                 "__meta_kubernetes_pod_ip"]
                      and r.get("target_label") == "__address__" for r in relabels),
                  where, "scrapes the port from prometheus.io/port")
        rep.check([r.get("role") for r in job.pop("kubernetes_sd_configs", [])] == ["pod"], where,
                  "discovers pods")
        job["static_configs"] = [{"targets": ["10.0.0.1:8797"]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(cfg, f)
    proc = subprocess.run([promtool, "check", "config", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    rep.check(proc.returncode == 0, where, "promtool check config accepts it (SD swapped for a static target)",
              (proc.stdout + proc.stderr).strip())


# ---------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    rep = Report(args.quiet)
    binary = Binary(args.binary)
    version = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    docker = check_dockerfile(rep, binary, version)
    containers = {}
    for spec in args.variants:
        variant, _, path = spec.partition("=")
        containers[variant] = check_variant(rep, binary, args.promtool, variant, Path(path), docker, version)
    if containers.get("native") and containers.get("classic"):
        native = {k: v for k, v in containers["native"].items() if k != "restartPolicy"}
        rep.check(native == containers["classic"], "kubernetes", "the classic sidecar is the native one without restartPolicy")
    if args.compose_config:
        check_compose(rep, binary, args.promtool, Path(args.compose_config), docker)
    check_annotation_job(rep, args.promtool)
    if rep.failures:
        print(f"wiring: {rep.failures} problem(s), {rep.passed} checks passed")
    else:
        print(f"wiring: all {rep.passed} checks passed")
    return 1 if rep.failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("rendered")
    s.add_argument("source")
    s.add_argument("out_dir")
    i = sub.add_parser("image-context")
    i.add_argument("--target-dir", required=True)
    i.add_argument("--dockerignore", help="default: the repository's .dockerignore")
    k = sub.add_parser("components")
    k.add_argument("rendered")
    c = sub.add_parser("check")
    c.add_argument("--binary", required=True)
    c.add_argument("--promtool", default="promtool")
    c.add_argument("--compose-config")
    c.add_argument("--quiet", action="store_true", help="print failures only")
    c.add_argument("variants", nargs="*", metavar="VARIANT=RENDERED")
    args = p.parse_args()
    return {"split": cmd_split, "components": cmd_components, "check": cmd_check,
            "image-context": cmd_image_context}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
