"""Kubernetes, per rendered variant (native, classic, cluster): the exporter container's
config, ports, probes and scrape config against the binary; its securityContext,
resources, image tag and sidecar form; the PrometheusRule."""

from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path

import yaml

from .common import (EXPORTER, ROOT, Binary, Report, by_kind_name, config_path_of, listen_of, load_docs,
                     loopback_endpoint_port, pod_spec, promtool_check_yaml, with_config)

# Measured resident memory of the exporter (README, "Performance"), in MiB.
MEASURED_RSS_MIB = 5
# What the downward API gives as metadata.name in the checks.
SAMPLE_POD_NAME = "socketio-app-5d8f7c9b6d-x7k2p"
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}


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


def selects(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        return False  # not used by the shipped manifests
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


# ---------------------------------------------------------------------------------------
# The checks of one exporter container, in the order they report


def check_form(rep: Report, where: str, variant: str, field: str, c: dict, version: str) -> None:
    """Sidecar form, and the image: the crate version, as the Dockerfile labels it."""
    if variant == "native":
        rep.check(field == "initContainers" and c.get("restartPolicy") == "Always", where,
                  "native sidecar: an init container with restartPolicy: Always")
    else:
        rep.check(field == "containers" and "restartPolicy" not in c, where, "a plain container")
    tag = str(c.get("image", "")).rsplit(":", 1)[-1]
    rep.check(tag == version, where, f"image tag is the crate version {version}", c.get("image"))


def shipped_config(rep: Report, where: str, docs: list[dict], workload: dict, c: dict,
                   docker: dict) -> tuple[list[str], dict[str, str], str] | None:
    """The container's args, its env and the text of the config the binary reads."""
    env = container_env(rep, where, docs, workload, c)
    args = [str(a) for a in c.get("args", []) or []]
    if c.get("command"):
        rep.fail(where, "command overrides the image's ENTRYPOINT; use args")
    cfg_path = config_path_of(args, env, docker["env"].get("SOCKETIO_EXPORTER_CONFIG"))
    text = mounted_config(rep, where, docs, workload, c, cfg_path) if cfg_path else None
    return None if text is None else (args, env, text)


def check_listen(rep: Report, where: str, variant: str, workload: dict, out: str) -> int:
    """The listen address and scope `--check-config` reports; returns the listen port."""
    listen = listen_of(out)
    port = int(listen.rsplit(":", 1)[1])
    rep.check(listen.startswith("0.0.0.0:") or listen.startswith("[::]:"), where,
              f"listens on all interfaces ({listen}), so the kubelet and Prometheus reach it")
    scope = re.search(r"^    scope: (.*)$", out, re.M).group(1)
    if variant == "cluster":
        rep.check(scope == "cluster", where, "scope = cluster", scope)
        rep.check(workload["spec"].get("replicas") == 2, where,
                  "two replicas (the shipped rules and dashboard merge them)")
        strategy = workload["spec"].get("strategy") or {}
        rep.check(strategy.get("type") == "RollingUpdate"
                  and (strategy.get("rollingUpdate") or {}).get("maxUnavailable") == 0, where,
                  "strategy RollingUpdate with maxUnavailable 0 (never fewer replicas than asked)")
    else:
        rep.check(scope == f'local, server id "{SAMPLE_POD_NAME}"', where,
                  "local scope, server id = the pod name (downward API)", scope)
    return port


def check_ports_and_probes(rep: Report, where: str, c: dict, port: int) -> tuple[str | None, set[str]]:
    """The container port and the probes; returns the port's name and the probed paths."""
    ports = [p for p in c.get("ports", []) or [] if p.get("containerPort") == port]
    if rep.check(len(ports) == 1, where, f"a container port {port} (the listen port)"):
        port_name = ports[0].get("name")
        rep.check(ports[0].get("protocol", "TCP") == "TCP", where, "the port is TCP")
    else:
        port_name = None
    paths = set()
    for probe, path in PROBE_PATHS.items():
        p = c.get(probe)
        if p is None:
            rep.check(probe == "startupProbe", where, f"has a {probe}")
            continue
        get = p.get("httpGet") or {}
        rep.check(get.get("path") == path and port_number(c, get.get("port")) == port, where,
                  f"{probe} GETs {path} on port {port}", f"{get.get('path')} on {get.get('port')}")
        paths.add(get.get("path"))
    return port_name, paths


def check_pod_monitors(rep: Report, variant: str, where: str, docs: list[dict], workload: dict,
                       port_name: str | None) -> set[str]:
    """The PodMonitors that select this pod; returns the paths they scrape."""
    labels = workload["spec"]["template"]["metadata"].get("labels", {}) or {}
    monitors = [d for d in docs if d.get("kind") == "PodMonitor"]
    paths = set()
    for pm in monitors:
        pwhere = f"kubernetes/{variant} PodMonitor/{pm['metadata']['name']}"
        rep.check(selects(pm["spec"].get("selector", {}), labels), pwhere, f"selects the pods of {workload['metadata']['name']}")
        rep.check("namespaceSelector" not in pm["spec"], pwhere, "scrapes its own namespace")
        for ep in pm["spec"].get("podMetricsEndpoints", []):
            rep.check(ep.get("port") == port_name and port_name is not None, pwhere,
                      f"scrapes the port named {port_name}", str(ep.get("port")))
            path = ep.get("path", "/metrics")
            rep.check(path == "/metrics", pwhere, "scrapes /metrics", path)
            paths.add(path)
            rep.check(ep.get("honorLabels") is True, pwhere, "honorLabels: true keeps the Socket.IO `namespace` label")
            copies = [r for r in ep.get("relabelings", []) or []
                      if r.get("sourceLabels") == ["__meta_kubernetes_namespace"]
                      and r.get("targetLabel") == "kubernetes_namespace"
                      and r.get("action", "replace") == "replace"]
            rep.check(len(copies) == 1, pwhere, "copies the Kubernetes namespace into kubernetes_namespace")
    if variant != "classic":
        rep.check(len(monitors) >= 1, where, "a PodMonitor scrapes it")
    return paths


def check_annotations(rep: Report, where: str, workload: dict, port: int) -> set[str]:
    """The prometheus.io annotations; returns the path they scrape."""
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {}) or {}
    if annotations.get("prometheus.io/scrape") != "true":
        rep.fail(where, "no prometheus.io/scrape annotation on the pod template")
        return set()
    rep.check(annotations.get("prometheus.io/port") == str(port), where,
              f"prometheus.io/port is {port}", str(annotations.get("prometheus.io/port")))
    path = annotations.get("prometheus.io/path", "/metrics")
    rep.check(path == "/metrics", where, "prometheus.io/path is /metrics", path)
    return {path}


