"""split: sorts a rendered kustomization into core Kubernetes objects (for
kubernetes-validate) and Prometheus Operator objects (for crds.mjs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

CRD_GROUP = "monitoring.coreos.com/"


def run(args: argparse.Namespace) -> int:
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
