"""A promotion hands the version's eval agreement to the gateway as its drift baseline.

Both promotion paths, against a real gateway (embedded testbed student, shadow sampling on):
the distiller's, over the student admin API (``GatewayAdminActivator``), and the ML engineer's,
through the gateway's own registry API (in-process hot-swap). Without it, drift would be
measured from the first window of live traffic instead of from what the evaluation showed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from distillserve.adapters.promotion import GatewayAdminActivator, Promoter
from distillserve.adapters.registry import AdapterCard, AdapterRegistry
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.lora_adapters import make_lora_adapter
from tests.support.servers import start_gateway

ADMIN_KEY = "adm-baseline-test"
BASE = "testbed-student"


def _baselines(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("distillserve_student_agreement_baseline_ratio{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('adapter="')[1].split('"')[0]] = float(value)
    return out


def test_both_promotion_paths_set_the_drift_baseline(tmp_path: Path) -> None:
    base_dir = Path(ensure_testbed_student())
    reg = AdapterRegistry(str(tmp_path / "registry"), BASE)
    for seed, em in ((1, 0.8), (2, 0.6)):
        adapter = make_lora_adapter(base_dir, tmp_path / f"adapter-{seed}", seed=seed)
        reg.register(
            adapter, AdapterCard(base_model=BASE, eval={"candidate": {"heldout": {"exact_match": em}}})
        )
    cfg = {
        "server": {"admin_key": ADMIN_KEY},
        "student": {"kind": "embedded", "name": "student", "model_path": BASE},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "teacher_log": {"enabled": False, "sink": "none"},
        "monitoring": {"shadow_rate": 0.05},
        "registry": {"url": str(tmp_path / "registry")},
    }
    with start_gateway(tmp_path, cfg, ready_path="/readyz") as gw:
        assert _baselines(gw.port) == {}
        promoter = Promoter(reg, GatewayAdminActivator(f"http://127.0.0.1:{gw.port}", ADMIN_KEY))
        asyncio.run(promoter.promote("v1", by="distiller"))
        assert _baselines(gw.port) == {"student@v1": 0.8}
        r = httpx.post(
            f"http://127.0.0.1:{gw.port}/admin/registry/promote",
            json={"version": "v2"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert _baselines(gw.port) == {"student@v1": 0.8, "student@v2": 0.6}
        assert reg.live() == "v2"
