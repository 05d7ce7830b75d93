"""The Dockerfile: USER, EXPOSE (the binary's default port), ENTRYPOINT, no HEALTHCHECK."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .common import EXPORTER, ROOT, Binary, Report


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
