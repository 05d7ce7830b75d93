"""The scrape job for annotation-based discovery: promtool, honor_labels, relabeling."""

from __future__ import annotations

import yaml

from .common import EXPORTER, ROOT, Report, promtool_check_yaml

ANNOTATION_JOB = ROOT / "deploy/kubernetes/scrape-annotations/prometheus-job.yml"


def check_annotation_job(rep: Report, promtool: str) -> None:
    """Debian's promtool is built without Kubernetes service discovery, so the check swaps
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
    rc, output = promtool_check_yaml(promtool, "config", cfg)
    rep.check(rc == 0, where, "promtool check config accepts it (SD swapped for a static target)", output.strip())
