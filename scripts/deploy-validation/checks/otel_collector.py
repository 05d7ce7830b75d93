"""deploy/otel-collector/config.yaml: known components, complete pipelines, and the
exporter's OTLP endpoint and Prometheus's scrape job lined up with it."""

from __future__ import annotations

from pathlib import Path

import yaml

from .common import Report, host_port, static_targets

KNOWN_COMPONENTS = {
    # What deploy/otel-collector/config.yaml may use: all in the contrib distribution.
    "receivers": {"otlp", "prometheus"},
    "processors": {"batch", "memory_limiter", "resource", "attributes"},
    "exporters": {"debug", "prometheus", "otlp", "otlphttp"},
    "extensions": {"health_check"},
}
WHERE = "otel-collector/config.yaml"


def check_pipelines(rep: Report, col: dict) -> None:
    for section, known in KNOWN_COMPONENTS.items():
        for cid in col.get(section, {}) or {}:
            ctype = cid.split("/", 1)[0]
            rep.check(ctype in known, WHERE, f"{section}.{cid} is a known component type", ctype)
    pipelines = (col.get("service", {}) or {}).get("pipelines", {}) or {}
    rep.check("metrics" in pipelines, WHERE, "a metrics pipeline")
    for pname, p in pipelines.items():
        rep.check(pname.split("/", 1)[0] in ("metrics", "traces", "logs"), WHERE, f"pipeline {pname} has a signal type")
        for section in ("receivers", "processors", "exporters"):
            for cid in p.get(section, []) or []:
                rep.check(cid in (col.get(section) or {}), WHERE, f"pipeline {pname} uses {section[:-1]} {cid}, which is defined")
        rep.check(bool(p.get("receivers")) and bool(p.get("exporters")), WHERE, f"pipeline {pname} has receivers and exporters")


def check_otel_config(rep: Report, path: Path, exporter_env: dict[str, str], jobs: dict) -> None:
    col = yaml.safe_load(path.read_text())
    check_pipelines(rep, col)
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
        targets = static_targets(job)
        port = prom_exp.get("endpoint", "").rsplit(":", 1)[-1]
        rep.check(targets == [f"otel-collector:{port}"], "compose prometheus", f"targets otel-collector:{port}", str(targets))
