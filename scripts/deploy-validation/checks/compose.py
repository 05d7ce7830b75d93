"""Compose (the output of `docker-compose config`): the exporter's config passes
--check-config with the service's environment; published port, Prometheus scrape target,
Grafana provisioning paths and datasource URL, OTLP endpoint and collector ports line up;
every bind-mount source exists; `promtool check config` passes on the files as the
Prometheus container sees them."""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from pathlib import Path

import yaml

from .common import (EXPORTER, ROOT, Binary, Report, config_path_of, host_port, listen_of,
                     loopback_endpoint_port, promtool_check, static_targets, with_config)
from .dockerfile import parse_dockerfile
from .otel_collector import check_otel_config

# The compose stack's exporters and the app each one is the sidecar of.
SIDECARS = {"exporter": "app", "nextjs-exporter": "nextjs"}
SERVICES = (*SIDECARS, *SIDECARS.values(), "prometheus", "grafana", "otel-collector")
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
COLLECTOR_CONFIG = "/etc/otelcol-contrib/config.yaml"  # where the contrib image reads its config


class Mounts:
    """The bind mounts of each service, as (local source, target in the container)."""

    def __init__(self) -> None:
        self.by_service: dict[str, list[tuple[Path, str]]] = {}

    def add(self, service: str, src: Path, tgt: str) -> None:
        self.by_service.setdefault(service, []).append((src, tgt))

    def local(self, service: str, target: str) -> Path | None:
        """The local path the service sees at `target`, if a bind mount provides it."""
        for src, tgt in self.by_service.get(service, []):
            if target == tgt:
                return src
            if target.startswith(tgt.rstrip("/") + "/") and src.is_dir():
                return src / target[len(tgt.rstrip("/")) + 1:]
        return None


def check_mounts(rep: Report, services: dict) -> Mounts:
    """Every bind mount source exists (docker-compose config does not check), and every
    build's Dockerfile."""
    mounts = Mounts()
    for name, svc in services.items():
        for v in svc.get("volumes", []) or []:
            if isinstance(v, str):
                src, _, rest = v.partition(":")
                tgt = rest.split(":")[0]
            else:
                src, tgt = v.get("source"), v.get("target")
            src_path = Path(src)
            if src_path.is_absolute():
                mounts.add(name, src_path, tgt)
                rel = src_path.relative_to(ROOT) if src_path.is_relative_to(ROOT) else src_path
                rep.check(src_path.exists(), f"compose {name}", f"bind-mount source {rel} exists")
        build = svc.get("build")
        if build:
            df = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            rep.check(df.is_file(), f"compose {name}", f"Dockerfile {df.relative_to(ROOT)} exists")
    return mounts


def check_exporter(rep: Report, binary: Binary, services: dict, name: str, app_name: str,
                   mounts: Mounts, docker: dict) -> tuple[dict[str, str], str] | None:
    """The exporter service `name`: sidecar of `app_name`, config checked by the binary.
    Returns its environment and the `--check-config` output."""
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
    local = mounts.local(name, cfg_path)
    if not rep.check(local is not None and local.is_file(), ewhere, f"--config {cfg_path} is a mounted file"):
        return None
    rc, out = binary.check_config(with_config(command, str(local)), env)
    if not rep.check(rc == 0, ewhere, f"--check-config accepts {local.relative_to(ROOT)} with the service's environment", out.strip()):
        return None
    return env, out


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


def check_app(rep: Report, name: str, app_name: str, app: dict, port: int, out: str) -> None:
    """The app publishes its exporter's port, and the exporter's config calls the app."""
    published = [str(p) for p in app.get("ports", []) or []]
    rep.check(any(re.search(rf":{port}(/tcp)?$", p) for p in published), f"compose {app_name}",
              f"publishes the exporter's port {port}", str(published))
    endpoint = loopback_endpoint_port(out)
    port_of_app = app_port(app)
    rep.check(endpoint is not None and endpoint == port_of_app, f"compose {name}",
              f"the config's endpoint is {app_name}'s port on loopback",
              f"endpoint {endpoint}, {app_name} port {port_of_app}")
    server_id = re.search(r'server id "([^"]*)"', out)
    rep.check(server_id is not None and server_id.group(1) == app.get("hostname"), f"compose {name}",
              "server_id is the app container's hostname (admin-ui's default serverId)",
              f"{server_id and server_id.group(1)} vs hostname {app.get('hostname')}")


