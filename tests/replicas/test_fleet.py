"""One truth across replicas, end to end: 3 gateway processes, 2 student replicas (a real vLLM
CPU server, and the embedded engine on vLLM's OpenAI + LoRA wire: two vLLM servers do not fit
beside three gateways on the 2-core, 24 GB test machine), the adapter registry on a real S3
server (moto), all driven by the official ``openai`` SDK.

- gateways started on a registry whose live version is v1 serve v1 from their first request;
- promote v2 through one gateway's admin API: all three serve v2 within 5 s, and a client
  load running all the while on every gateway sees no failed request;
- a gateway killed and started again serves v2 from its first request;
- roll back through another gateway: all three return to v1;
- a 10% canary holds fleet-wide within ±3 points over 1,000 requests (the split is
  deterministic per gateway, so the fleet is within one request per gateway of 10%).

The measured convergence times and failed-request counts are printed (``-s``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from distillserve.adapters.registry import AdapterCard, AdapterRegistry
from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.launchers.vllm_process import VLLMProcess
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.lora_adapters import make_lora_adapter
from tests.support.lora_students import start_lora_student
from tests.support.processes import free_port
from tests.support.s3 import S3Server, start_s3
from tests.support.servers import Server, start_gateway

# Six processes start on two shared cores: the module's set-up alone can take minutes.
pytestmark = pytest.mark.timeout(1800)

ADMIN = "fleet-admin-key"
BOUND_S = 5.0  # the convergence bound
POLL_S = 1.0


@dataclass
class Fleet:
    tmp: Path
    s3: S3Server
    registry: AdapterRegistry
    config: dict[str, Any]
    gateways: list[Server] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start_gateway(self) -> Server:
        return self.stack.enter_context(start_gateway(self.tmp, self.config, timeout=240))

    def name(self, version: str) -> str:
        return self.registry.adapter_name(version)


def _client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0, timeout=60)


def served_by(gw: Server) -> str:
    """The adapter the gateway's student route answered with (the response's ``model``)."""
    answer = _client(gw).chat.completions.create(
        model="student", messages=[{"role": "user", "content": "copy: ab"}], max_tokens=1, temperature=0
    )
    return answer.model


def admin(gw: Server, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = gw.url.removesuffix("/v1") + path
    r = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


class Load:
    """Clients asking every gateway in turn, all the time, counting answers by model and failures."""

    def __init__(self, gateways: list[Server], threads: int = 3) -> None:
        self.gateways = gateways
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, offset: int) -> None:
        n = offset
        while not self._stop.is_set():
            gw = self.gateways[n % len(self.gateways)]
            n += 1
            try:
                self.served[served_by(gw)] += 1
            except Exception as exc:  # every failure is counted, whatever its kind
                self.failures.append(f"{gw.url}: {type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)


def converge(gateways: list[Server], adapter: str, bound_s: float) -> float:
    """Seconds until every gateway answers with ``adapter`` (polled), at most ``bound_s`` + 30."""
    start, pending = time.monotonic(), set(range(len(gateways)))
    while pending and time.monotonic() - start < bound_s + 30:
        for i in list(pending):
            if served_by(gateways[i]) == adapter:
                pending.discard(i)
        time.sleep(0.05)
    assert not pending, f"gateways {sorted(pending)} never served {adapter}"
    return time.monotonic() - start


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    base = ensure_testbed_student(pretrain=False)  # a shape vLLM's CPU kernels serve
    # Three versions can be held at once (live, canary, and the one waiting to be unloaded).
    args = VLLMEngineArgs(max_lora_rank=8, max_loras=3, max_model_len=256)
    engine = VLLMProcess(base, port=free_port(), served_name="base", args=args, log_path=tmp / "vllm.log")
    with contextlib.ExitStack() as outer:
        engine.start()  # boots while S3, the adapters and the other replica come up
        outer.callback(engine.stop)
        s3 = outer.enter_context(start_s3(tmp))
        s3.create_bucket("fleet")
        url = "s3://fleet/registry"
        registry = AdapterRegistry(url, str(base), storage_options=s3.storage_options())
        for seed in (1, 2, 3):
            adapter = make_lora_adapter(base, tmp / f"adapter-{seed}", seed=seed, rank=4)
            registry.register(adapter, AdapterCard(base_model=str(base)))
        registry.mark_live("v1", by="test", reason="live before any gateway starts")
        embedded = outer.enter_context(start_lora_student(tmp, base))
        engine.wait_ready(900)
        replica_urls = [engine.url, embedded.url]
        config = {
            "student": {
                "kind": "vllm",
                "name": "student",
                "url": replica_urls[0],
                "replica_urls": replica_urls,
                "watch_interval_s": 2.0,
            },
            "teacher": {"kind": "testbed", "name": "teacher"},
            "teacher_log": {"enabled": False, "sink": "none"},
            "server": {"admin_key": ADMIN},
            "distiller": {"base_model": str(base)},
            "registry": {
                "url": url,
                "storage_options": s3.storage_options(),
                "poll_interval_s": POLL_S,
                "unload_after_s": 6.0,
                "cache_dir": str(tmp / "adapter-cache"),
            },
        }
        fleet = Fleet(tmp, s3, registry, config)
        outer.enter_context(fleet.stack)
        fleet.gateways = [fleet.start_gateway() for _ in range(3)]
        yield fleet


def test_gateways_start_on_the_live_version(fleet: Fleet) -> None:
    assert [served_by(gw) for gw in fleet.gateways] == [fleet.name("v1")] * 3


def test_promotion_reaches_every_gateway_within_the_bound_without_a_failed_request(fleet: Fleet) -> None:
    a = fleet.gateways[0]
    with Load(fleet.gateways) as load:
        time.sleep(1.0)  # traffic on v1 first
        start = time.monotonic()
        admin(a, "POST", "/admin/registry/promote", {"version": "v2"})
        written = time.monotonic() - start
        after_write = converge(fleet.gateways, fleet.name("v2"), BOUND_S)
        time.sleep(1.0)  # and on v2 after
    print(
        f"\npromote v2: admin call (load + probe on both replicas, registry write) {written:.2f}s, "
        f"then all 3 gateways on v2 {after_write:.2f}s later ({written + after_write:.2f}s in all); "
        f"{sum(load.served.values())} requests during the swap, {len(load.failures)} failed: {dict(load.served)}"
    )
    assert load.failures == []
    assert load.served[fleet.name("v1")] > 0 and load.served[fleet.name("v2")] > 0
    # The bound is on the fleet following the registry: from the write to the last gateway.
    assert after_write <= BOUND_S


def test_a_restarted_gateway_serves_the_live_version_from_its_first_request(fleet: Fleet) -> None:
    victim = fleet.gateways.pop()
    os.killpg(victim.pid, signal.SIGKILL)  # killed, not stopped: nothing is handed over
    fresh = fleet.start_gateway()
    fleet.gateways.append(fresh)
    assert served_by(fresh) == fleet.name("v2")


def test_rollback_returns_every_gateway_to_the_previous_version(fleet: Fleet) -> None:
    time.sleep(6.5)  # past unload_after_s: v1 has been unloaded from the replicas, rollback reloads it
    with Load(fleet.gateways) as load:
        start = time.monotonic()
        assert admin(fleet.gateways[1], "POST", "/admin/registry/rollback")["live"] == "v1"
        written = time.monotonic() - start
        after_write = converge(fleet.gateways, fleet.name("v1"), BOUND_S)
    print(
        f"\nrollback to v1: admin call (v1 loaded again on both replicas, registry write) "
        f"{written:.2f}s, then all 3 gateways on v1 {after_write:.2f}s later; "
        f"{sum(load.served.values())} requests, {len(load.failures)} failed: {dict(load.served)}"
    )
    assert load.failures == []
    assert after_write <= BOUND_S


def test_a_ten_percent_canary_holds_fleet_wide(fleet: Fleet) -> None:
    admin(fleet.gateways[0], "POST", "/admin/registry/canary", {"version": "v3", "share": 0.1})
    deadline = time.monotonic() + BOUND_S + 30
    while time.monotonic() < deadline:
        states = [admin(gw, "GET", "/admin/student") for gw in fleet.gateways]
        if all(s["canary"] == fleet.name("v3") and s["canary_share"] == 0.1 for s in states):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the canary did not reach every gateway: {states}")
    n = 1000
    with ThreadPoolExecutor(6) as pool:
        models = list(pool.map(lambda i: served_by(fleet.gateways[i % 3]), range(n)))
    counts = Counter(models)
    share = counts[fleet.name("v3")] / n
    print(f"\ncanary 10%: {dict(counts)} over {n} requests -> {share:.3f}")
    assert set(counts) == {fleet.name("v1"), fleet.name("v3")}
    assert abs(share - 0.10) <= 0.03
