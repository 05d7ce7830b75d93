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

# The CLI; each check is a module of checks/, what they share is checks/common.py.

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from checks import components, image_context, split
from checks.annotation_job import check_annotation_job
from checks.common import ROOT, Binary, Report
from checks.compose import check_compose
from checks.dockerfile import check_dockerfile
from checks.kubernetes import check_variant


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
    return rep.exit_status()


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
    return {"split": split.run, "components": components.run, "check": cmd_check,
            "image-context": image_context.run}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
