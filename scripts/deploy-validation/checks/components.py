"""components: what the sidecar component changes in an app, and what it leaves."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXPORTER, Report, by_kind_name, load_docs, pod_spec

SOURCE = Path(__file__).resolve().parents[1] / "fixtures/opt-in/deployments.yaml"


def run(args: argparse.Namespace) -> int:
    """Checks the render of fixtures/opt-in (web opted in, redis not)."""
    rep = Report()
    docs = load_docs(Path(args.rendered))
    source = load_docs(SOURCE)
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
    return rep.exit_status()
