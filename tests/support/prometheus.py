"""A real Prometheus server (Debian's ``prometheus`` package) for tests, and /metrics parsing.

The server runs the shipped ``deploy/prometheus/prometheus.yml`` with its jobs pointed at
the processes a test started (jobs without one are left out, and the caller says so),
the shipped alert and recording rules, a short scrape interval and a temporary TSDB.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import REPO_ROOT, free_port, running

PROM_DIR = REPO_ROOT / "deploy" / "prometheus"


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page, keyed by (name, labels)."""
    text = httpx.get(url, timeout=10).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@dataclass
class Prometheus:
    url: str  # http://127.0.0.1:PORT
    jobs: dict[str, list[str]]  # job -> targets actually scraped

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; raises AssertionError with Prometheus' message if it fails."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        r = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=30)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", f"{expr!r}: {body}"
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        r = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=30)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", f"{expr!r}: {body}"
        return body["data"]["result"]

    def targets_up(self) -> dict[str, bool]:
        r = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["scrapeUrl"]: t["health"] == "up" for t in r["data"]["activeTargets"]}

    def wait_scraped(self, timeout: float = 30) -> None:
        """Until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = self.targets_up()
            if up and all(up.values()):
                return
            time.sleep(0.5)
        raise TimeoutError(f"targets not up after {timeout}s: {self.targets_up()}")


def config_for(jobs: dict[str, list[str]], interval: str) -> dict[str, Any]:
    """The shipped config with short intervals, the shipped rules, and ``jobs``' targets."""
    cfg = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval=interval, evaluation_interval=interval)
    cfg["rule_files"] = [str(PROM_DIR / r) for r in cfg["rule_files"]]
    kept = []
    for job in cfg["scrape_configs"]:
        targets = jobs.get(job["job_name"])
        if targets:
            job["static_configs"] = [{"targets": targets}]
            kept.append(job)
    unknown = set(jobs) - {j["job_name"] for j in kept}
    assert not unknown, f"jobs not in the shipped prometheus.yml: {unknown}"
    cfg["scrape_configs"] = kept
    return cfg


@contextlib.contextmanager
def start_prometheus(tmp: Path, jobs: dict[str, list[str]], *, interval: str = "1s") -> Iterator[Prometheus]:
    exe = shutil.which("prometheus")
    assert exe, "prometheus not found: run scripts/setup.sh (installs Debian's prometheus package)"
    port = free_port()
    cfg_path = tmp / f"prometheus-{port}.yml"
    cfg_path.write_text(yaml.safe_dump(config_for(jobs, interval)))
    cmd = [
        exe,
        f"--config.file={cfg_path}",
        f"--storage.tsdb.path={tmp / f'tsdb-{port}'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/-/ready", log_path=tmp / f"prometheus-{port}.log"):
        yield Prometheus(f"http://127.0.0.1:{port}", jobs)
