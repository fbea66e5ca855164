"""vLLM's CPU build as the student behind the gateway: LoRA adapters, hot-swap under load,
refused adapters, and vLLM restarted underneath the gateway.

Everything is real: one vLLM server (``vllm.entrypoints.openai.api_server``, started by
``VLLMProcess``) on the testbed student for the whole module, the gateway as its own
process (``distillserve serve``), the testbed teacher as an OpenAI-compatible server, the
official ``openai`` SDK as the client, and adapters trained with peft. Each adapter is
trained to answer every prompt with one repeated digit (v1 → "111…", v2 → "222…"), so
the version that served a request can be read off its greedy answer.

vLLM takes 40 s to 3 min to start on a loaded 2-core machine: the tests share one server,
in the order below (the restart test comes last).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from distillserve.adapters.validation import same_base
from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.config import VLLMBackendConfig
from distillserve.launchers.vllm_process import VLLMProcess, vllm_env
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.adapters import (
    adapter_for_other_base,
    adapter_with_wrong_shapes,
    train_answer_adapter,
    untrained_adapter,
)
from tests.support.processes import free_port, python_module, running
from tests.support.servers import Server, start_gateway, start_testbed_teacher

pytestmark = pytest.mark.timeout(1200)

KEY = "sk-vllm-test"
ADMIN = "adm-vllm-test"
EASY = "copy: hello"  # the heuristic router sends it to the student
MAX_TOKENS = 16
ENGINE_ARGS = VLLMEngineArgs(max_lora_rank=16, max_loras=2, max_model_len=512)


@dataclass
class Stack:
    engine: VLLMProcess
    teacher: Server
    adapters: dict[str, Path]
    tmp: Path


def version_of(text: str | None) -> str | None:
    """'v1' for "1111…" and so on; None for anything else (the base model, a broken answer)."""
    if text and len(set(text)) == 1 and text[0] in "123":
        return f"v{text[0]}"
    return None


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def direct_chat(engine: VLLMProcess, model: str, content: str = EASY) -> str:
    r = httpx.post(
        engine.url + "/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
        },
        timeout=120,
    )
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def vllm_adapters(engine: VLLMProcess) -> set[str]:
    models = httpx.get(engine.url + "/models", timeout=10).json()["data"]
    return {m["id"] for m in models if m.get("parent")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("vllm")
    base = ensure_testbed_student(pretrain=False)  # adapters decide every answer here
    engine = VLLMProcess(
        base, port=free_port(), served_name="base", args=ENGINE_ARGS, log_path=tmp / "vllm.log"
    )
    engine.start()  # boots while the adapters train
    try:
        ad = tmp / "adapters"
        adapters = {f"v{i}": train_answer_adapter(base, ad / f"v{i}", str(i) * 24, seed=i) for i in (1, 2, 3)}
        adapters["rank32"] = untrained_adapter(base, ad / "rank32", rank=32)
        adapters["other_base"] = adapter_for_other_base(adapters["v1"], ad / "other", "acme/other-model-7b")
        adapters["not_peft"] = ad / "not-peft"
        adapters["not_peft"].mkdir()
        (adapters["not_peft"] / "model.safetensors").write_bytes(b"\0" * 64)
        corrupt = adapter_for_other_base(adapters["v1"], ad / "corrupt", str(base))
        (corrupt / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
        adapters["corrupt"] = corrupt
        adapters["missing"] = ad / "does-not-exist"
        adapters["wrong_shapes"] = adapter_with_wrong_shapes(base, ad / "wrong-shapes")
        adapters["dora"] = untrained_adapter(base, ad / "dora", rank=8, dora=True)
        engine.wait_ready(900)
        with start_testbed_teacher(tmp) as teacher:
            yield Stack(engine, teacher, adapters, tmp)
    finally:
        engine.stop()


def gateway_config(s: Stack, *, live: str, path: Path, watch_interval_s: float) -> dict[str, Any]:
    return {
        "server": {"api_keys": [KEY], "admin_key": ADMIN},
        # The admin API takes adapters only from under the registry or these directories.
        "admin": {"adapter_roots": [str(s.tmp)]},
        "student": {
            "kind": "vllm",
            "name": "student",
            "url": s.engine.url,
            "upstream_model": "base",
            "vllm_args": ENGINE_ARGS.model_dump(),
            "live_adapter": live,
            "live_adapter_path": str(path),
            "watch_interval_s": watch_interval_s,
            "timeout_s": 120,
        },
        "teacher": {"kind": "openai", "name": "teacher", "url": s.teacher.url, "timeout_s": 30},
        "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
        "teacher_log": {"sink": "none"},
    }


def admin(gw: Server, method: str, path: str, key: str | None = ADMIN, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(
        method, f"http://127.0.0.1:{gw.port}/admin{path}", headers=headers, timeout=120, **kw
    )


def status(gw: Server) -> dict[str, Any]:
    r = admin(gw, "GET", "/student")
    assert r.status_code == 200, r.text
    return r.json()


def wait_live(gw: Server, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: (st := status(gw))["live"] == name and name in (st["loaded"] or []) and st,
        timeout,
        f"{name} live and loaded",
    )


@pytest.fixture(scope="module")
def gw(stack: Stack) -> Iterator[Server]:
    """The main gateway: student@v1 live at start, engine checked every 2 s."""
    config = gateway_config(stack, live="student@v1", path=stack.adapters["v1"], watch_interval_s=2.0)
    with start_gateway(stack.tmp, config) as g:
        wait_live(g, "student@v1")
        yield g


@pytest.fixture
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0, timeout=120)


def ask(client: openai.OpenAI, model: str = "student", content: str = EASY, **kw: Any):
    return client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        **kw,
    )


# --- without the server: engine flags, base-model matching -----------------------------------
def test_vllm_args_become_engine_flags_and_env() -> None:
    cfg = VLLMBackendConfig(
        name="student",
        url="http://127.0.0.1:1/v1",
        vllm_args={
            "max_lora_rank": 32,
            "max_loras": 4,
            "tensor_parallel_size": 2,
            "gpu_memory_utilization": 0.85,
            "enable_prefix_caching": False,  # not a declared key: passes through as a flag
            "cpu_kvcache_space_gib": 2,
            "cpu_omp_threads_bind": "0",  # an environment variable, not a flag
            "extra_args": ["--seed", "7"],
        },
    )
    args = VLLMEngineArgs.of(cfg)
    assert args.flags() == [
        "--enable-lora",
        "--max-lora-rank", "32", "--max-loras", "4", "--max-model-len", "1024",
        "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85", "--dtype", "auto",
        "--no-enable-prefix-caching", "--seed", "7",
    ]  # fmt: skip
    env = vllm_env(args, {})
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in vllm_env(VLLMEngineArgs(), {})  # vLLM's own "auto"
    with pytest.raises(ValueError, match="max_lora_rank"):
        VLLMEngineArgs.of(cfg.model_copy(update={"vllm_args": {"max_lora_rank": 24}}))


def test_base_model_matching(tmp_path: Path) -> None:
    base = ensure_testbed_student(pretrain=False)
    copy = Path(shutil.copytree(base, tmp_path / "copy"))
    other = Path(shutil.copytree(base, tmp_path / "other"))
    weights = other / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x01\x02\x03\x04")
    assert same_base(str(base), str(base) + "/")
    assert same_base(str(copy), str(base))  # a byte-identical copy elsewhere is the same base
    assert not same_base(str(other), str(base))  # same shapes, other weights
    assert same_base("HuggingFaceTB/SmolLM2-135M", "/models/SmolLM2-135M")  # hub id vs its local dir
    assert not same_base("HuggingFaceTB/SmolLM2-360M", "/models/SmolLM2-135M")


# --- serving through the gateway ---------------------------------------------------------------
def test_chat_through_gateway_is_served_by_live_adapter_with_logprobs(
    stack: Stack, client: openai.OpenAI
) -> None:
    raw = ask(client, logprobs=True, top_logprobs=2)
    body = raw.parse()
    text = body.choices[0].message.content
    assert version_of(text) == "v1", text
    assert text == direct_chat(stack.engine, "student@v1")  # what vLLM answers for that adapter
    # ...through distillserve's grouped CPU LoRA ops (distillserve/vllm_plugins/cpu_lora.py), loaded
    # by vLLM itself from the package's entry point, in its engine and worker processes.
    assert re.search(
        r"(VllmWorker|EngineCore)[^\n]*grouped CPU LoRA ops", (stack.tmp / "vllm.log").read_text()
    )
    assert version_of(direct_chat(stack.engine, "base")) is None  # the adapter is what changes it
    assert raw.headers["x-distillserve-route"] == "student"
    assert raw.headers["x-distillserve-model"] == "student@v1"
    assert body.model == "student@v1"
    lp = body.choices[0].logprobs.content
    assert len(lp) == body.usage.completion_tokens == len(text)
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in lp)
    assert "".join(t.token for t in lp) == text


def test_streaming_chat_with_usage_and_logprobs(client: openai.OpenAI) -> None:
    blocking = ask(client).parse().choices[0].message.content
    stream = client.chat.completions.create(
        model="student",
        messages=[{"role": "user", "content": EASY}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        logprobs=True,
        top_logprobs=1,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tokens = [
        t.token for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content
    ]
    assert text == blocking and version_of(text) == "v1"
    assert "".join(tokens) == text
    assert {c.model for c in chunks} == {"student@v1"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text)


def test_completions_blocking_and_streaming(stack: Stack, client: openai.OpenAI) -> None:
    # The chat template spelled out, so the adapter sees the prompt format it was trained on.
    prompt = f"<|im_start|>user\n{EASY}<|im_end|>\n<|im_start|>assistant\n"
    r = client.completions.create(
        model="student", prompt=prompt, max_tokens=MAX_TOKENS, temperature=0, logprobs=2
    )
    assert version_of(r.choices[0].text) == "v1", r.choices[0].text
    assert r.model == "student@v1"
    assert len(r.choices[0].logprobs.tokens) == r.usage.completion_tokens
    assert all(len(top) == 2 for top in r.choices[0].logprobs.top_logprobs)
    direct = httpx.post(
        stack.engine.url + "/completions",
        json={"model": "student@v1", "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0},
        timeout=60,
    ).json()
    assert r.choices[0].text == direct["choices"][0]["text"]
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="student", prompt=prompt, max_tokens=MAX_TOKENS, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == r.choices[0].text


def test_models_and_admin_status(gw: Server, client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert {"auto", "student", "teacher", "student@v1"} <= set(ids)
    st = status(gw)
    assert st["live"] == "student@v1" and st["canary"] is None
    assert st["backend"] == {"name": "student", "kind": "vllm", "engine": "up"}
    assert st["adapters"]["student@v1"].endswith("/v1")


def test_admin_api_needs_the_admin_key(gw: Server) -> None:
    no_key = admin(gw, "GET", "/student", key=None)
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    for key in (KEY, "adm-wrong"):  # an ordinary API key is not an admin key
        r = admin(gw, "POST", "/student/activate", key=key, json={"name": "x@v9", "path": "/tmp"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "permission_denied"
    bad = admin(gw, "POST", "/student/activate", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    bad_name = admin(gw, "POST", "/student/activate", json={"name": "has space", "path": "/x"})
    assert bad_name.status_code == 400 and bad_name.json()["error"]["param"] == "name"
    assert status(gw)["live"] == "student@v1"


# --- the engine loses the adapter -------------------------------------------------------------
def test_lost_adapter_is_reloaded_when_a_request_finds_it_missing(stack: Stack) -> None:
    """A second gateway whose watch never polls (interval 0): only the request that finds
    its adapter missing (vLLM's 404) can trigger the reload."""
    config = gateway_config(stack, live="b@v1", path=stack.adapters["v1"], watch_interval_s=0)
    with start_gateway(stack.tmp, config) as g:
        wait_live(g, "b@v1")
        c = openai.OpenAI(base_url=g.url, api_key=KEY, max_retries=0, timeout=120)
        assert ask(c, model="auto").headers["x-distillserve-route"] == "student"
        r = httpx.post(stack.engine.url + "/unload_lora_adapter", json={"lora_name": "b@v1"}, timeout=30)
        assert r.status_code == 200, r.text  # the engine lost it behind the gateway's back
        raw = ask(c, model="auto")  # fails over to the teacher, and pokes the watch
        assert raw.headers["x-distillserve-route"] == "teacher"
        assert raw.parse().choices[0].message.content == "hello"  # the oracle's exact answer
        wait_for(lambda: "b@v1" in vllm_adapters(stack.engine), 30, "b@v1 reloaded")
        raw = ask(c, model="auto")
        assert raw.headers["x-distillserve-route"] == "student"
        assert version_of(raw.parse().choices[0].message.content) == "v1"
        metrics = httpx.get(f"http://127.0.0.1:{g.port}/metrics", timeout=10).text
        assert "distillserve_adapter_restores_total 1.0" in metrics
    httpx.post(stack.engine.url + "/unload_lora_adapter", json={"lora_name": "b@v1"}, timeout=30)


# --- hot-swap ----------------------------------------------------------------------------------
@dataclass
class Outcome:
    started: float
    ended: float
    text: str = ""
    models: set[str] = field(default_factory=set)
    error: str | None = None


async def _stream_forever(
    client: openai.AsyncOpenAI, i: int, stop: asyncio.Event, out: list[Outcome]
) -> None:
    while not stop.is_set():
        o = Outcome(time.monotonic(), 0.0)
        try:
            stream = await client.chat.completions.create(
                model="student",
                messages=[{"role": "user", "content": f"copy: client{i}"}],
                max_tokens=MAX_TOKENS,
                temperature=0,
                stream=True,
            )
            async for chunk in stream:
                o.models.add(chunk.model)
                if chunk.choices and chunk.choices[0].delta.content:
                    o.text += chunk.choices[0].delta.content
        except Exception as exc:  # every failure counts; the test asserts there are none
            o.error = f"{type(exc).__name__}: {exc}"
        o.ended = time.monotonic()
        out.append(o)


async def test_hotswap_under_load_drops_nothing_and_serves_the_new_version(stack: Stack, gw: Server) -> None:
    clients = 20
    client = openai.AsyncOpenAI(base_url=gw.url, api_key=KEY, max_retries=0, timeout=120)
    out: list[Outcome] = []
    stop = asyncio.Event()
    workers = [asyncio.create_task(_stream_forever(client, i, stop, out)) for i in range(clients)]
    async with httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {ADMIN}"}) as h:
        deadline = time.monotonic() + 120
        while len(out) < 2 * clients and time.monotonic() < deadline:  # load is flowing
            await asyncio.sleep(0.1)
        promoted = time.monotonic()
        r = await h.post(
            f"http://127.0.0.1:{gw.port}/admin/student/activate",
            json={"name": "student@v2", "path": str(stack.adapters["v2"])},
        )
        swapped = time.monotonic()
        while sum(o.started > swapped for o in out) < 2 * clients and time.monotonic() < deadline + 120:
            await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*workers)
    await client.close()

    assert r.status_code == 200, r.text
    assert r.json()["live"] == "student@v2" and r.json()["previous"] == "student@v1"
    failed = [o for o in out if o.error or version_of(o.text) is None]
    assert not failed, f"{len(failed)} of {len(out)} requests failed during the swap, e.g. {failed[:3]}"
    # The swap happened under load: every client had a stream open when it began and ended.
    assert sum(o.started < promoted < o.ended for o in out) >= 16
    assert sum(o.started < swapped < o.ended for o in out) >= 16
    before = [o for o in out if o.ended < promoted]
    after = [o for o in out if o.started > swapped]
    assert before and all(version_of(o.text) == "v1" and o.models == {"student@v1"} for o in before)
    assert len(after) >= 2 * clients
    assert all(version_of(o.text) == "v2" and o.models == {"student@v2"} for o in after)
    # Requests still running on v1 finished on v1; then v1 was unloaded.
    wait_for(lambda: "student@v1" not in vllm_adapters(stack.engine), 60, "v1 unloaded after draining")
    assert status(gw)["loaded"] == ["student@v2"]
    print(f"swap took {swapped - promoted:.3f}s with {clients} streaming clients; {len(out)} requests")


