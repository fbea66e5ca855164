"""The closed loop on real parts, each its own process: the gateway (embedded student on the
pre-trained testbed student, testbed teacher, Kafka teacher log), a real broker, and the
``distillserve distill`` worker that hot-swaps through the gateway's admin API.

Clients ask the teacher ``reverse`` through the official SDK; the gateway logs the answers to
Kafka; the worker trains, evaluates, registers and promotes; afterwards the *gateway's student*
answers held-out ``reverse`` prompts it could not before, while a base skill stays. Then a
poisoned batch (garbage teacher answers) is refused by the gate, and the ML engineer's CLI
promotes, rolls back and sets a canary through the gateway. Exact match is measured here, on
the gateway, on prompts the teacher log never carried.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from distillserve.adapters.registry import AdapterRegistry
from distillserve.launchers.local_broker import LocalBroker
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.testbed.tasks import BASE_TASKS, LETTERS, sample
from tests.support.broker import create_topics, running_broker, teacher_log_config
from tests.support.distiller_worker import BASE, distiller_config, log_to_broker, wait_for, write_config
from tests.support.processes import python_module, running, stop_process
from tests.support.servers import start_gateway
from tests.support.teacher_records import teacher_records

N_RECORDS = 240
ADMIN_KEY = "adm-loop-test"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def ask(client: OpenAI, prompts: list[str], model: str) -> list[str]:
    def one(p: str) -> str:
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": p}], temperature=0, max_tokens=24
        )
        return (r.choices[0].message.content or "").strip()

    with ThreadPoolExecutor(8) as pool:  # the engine batches concurrent requests
        return list(pool.map(one, prompts))


def exact_match(client: OpenAI, tasks: list[str], n: int, seed: int) -> float:
    pairs = sample(tasks, n, seed)
    got = ask(client, [p for p, _ in pairs], "student")
    return sum(g == a for g, (_, a) in zip(got, pairs, strict=True)) / n


def garbage_records(n: int, seed: int) -> list[TeacherLogRecord]:
    """Reverse prompts with random-letter answers: a teacher gone wrong."""
    rng = random.Random(seed)
    out = []
    for r in teacher_records(["reverse"], n, seed):
        junk = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 8)))
        out.append(r.model_copy(update={"response_text": junk, "logprobs": None}))
    return out


@pytest.fixture(scope="module")
def loop(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("loop")
    tl = teacher_log_config(broker, tmp)
    create_topics(broker, tl)
    gw_cfg = {
        "server": {"admin_key": ADMIN_KEY},
        "student": {"kind": "embedded", "name": "student", "model_path": BASE},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "teacher_log": tl.model_dump(mode="json"),
        "registry": {"url": str(tmp / "registry")},
    }
    with start_gateway(tmp, gw_cfg, ready_path="/readyz") as gw:
        client = OpenAI(base_url=gw.url, api_key="unused", max_retries=0, timeout=120)
        started = time.monotonic()
        # Held-out prompts are drawn with other seeds than the logged ones.
        before = exact_match(client, ["reverse"], 60, seed=555)
        base_before = exact_match(client, BASE_TASKS, 60, seed=556)
        logged = [p for p, _ in sample(["reverse"], N_RECORDS, seed=11)]
        ask(client, logged, "teacher")  # the gateway logs every teacher answer to Kafka
        promotion = {"via": "gateway", "gateway_url": f"http://127.0.0.1:{gw.port}"}
        cfg = distiller_config(tmp, tl, promotion=promotion)
        cfg["server"] = {"admin_key": ADMIN_KEY}
        cfg["registry"] = gw_cfg["registry"]
        path = write_config(tmp, cfg)
        port = cfg["monitoring"]["distiller_metrics_port"]
        log = tmp / "distiller.log"
        cmd = python_module("distillserve", "distill", "--config", str(path))
        with running(cmd, ready_url=f"http://127.0.0.1:{port}/metrics", log_path=log, timeout=120) as proc:
            reg = AdapterRegistry(cfg["registry"]["url"], BASE)
            try:
                wait_for(lambda: reg.live() is not None, 900, proc, "a promoted version")
            except AssertionError:
                print(log.read_text()[-6000:])
                raise
            yield {
                "tmp": tmp,
                "tl": tl,
                "client": client,
                "gateway": gw,
                "config_path": path,
                "registry": reg,
                "proc": proc,
                "metrics_url": f"http://127.0.0.1:{port}/metrics",
                "log": log,
                "seconds": time.monotonic() - started,
                "before": before,
                "base_before": base_before,
                "distinct": len(set(logged)),  # a repeated prompt is dropped as a duplicate
            }


def served_model(client: OpenAI) -> str:
    r = client.chat.completions.with_raw_response.create(
        model="student", messages=[{"role": "user", "content": "copy: abc"}], max_tokens=4, temperature=0
    )
    return r.headers["x-distillserve-model"]


def test_closed_loop_learns_reverse_and_keeps_a_base_skill(loop: dict[str, Any]) -> None:
    reg: AdapterRegistry = loop["registry"]
    client: OpenAI = loop["client"]
    assert reg.live() == "v1"
    assert served_model(client) == "student@v1"  # hot-swapped into the gateway's student
    card = reg.card("v1")
    # Lineage: the card names the offsets it trained on; every logged record is accounted for.
    assert sum(o.last - o.first + 1 for o in card.offsets) == N_RECORDS
    assert card.records["seen"] == N_RECORDS and card.records["kept"] == loop["distinct"]
    assert card.records["dropped"].get("duplicate", 0) == N_RECORDS - loop["distinct"]
    assert card.gate and card.gate["promote"] and card.status == "live"
    after = exact_match(client, ["reverse"], 60, seed=555)
    base_after = exact_match(client, BASE_TASKS, 60, seed=556)
    print(
        f"\nLOOP reverse {loop['before']:.3f} -> {after:.3f}; base {loop['base_before']:.3f} -> "
        f"{base_after:.3f}; first request to live {loop['seconds']:.0f}s; card timings {card.timings}"
    )
    assert loop["before"] <= 0.1
    assert after >= 0.4
    assert base_after >= 0.7
    metrics = httpx.get(loop["metrics_url"]).text
    assert 'distillserve_distiller_runs_total{outcome="promoted"} 1.0' in metrics
    assert f'distillserve_distiller_records_total{{outcome="kept"}} {float(loop["distinct"])}' in metrics


def test_poisoned_batch_is_not_promoted(loop: dict[str, Any]) -> None:
    reg: AdapterRegistry = loop["registry"]
    log_to_broker(loop["tl"], garbage_records(N_RECORDS, seed=12))
    wait_for(lambda: "v2" in reg.versions(), 900, loop["proc"], "the poisoned candidate")
    card = reg.card("v2")
    assert card.status == "candidate" and not card.gate["promote"], card.gate
    assert reg.live() == "v1" and served_model(loop["client"]) == "student@v1"
    metrics = httpx.get(loop["metrics_url"]).text
    assert 'distillserve_distiller_runs_total{outcome="held"} 1.0' in metrics


def _cli(loop: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    gateway = f"http://127.0.0.1:{loop['gateway'].port}"
    return subprocess.run(
        python_module("distillserve", "adapters", *args, "--config", str(loop["config_path"]))
        + (["--gateway", gateway] if args[0] in ("promote", "rollback", "canary") else []),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_list_show_diff_promote_rollback_canary(loop: dict[str, Any]) -> None:
    reg: AdapterRegistry = loop["registry"]
    client: OpenAI = loop["client"]
    wait_for(lambda: "v2" in reg.versions(), 900, loop["proc"], "v2")
    stop_process(loop["proc"])  # the worker is done; the ML engineer takes over
    listing = _cli(loop, "list")
    assert listing.returncode == 0 and "v1" in listing.stdout and "live" in listing.stdout
    shown = json.loads(_cli(loop, "show", "v2").stdout)
    assert shown["version"] == "v2" and shown["parent"] == "v1"
    diff = json.loads(_cli(loop, "diff", "v1", "v2").stdout)
    assert set(diff["sets"]) >= {"heldout", "regression"}
    missing = _cli(loop, "show", "v9")
    assert missing.returncode == 1 and "no version 'v9'" in missing.stderr
    # A person overrides the gate; the gateway serves it; then rolls back.
    assert _cli(loop, "promote", "v2").returncode == 0 and reg.live() == "v2"
    assert served_model(client) == "student@v2"
    back = _cli(loop, "rollback")
    assert back.returncode == 0 and "v1 is live" in back.stdout and reg.live() == "v1"
    assert served_model(client) == "student@v1"
    canary = _cli(loop, "canary", "v2", "--share", "0.5")
    assert canary.returncode == 0, canary.stderr
    st = reg.state()
    assert (st.live, st.canary, st.canary_share) == ("v1", "v2", 0.5)
    seen = {served_model(client) for _ in range(24)}
    assert seen == {"student@v1", "student@v2"}  # both serve, at about the set share
    assert _cli(loop, "canary", "off").returncode == 0 and reg.state().canary is None
    assert {served_model(client) for _ in range(8)} == {"student@v1"}
    bad = _cli(loop, "canary", "v1", "--share", "0.5")
    assert bad.returncode == 1 and "already live" in bad.stderr
    # The same through the gateway's registry API, swapping in-process.
    api = f"http://127.0.0.1:{loop['gateway'].port}/admin/registry"
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.post(f"{api}/promote", json={"version": "v2"}, headers=auth, timeout=60).status_code == 200
    assert served_model(client) == "student@v2"
    assert httpx.post(f"{api}/rollback", headers=auth, timeout=60).json()["live"] == "v1"
    assert served_model(client) == "student@v1"
    assert httpx.get(f"{api}/versions", headers={"Authorization": "Bearer nope"}).status_code == 403
    # A corrupt version is refused at promote, and the gateway keeps serving the live one.
    weights = Path(reg.version_path("v2"), "adapter_model.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    refused = _cli(loop, "promote", "v2")
    assert refused.returncode == 1 and "checksum" in refused.stderr
    assert reg.live() == "v1" and served_model(client) == "student@v1"
