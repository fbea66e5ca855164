"""The learned scorer inside the gateway: over real HTTP with the openai SDK it routes by the
trained classifier, answers bad input with a route (never a router error), and the router
retrains from the teacher answers the gateway served when a better student goes live.

The student here is the testbed oracle under the name "student" (it answers every task right),
so that routing, not a model, is what these tests see; the real student is in
``test_router_learning.py`` and ``test_router_cascade.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from distillserve.backends.testbed_teacher import TestbedTeacher as Oracle
from distillserve.config import RouterConfig, Settings
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.router import Router
from distillserve.serving.gateway import Gateway
from distillserve.testbed.tasks import BASE_TASKS, HARD_TASKS
from tests.router.test_embedding_scorer import task_labelled
from tests.support.servers import Server, start_gateway

KEY = "sk-router"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("router-gateway")


@pytest.fixture(scope="module")
def classifier_path(tmp: Path) -> Path:
    path = tmp / "clf.npz"

    async def train() -> None:
        scorer = EmbeddingScorer(RouterConfig(), classifier_path=path)
        await scorer.retrain(task_labelled(210, seed=0, easy=BASE_TASKS), adapter="base")
        await scorer.aclose()

    asyncio.run(train())
    return path


@pytest.fixture(scope="module")
def gw(tmp: Path, classifier_path: Path) -> Iterator[Server]:
    config = {
        "server": {"api_keys": [KEY], "max_body_bytes": 3_000_000},
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "router": {
            "scorer": "embedding",
            "threshold": 0.5,
            "embedding": {"classifier_path": str(classifier_path)},
            "scorer_timeout_s": 2.0,
        },
        "teacher_log": {"sink": "none"},
    }
    with start_gateway(tmp, config) as g:
        client = openai.OpenAI(base_url=g.url, api_key=KEY, max_retries=0)
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
        ):  # the model loads in the background; the heuristic answers meanwhile
            r = client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "copy: x"}]
            )
            if r.model_extra["distillserve"]["scorer"] == "embedding":
                break
            time.sleep(0.5)
        else:
            raise TimeoutError("the embedding scorer never became ready")
        yield g


@pytest.fixture
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)


def test_routes_by_the_trained_classifier(client: openai.OpenAI) -> None:
    for task, route in (
        ("copy", "student"),
        ("upper", "student"),
        ("add", "teacher"),
        ("multiply", "teacher"),
    ):
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[
                {
                    "role": "user",
                    "content": f"{task}: {'12+34' if task == 'add' else '12*34' if task == 'multiply' else 'hello'}",
                }
            ],
        )
        body = raw.parse()
        assert raw.headers["x-distillserve-route"] == route, task
        assert body.model_extra["distillserve"]["scorer"] == "embedding"
        assert 0.0 <= float(raw.headers["x-distillserve-difficulty"]) <= 1.0


@pytest.mark.parametrize(
    "content",
    [
        "",
        "x" * 2_000_000,
        "请把这句话翻译成英文并解释。",
        "Γράψε ένα ποίημα για τη θάλασσα",
    ],
    ids=["empty", "huge", "chinese", "greek"],
)
def test_bad_input_gets_an_answer_and_a_route(client: openai.OpenAI, content: object) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": content}],  # type: ignore[typeddict-item]
    )
    assert raw.status_code == 200
    assert raw.headers["x-distillserve-route"] in ("student", "teacher")
    assert raw.parse().model_extra["distillserve"]["scorer"] == "embedding"


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}],
        [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            {"type": "text", "text": ""},
        ],
    ],
    ids=["image", "audio"],
)
def test_parts_no_backend_serves_get_a_clear_400(client: openai.OpenAI, content: object) -> None:
    """Both backends here are text-only: an image or audio part is refused by name (issue 15),
    never answered as if the part were not there."""
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": content}],  # type: ignore[typeddict-item]
        )
    assert err.value.code == "unsupported_feature"


def test_router_metrics_are_exposed(gw: Server) -> None:
    text = httpx.get(gw.url.removesuffix("/v1") + "/metrics").text
    assert 'distillserve_router_difficulty_score_count{scorer="embedding"}' in text
    assert 'distillserve_router_decision_seconds_count{scorer="embedding"}' in text


async def test_refresh_retrains_from_served_teacher_answers(tmp_path: Path, classifier_path: Path) -> None:
    """The promotion path: after a better student goes live, ``Router.refresh`` re-asks it the
    conversations the teacher answered and retrains; hard prompts it now gets right turn easy."""
    scorer = EmbeddingScorer(RouterConfig(), classifier_path=tmp_path / "live.npz")
    scorer.set_classifier(EmbeddingScorer(RouterConfig(), classifier_path=classifier_path).classifier)  # type: ignore[arg-type]
    router = Router(RouterConfig(scorer="embedding", scorer_timeout_s=5.0), scorer=scorer)
    await scorer.wait_ready()
    oracle_student = Oracle("student")  # a student that now answers every task right
    gateway = Gateway(Settings(), student=oracle_student, teacher=Oracle(), router=router)
    prompts = [e.prompt for e in task_labelled(70, seed=3, easy=[])]
    served_by_teacher = 0
    for p in prompts:
        req = ChatCompletionRequest(model="auto", messages=[{"role": "user", "content": p}])
        plan = await gateway.plan(req, forced=None, api_key=None)
        _, served = await gateway.complete(req, plan)
        served_by_teacher += served.route == "teacher"
    assert served_by_teacher >= 30  # the hard tasks went to the teacher and were remembered
    assert len(router.recent) == served_by_teacher
    hard = [p for p in prompts if p.split(":")[0] in HARD_TASKS]
    assert {(await router.decide(p)).route for p in hard} == {"teacher"}
    report = await router.refresh(oracle_student, adapter="student@v2")
    assert report is not None and report.examples == served_by_teacher and report.hard_share == 0.0
    assert {(await router.decide(p)).route for p in hard} == {"student"}
    assert (tmp_path / "live.npz").is_file()
    await router.aclose()