# --- refused adapters --------------------------------------------------------------------------
REFUSALS = {
    "missing": ("student@v9", "missing", "does not exist"),
    "not-peft": ("student@v9", "not_peft", "is not a PEFT adapter"),
    "corrupt-weights": ("student@v9", "corrupt", "unreadable"),
    "other-base": ("student@v9", "other_base", "was trained for base model 'acme/other-model-7b'"),
    "rank-above-max": ("student@v9", "rank32", "LoRA rank 32, above the server's maximum of 16"),
    # vLLM itself would load this one, and serve garbage: caught by comparing shapes.
    "made-for-narrower-model": ("student@v9", "wrong_shapes", "does not fit the served base model"),
    # Passes every file check; vLLM's own refusal (a 500 from its load API) is relayed.
    "vllm-refuses-dora": ("student@v9", "dora", "vLLM refused adapter 'student@v9'"),
    "live-name-reused": ("student@v2", "v3", "already live"),
}


def test_reserved_name_is_a_conflict(stack: Stack, gw: Server) -> None:
    live = status(gw)["live"]
    r = admin(gw, "POST", "/student/activate", json={"name": "student", "path": str(stack.adapters["v3"])})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "adapter_name_taken" and "a model name clients already use" in err["message"]
    assert status(gw)["live"] == live


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_adapter_leaves_the_live_version_serving(
    case: str, stack: Stack, gw: Server, client: openai.OpenAI
) -> None:
    name, adapter, reason = REFUSALS[case]
    loaded_before = vllm_adapters(stack.engine)
    r = admin(gw, "POST", "/student/activate", json={"name": name, "path": str(stack.adapters[adapter])})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "adapter_error" and err["type"] == "invalid_request_error"
    assert reason in err["message"], err["message"]
    assert vllm_adapters(stack.engine) == loaded_before  # vLLM never saw it
    assert status(gw)["live"] == "student@v2"
    assert version_of(ask(client).parse().choices[0].message.content) == "v2"