def check_serving(rep: Report, where: str, binary: Binary, args: list[str], env: dict[str, str],
                  paths: set[str], workload: dict) -> None:
    """The binary really serves those paths, and stops in time."""
    problems = binary.serve_and_probe(args, env, sorted(paths))
    grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)
    rep.check(not problems, where,
              f"the binary with this config answers 200 on {', '.join(sorted(paths))} and exits 0 on SIGTERM within 5 s",
              "; ".join(problems))
    rep.check(grace > 5, where, f"terminationGracePeriodSeconds {grace} > the exporter's 5 s shutdown")


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


def check_app_endpoint(rep: Report, where: str, workload: dict, out: str) -> None:
    """The example app's port is the one the sidecar config calls."""
    endpoint = loopback_endpoint_port(out)
    app = [x for x in pod_spec(workload).get("containers", []) if x.get("name") != EXPORTER]
    app_ports = {p["containerPort"] for x in app for p in x.get("ports", []) or []}
    rep.check(endpoint is not None and int(endpoint) in app_ports, where,
              "the config's endpoint is the app container's port on loopback",
              f"endpoint port {endpoint}, app ports {sorted(app_ports)}")


def check_prometheus_rules(rep: Report, promtool: str, variant: str, docs: list[dict]) -> None:
    """The PrometheusRule is the rule file, and promtool accepts it."""
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    source = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for r in rules:
        rwhere = f"kubernetes/{variant} PrometheusRule/{r['metadata']['name']}"
        rep.check(r["spec"] == source, rwhere, "spec equals deploy/prometheus/alerts.yml")
        rc, output = promtool_check_yaml(promtool, "rules", r["spec"])
        rep.check(rc == 0, rwhere, "promtool check rules accepts its spec", output)


def check_variant(rep: Report, binary: Binary, promtool: str, variant: str, rendered: Path,
                  docker: dict, version: str) -> dict | None:
    """Checks one rendered variant; returns its exporter container if the config checks out."""
    docs = load_docs(rendered)
    where = f"kubernetes/{variant}"
    found = find_exporter(docs)
    if not rep.check(len(found) == 1, where, f"exactly one {EXPORTER} container", f"found {len(found)}"):
        return None
    workload, field, c = found[0]
    where = f"{where} {workload['kind']}/{workload['metadata']['name']}"
    check_form(rep, where, variant, field, c, version)
    shipped = shipped_config(rep, where, docs, workload, c, docker)
    if shipped is None:
        return None
    args, env, text = shipped
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, "config.toml")
        local.write_text(text)
        run_args = with_config(args, str(local))
        rc, out = binary.check_config(run_args, env)
        if not rep.check(rc == 0, where, "--check-config accepts the shipped ConfigMap with the container's env", out.strip()):
            return None
        port = check_listen(rep, where, variant, workload, out)
        port_name, paths = check_ports_and_probes(rep, where, c, port)
        paths |= check_pod_monitors(rep, variant, where, docs, workload, port_name)
        paths |= check_annotations(rep, where, workload, port)
        check_serving(rep, where, binary, run_args, env, paths, workload)
    check_security(rep, where, workload, c, docker["user"])
    check_resources(rep, where, c)
    if variant in ("native", "classic"):
        check_app_endpoint(rep, where, workload, out)
    check_prometheus_rules(rep, promtool, variant, docs)
    return c
