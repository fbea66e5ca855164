"""The shipped Prometheus config and alert rules: valid for promtool, and every alert unit-tested.

Runs Debian's real ``promtool`` (``scripts/setup.sh`` installs the ``prometheus`` package).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
TESTS = sorted((PROM / "tests").glob("*.yml"))


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: run scripts/setup.sh (installs Debian's prometheus package)"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    out = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [r for r in group["rules"] if "alert" in r]
    return out


def test_rules_pass_promtool_check() -> None:
    r = promtool("check", "rules", *map(str, RULES))
    assert r.returncode == 0, r.stdout + r.stderr


def test_scrape_config_passes_promtool_check() -> None:
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = {c["job_name"] for c in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs == {"distillserve-gateway", "distillserve-distiller", "vllm"}


def test_rule_unit_tests_pass() -> None:
    r = promtool("test", "rules", *(p.name for p in TESTS), cwd=PROM / "tests")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names, "no alert rules found"
    assert names - firing == set(), "alerts without a test where they fire"
    assert names - quiet == set(), "alerts without a test where they stay quiet"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_and_text(rule: dict) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