def check_prometheus(rep: Report, promtool: str, mounts: Mounts, port: int, nextjs_port: int) -> dict | None:
    """Prometheus: staged as the container sees its files, then promtool check config.
    Returns its scrape jobs by name."""
    pwhere = "compose prometheus"
    prom_local = mounts.local("prometheus", PROMETHEUS_CONFIG)
    if not rep.check(prom_local is not None, pwhere, f"{PROMETHEUS_CONFIG} is mounted"):
        return None
    prom = yaml.safe_load(prom_local.read_text())
    with tempfile.TemporaryDirectory() as stage:
        for src, tgt in mounts.by_service["prometheus"]:
            dst = Path(stage + tgt)
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
        absolute = [r for r in prom.get("rule_files", []) if r.startswith("/")]
        rep.check(not absolute, pwhere, "rule_files are relative to the config file, so the staged check sees them", str(absolute))
        rc, output = promtool_check(promtool, "config", stage + PROMETHEUS_CONFIG)
        output = output.strip()
        rep.check(rc == 0, pwhere, "promtool check config (with the rule files as mounted)", output)
        found = re.search(r"(\d+) rule files found", output)
        rep.check(found is not None and int(found.group(1)) >= 1, pwhere, "loads the alert rules", output)
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    job = jobs.get(EXPORTER)
    if rep.check(job is not None, pwhere, f"a scrape job named {EXPORTER} (the PodMonitor's job label)"):
        targets = static_targets(job)
        rep.check(targets == [f"app:{port}"], pwhere, f"scrapes app:{port}", str(targets))
        found = [(n, sd.get("port")) for sd in job.get("dns_sd_configs", []) for n in sd.get("names", [])]
        rep.check(("nextjs", nextjs_port) in found, pwhere,
                  f"finds nextjs:{nextjs_port} by DNS (while the nextjs profile runs)", str(found))
        rep.check(job.get("metrics_path", "/metrics") == "/metrics", pwhere, "scrapes /metrics")
        rep.check(job.get("honor_labels") is True, pwhere, "honor_labels: true keeps the Socket.IO `namespace` label")
    return jobs


def check_collector(rep: Report, services: dict, mounts: Mounts, env: dict[str, str], jobs: dict) -> None:
    """OpenTelemetry Collector: endpoints line up, pipelines are complete."""
    owhere = "compose otel-collector"
    col_local = mounts.local("otel-collector", COLLECTOR_CONFIG)
    if rep.check(col_local is not None, owhere, f"{COLLECTOR_CONFIG} (the contrib image's config path) is mounted"):
        rep.check(col_local == ROOT / "deploy/otel-collector/config.yaml", owhere, "from deploy/otel-collector/config.yaml")
        check_otel_config(rep, col_local, env, jobs)
    rep.check(str(services["otel-collector"].get("image", "")).startswith("otel/opentelemetry-collector-contrib:"),
              owhere, "runs the contrib distribution (it has the prometheus exporter)")


def check_grafana(rep: Report, mounts: Mounts) -> None:
    """Grafana: provisioning as issue 6 ships it, dashboards where the provider reads."""
    gwhere = "compose grafana"
    prov = mounts.local("grafana", "/etc/grafana/provisioning")
    if not rep.check(prov is not None and prov.is_dir(), gwhere, "grafana/provisioning is mounted at /etc/grafana/provisioning"):
        return
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
        local = mounts.local("grafana", path)
        rep.check(local is not None and (local / "socketio-exporter.json").is_file(), gwhere,
                  f"provider {p.get('name')} reads {path}, where grafana/dashboards (socketio-exporter.json) is mounted")


def check_compose(rep: Report, binary: Binary, promtool: str, compose_file: Path, docker: dict) -> None:
    cfg = yaml.safe_load(compose_file.read_text())
    services = cfg.get("services", {})
    for name in SERVICES:
        rep.check(name in services, "compose", f"service {name}")
    if rep.failures:
        return
    mounts = check_mounts(rep, services)
    checked = {}
    for name, app_name in SIDECARS.items():
        exporter = check_exporter(rep, binary, services, name, app_name, mounts, docker)
        if exporter is None:
            return
        port = int(listen_of(exporter[1]).rsplit(":", 1)[1])
        check_app(rep, name, app_name, services[app_name], port, exporter[1])
        checked[name] = (exporter[0], port)
    env, port = checked["exporter"]
    jobs = check_prometheus(rep, promtool, mounts, port, checked["nextjs-exporter"][1])
    if jobs is None:
        return
    check_collector(rep, services, mounts, env, jobs)
    check_grafana(rep, mounts)
