"""Two gateway processes share one learned router through the registry, on a local registry and
on a real S3 server (moto in server mode), driven over HTTP by the official ``openai`` SDK:

- gateway A (``router.shared_model: publish``) fits the classifier on its own teacher answers
  (the student, a real process, gets ``reverse`` and ``sort`` wrong) and publishes it;
- gateway B (``follow``) never fits: it loads the published classifier within the bound, and
  both gateways then route every prompt alike, with the same difficulty;
- B, restarted, has loaded it before it answers its first request.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from distillserve.adapters.registry import AdapterRegistry
from distillserve.testbed.tasks import sample
from tests.support.flawed_student import start_flawed_student
from tests.support.prometheus import sample as metric
from tests.support.prometheus import scrape
from tests.support.s3 import start_s3
from tests.support.servers import Server, start_gateway

KEY = "sk-shared-router"
BASE = "tiny-base"
POLL_S = 0.5
BOUND_S = 5.0  # the fleet's convergence target (issue 19)
EASY = ["copy", "upper", "first"]
WRONG = ["reverse", "sort"]  # what the student process answers by echoing its input
PROMPTS = [p for p, _ in sample(EASY + WRONG, 20, seed=7)]


def gateway_config(student: Server, registry: dict[str, Any], mode: str, tmp: Path) -> dict[str, Any]:
    # Each gateway its own local classifier file: the default (.cache/router/) is shared by every
    # test on the machine, and a file left there by another would look like a published model.
    local_classifier = tmp / f"classifier-{uuid.uuid4().hex}.npz"
    return {
        "server": {"api_keys": [KEY]},
        "student": {"kind": "openai", "name": "student", "url": student.url, "timeout_s": 10},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "distiller": {"base_model": BASE},  # the registry's base folder
        "registry": {**registry, "poll_interval_s": POLL_S},
        "router": {
            "scorer": "embedding",
            "threshold": 0.5,
            "scorer_timeout_s": 5.0,
            "shared_model": mode,
            "embedding": {"classifier_path": str(local_classifier)},
            "retrain": {"min_examples": 40},
        },
        "teacher_log": {"sink": "none"},
    }


def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0, timeout=30)


def ask(gw: Server, prompt: str, **headers: str) -> dict[str, Any]:
    r = client(gw).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": prompt}], extra_headers=headers or None
    )
    return r.model_extra["distillserve"]


def metric_of(gw: Server, name: str, **labels: str) -> float:
    return metric(scrape(f"http://127.0.0.1:{gw.port}/metrics"), name, **labels)


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    started = time.monotonic()
    while not cond():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(every)
    return time.monotonic() - started


def wait_embedding_ready(gw: Server) -> None:
    """The embedding model loads in the background; the heuristic answers meanwhile."""
    wait_for(lambda: ask(gw, "copy: ready")["scorer"] == "embedding", 180, "embedding scorer", every=0.5)


def routes(gw: Server) -> list[tuple[str, float]]:
    return [(d["route"], d["difficulty"]) for d in (ask(gw, p) for p in PROMPTS)]


@pytest.fixture(params=["local", "s3"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "local":
        yield {"url": str(tmp_path / "registry")}
        return
    with start_s3(tmp_path) as s3:
        s3.create_bucket("fleet")
        yield {"url": "s3://fleet/registry", "storage_options": s3.storage_options()}


def test_one_published_classifier_routes_both_gateways_and_a_restarted_one(
    registry: dict[str, Any], tmp_path: Path
) -> None:
    reg = AdapterRegistry(registry["url"], BASE, storage_options=registry.get("storage_options"))
    with contextlib.ExitStack() as stack:
        student = stack.enter_context(start_flawed_student(tmp_path, wrong=",".join(WRONG)))
        a = stack.enter_context(
            start_gateway(tmp_path, gateway_config(student, registry, "publish", tmp_path))
        )
        with start_gateway(tmp_path, gateway_config(student, registry, "follow", tmp_path)) as b:
            assert ask(b, "reverse: abc")["scorer"] == "heuristic"  # nothing published: cold start

            # Teacher answers on A only: what A's router learns the student can do.
            for prompt, _ in sample(EASY + WRONG, 40, seed=3):
                assert ask(a, prompt, **{"x-distillserve-route": "teacher"})["route"] == "teacher"
            wait_for(
                lambda: metric_of(a, "distillserve_router_model_publishes_total", outcome="published") >= 1,
                300,
                "A fits and publishes",
                every=0.5,
            )
            wait_for(
                lambda: metric_of(b, "distillserve_router_model_loads_total", outcome="loaded") >= 1,
                2 * BOUND_S,
                "B loads the published classifier",
            )
            seen_at = time.time()
            ref = reg.state().router_model
            assert ref is not None and ref.adapter_version is None  # fitted to the base student
            converged = seen_at - ref.published_at  # from the state write to B's scrape saying loaded
            print(f"\nB loaded A's classifier within {converged:.2f}s of its publication (poll {POLL_S}s)")
            assert converged < BOUND_S

            wait_embedding_ready(a)
            wait_embedding_ready(b)
            on_a, on_b = routes(a), routes(b)
            assert on_a == on_b  # same route, same difficulty to 4 decimals, prompt by prompt
            assert {r for r, _ in on_a} == {"student", "teacher"}, on_a  # a real split, not one class
            assert metric_of(b, "distillserve_router_model_publishes_total", outcome="published") == 0

        with start_gateway(tmp_path, gateway_config(student, registry, "follow", tmp_path)) as b2:
            # Loaded before the app took connections: the first scrape already counts it.
            assert metric_of(b2, "distillserve_router_model_loads_total", outcome="loaded") == 1
            wait_embedding_ready(b2)
            assert routes(b2) == on_a