def test_name_already_loaded_is_refused(stack: Stack, gw: Server, client: openai.OpenAI) -> None:
    r = admin(
        gw,
        "POST",
        "/student/canary",
        json={"name": "student@v3", "path": str(stack.adapters["v3"]), "share": 0},
    )
    assert r.status_code == 200, r.text
    try:
        r = admin(
            gw, "POST", "/student/activate", json={"name": "student@v3", "path": str(stack.adapters["v1"])}
        )
        assert r.status_code == 400 and "already loaded" in r.json()["error"]["message"], r.text
        assert status(gw)["live"] == "student@v2"
        assert version_of(ask(client).parse().choices[0].message.content) == "v2"
        assert version_of(ask(client, model="student@v3").parse().choices[0].message.content) == "v3"
    finally:
        assert admin(gw, "DELETE", "/student/canary").status_code == 200


def test_canary_takes_its_share_then_ends(stack: Stack, gw: Server, client: openai.OpenAI) -> None:
    r = admin(
        gw,
        "POST",
        "/student/canary",
        json={"name": "student@v3", "path": str(stack.adapters["v3"]), "share": 1.0},
    )
    assert r.status_code == 200 and r.json()["canary"] == "student@v3", r.text
    raw = ask(client)
    assert raw.headers["x-distillserve-model"] == "student@v3"
    assert version_of(raw.parse().choices[0].message.content) == "v3"
    bad = admin(
        gw,
        "POST",
        "/student/canary",
        json={"name": "student@v3", "path": str(stack.adapters["v3"]), "share": 2},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "share"
    assert admin(gw, "DELETE", "/student/canary").json()["canary"] is None
    assert version_of(ask(client).parse().choices[0].message.content) == "v2"
    wait_for(lambda: "student@v3" not in vllm_adapters(stack.engine), 60, "the ended canary unloaded")


# --- vLLM restarted underneath the gateway (last: it restarts the module's server) ----------
def test_vllm_restart_underneath_gateway_reloads_the_live_adapter(
    stack: Stack, gw: Server, client: openai.OpenAI
) -> None:
    failures: list[str] = []
    routes: list[str] = []
    stop = threading.Event()

    def auto_traffic() -> None:
        c = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0, timeout=120)
        while not stop.is_set():
            try:
                raw = ask(c, model="auto")
                routes.append(raw.headers["x-distillserve-route"])
                if not raw.parse().choices[0].message.content:
                    failures.append("empty answer")
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.2)

    traffic = threading.Thread(target=auto_traffic)
    traffic.start()
    try:
        stack.engine.stop()
        wait_for(lambda: status(gw)["backend"]["engine"] != "up", 30, "the gateway to see the engine down")
        with pytest.raises(openai.APIStatusError) as pinned:
            ask(client)  # pinned to the student: no fallback, a clear 503
        assert pinned.value.status_code == 503
        assert pinned.value.body["code"] == "backend_unavailable"  # type: ignore[index]
        # Back up through the CLI this time (same port), so ``distillserve vllm-serve`` is tested too.
        cfg = stack.tmp / "vllm-serve.yaml"
        student = gateway_config(stack, live="student@v2", path=stack.adapters["v2"], watch_interval_s=2)[
            "student"
        ]
        cfg.write_text(yaml.safe_dump({"student": student}))  # the gateway's own section: one config for both
        cmd = python_module(
            "distillserve", "vllm-serve", "--model", str(stack.engine.model), "--config", str(cfg),
            "--port", str(stack.engine.port), "--log-file", str(stack.tmp / "vllm-cli.log"),
        )  # fmt: skip
        with running(
            cmd, ready_url=stack.engine.url + "/models", timeout=900, log_path=stack.tmp / "cli.log"
        ):
            # No student request needed: the watch loop notices and reloads on its own.
            wait_for(lambda: "student@v2" in vllm_adapters(stack.engine), 30, "the live adapter reloaded")
            assert version_of(ask(client).parse().choices[0].message.content) == "v2"
            time.sleep(1.0)
            stop.set()
            traffic.join(timeout=120)
            assert status(gw)["live"] == "student@v2"
        # Stopping the command stops vLLM's whole process group with it.
        wait_for(lambda: not port_open(stack.engine.port), 60, "vLLM stopped along with vllm-serve")
    finally:
        stop.set()
        traffic.join(timeout=120)
    assert not failures, failures[:5]
    assert "teacher" in routes and routes[-1] == "student"  # failed over, then back on the student
