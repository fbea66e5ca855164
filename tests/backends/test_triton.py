"""The Triton backend against a real tritonserver, through a real gateway, with the official openai SDK.

The server is ``distillserve triton-serve`` (PyTriton's real tritonserver 2.51) serving the
testbed oracle as decoupled streaming models with the tensor interface of Triton's vLLM
backend: ``teacher`` (fast) and ``slow`` (one token per 3 s, past the gateway's timeout).
Gateway A sends its teacher to ``teacher`` and its student to ``slow``; gateway B points at a
model the server lacks and at a port nothing listens on. The last test stops the server
and checks that the gateway then answers 503 and that nothing (processes, workspace,
/dev/shm) is left behind.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as triton_grpc

from distillserve.backends.chat_prompt import ChatPrompter
from distillserve.backends.triton import TritonBackend
from distillserve.config import TritonBackendConfig
from distillserve.protocol.errors import BackendRejected, BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest
from tests.support.processes import free_port
from tests.support.servers import Server, start_gateway
from tests.support.triton_server import TritonServer, group_alive, shm_entries, start_triton, stop_triton

KEY = "sk-triton-test"
# The testbed oracle answers the task on the prompt's last line: one message per line.
TEMPLATE = "{% for m in messages %}{{ m.content }}\n{% endfor %}"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("triton")


@pytest.fixture(scope="module")
def triton(tmp: Path) -> Iterator[TritonServer]:
    models = {
        "teacher": {"kind": "testbed", "name": "teacher"},
        "slow": {"kind": "testbed", "name": "slow", "token_delay_s": 3.0},
    }
    with start_triton(tmp, models) as server:
        yield server


def triton_backend(server_http: str, server_grpc: str, name: str, model: str, **kw: object) -> dict:
    return {
        "kind": "triton",
        "name": name,
        "url": server_http,
        "triton_grpc_url": server_grpc,
        "triton_model": model,
        "chat_template": TEMPLATE,
        **kw,
    }


def gateway_config(tmp: Path, student: dict, teacher: dict) -> dict:
    return {
        "server": {"api_keys": [KEY]},
        "student": student,
        "teacher": teacher,
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
    }


@pytest.fixture(scope="module")
def gw(tmp: Path, triton: TritonServer) -> Iterator[Server]:
    cfg = gateway_config(
        tmp,
        student=triton_backend(triton.http_url, triton.grpc_url, "student", "slow", timeout_s=1.5),
        teacher=triton_backend(triton.http_url, triton.grpc_url, "teacher", "teacher", timeout_s=10),
    )
    with start_gateway(tmp, cfg) as g:
        yield g


@pytest.fixture(scope="module")
def broken_gw(tmp: Path, triton: TritonServer) -> Iterator[Server]:
    dead = free_port()
    cfg = gateway_config(
        tmp,
        student=triton_backend(triton.http_url, triton.grpc_url, "student", "no-such-model"),
        teacher=triton_backend(f"http://127.0.0.1:{dead}", f"127.0.0.1:{dead}", "teacher", "teacher"),
    )
    with start_gateway(tmp, cfg) as g:
        yield g


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=30)


def chat(c: openai.OpenAI, content: str, model: str = "teacher", **kw: object):
    return c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


# --- chat ----------------------------------------------------------------------------------------
def test_chat_blocking(gw: Server) -> None:
    raw = chat(client(gw), "reverse: triton", temperature=0)
    r = raw.parse()
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert r.object == "chat.completion" and r.model == "teacher"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "notirt"
    assert r.choices[0].finish_reason == "stop"
    # Counts come from the server's num_input_tokens / num_output_tokens (the testbed counts characters).
    assert r.usage.completion_tokens == len("notirt")
    assert r.usage.prompt_tokens == len("reverse: triton\n")  # the rendered chat template
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_uses_the_last_message_of_a_conversation(gw: Server) -> None:
    r = client(gw).chat.completions.create(
        model="teacher",
        messages=[
            {"role": "system", "content": "You answer testbed tasks."},
            {"role": "user", "content": "upper: first"},
            {"role": "assistant", "content": "FIRST"},
            {"role": "user", "content": "sort: dcba"},
        ],
    )
    assert r.choices[0].message.content == "abcd"


def test_chat_max_tokens_and_stop_reach_the_server(gw: Server) -> None:
    c = client(gw)
    r = chat(c, "reverse: abcdef", max_tokens=3).parse()
    assert r.choices[0].message.content == "fed"
    assert r.choices[0].finish_reason == "length"
    r = chat(c, "reverse: hello", stop=["l"]).parse()
    assert r.choices[0].message.content == "o"
    assert r.choices[0].finish_reason == "stop"


def test_chat_streaming_order_done_and_usage(gw: Server) -> None:
    stream = client(gw).chat.completions.create(
        model="teacher",
        messages=[{"role": "user", "content": "reverse: streaming"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    # One Triton response per token, relayed in order.
    assert len(deltas) == len("gnimaerts")
    assert "".join(deltas) == "gnimaerts"
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len("gnimaerts")
    assert chunks[-1].usage.prompt_tokens == len("reverse: streaming\n")


def test_stream_without_usage_ends_with_done(gw: Server) -> None:
    body = {"model": "teacher", "stream": True, "messages": [{"role": "user", "content": "upper: sse"}]}
    with httpx.stream(
        "POST",
        f"{gw.url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        events = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"]) == "SSE"
    assert not any("usage" in ch and ch["usage"] for ch in chunks)  # not asked for


# --- completions ---------------------------------------------------------------------------------
def test_completions_blocking_and_streaming(gw: Server) -> None:
    c = client(gw)
    r = c.completions.create(model="teacher", prompt="upper: abc")
    assert r.object == "text_completion"
    assert r.choices[0].text == "ABC" and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 3
    chunks = list(
        c.completions.create(
            model="teacher", prompt="reverse: xyz", stream=True, stream_options={"include_usage": True}
        )
    )
    texts = [ch.choices[0].text for ch in chunks if ch.choices and ch.choices[0].text]
    assert texts == ["z", "y", "x"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


# --- errors --------------------------------------------------------------------------------------
def test_slow_server_times_out_with_504(gw: Server) -> None:
    c = client(gw)
    with pytest.raises(openai.APIStatusError) as err:
        chat(c, "upper: x", model="student")
    assert err.value.status_code == 504
    assert err.value.body["code"] == "backend_timeout"
    # Streaming: no first token within the timeout is a 504 too, before any byte was sent.
    with pytest.raises(openai.APIStatusError) as err:
        list(
            c.chat.completions.create(
                model="student", messages=[{"role": "user", "content": "upper: y"}], stream=True
            )
        )
    assert err.value.status_code == 504


def test_missing_model_is_503(broken_gw: Server) -> None:
    c = client(broken_gw)
    with pytest.raises(openai.APIStatusError) as err:
        chat(c, "reverse: abc", model="student")
    assert err.value.status_code == 503
    assert "no-such-model" in err.value.body["message"]
    with pytest.raises(openai.APIStatusError) as err:
        list(
            c.chat.completions.create(
                model="student", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert err.value.status_code == 503


def test_server_down_is_503(broken_gw: Server) -> None:
    c = client(broken_gw)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as err:
            r = c.chat.completions.create(
                model="teacher", messages=[{"role": "user", "content": "reverse: abc"}], stream=stream
            )
            if stream:
                list(r)
        assert err.value.status_code == 503
        assert err.value.body["code"] == "backend_unavailable"
    ready = httpx.get(f"http://127.0.0.1:{broken_gw.port}/readyz", timeout=10)
    assert ready.status_code == 503


def test_server_speaks_the_vllm_backend_interface(triton: TritonServer) -> None:
    """Direct gRPC with the official client: vLLM-backend semantics, and 4xx marks the gateway relays."""
    c = triton_grpc.InferenceServerClient(triton.grpc_url)
    meta = c.get_model_metadata("teacher", as_json=True)
    assert {i["name"] for i in meta["inputs"]} >= {"text_input", "stream", "sampling_parameters"}
    assert c.get_model_config("teacher").config.model_transaction_policy.decoupled

    def run(inputs: dict[str, np.ndarray]) -> tuple[list[str], str | None]:
        results: queue.Queue = queue.Queue()
        c.start_stream(callback=lambda result, error: results.put((result, error)))
        tensors = []
        for name, value in inputs.items():
            t = triton_grpc.InferInput(name, list(value.shape), "BYTES" if value.dtype == object else "BOOL")
            t.set_data_from_numpy(value)
            tensors.append(t)
        c.async_stream_infer("teacher", tensors, enable_empty_final_response=True)
        texts: list[str] = []
        error = None
        while True:
            result, err = results.get(timeout=20)
            if err is not None:
                error = str(err)
                break
            out = result.as_numpy("text_output")
            if out is not None:
                texts.append(b"".join(out.tolist()).decode())
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
        c.stop_stream()
        return texts, error

    prompt = np.array([b"upper: vllm"], dtype=object)
    # Blocking without exclude_input_in_output: the prompt comes first, as the vLLM backend does.
    texts, error = run({"text_input": prompt})
    assert error is None and texts == ["upper: vllmVLLM"]
    texts, error = run({"text_input": prompt, "stream": np.array([True])})
    assert error is None and "".join(texts) == "VLLM" and len(texts) >= 4
    _, error = run(
        {"text_input": prompt, "stream": np.array([True]), "exclude_input_in_output": np.array([False])}
    )
    assert error is not None and "exclude_input_in_output" in error
    _, error = run({"text_input": prompt, "sampling_parameters": np.array([b"{not json"], dtype=object)})
    assert error is not None
    # The gateway's backend reads the status back out of the server's message and relays a 400.
    mapped = TritonBackend(TritonBackendConfig(name="teacher", url=triton.http_url))._inband_failure(error)
    assert isinstance(mapped, BackendRejected) and mapped.status_code == 400
    assert "sampling_parameters" in mapped.message
    c.close()


def test_chat_without_template_is_a_clear_error(triton: TritonServer) -> None:
    import asyncio

    backend = TritonBackend(
        TritonBackendConfig(name="teacher", url=triton.http_url, triton_grpc_url=triton.grpc_url)
    )
    req = ChatCompletionRequest(model="teacher", messages=[{"role": "user", "content": "upper: a"}])

    async def go() -> None:
        try:
            with pytest.raises(BackendUnavailable, match="chat template"):
                await backend.chat(req)
        finally:
            await backend.aclose()

    asyncio.run(go())


def test_unknown_tensor_name_override_is_rejected() -> None:
    with pytest.raises(ValueError, match="text_inptu"):
        TritonBackend(
            TritonBackendConfig(name="t", url="http://127.0.0.1:1", triton_tensor_names={"text_inptu": "x"})
        )


def test_chat_template_from_a_tokenizer_dir(tmp: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<s>": 1, "upper": 2, ":": 3, "a": 4, "user": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>")
    fast.chat_template = "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}"
    fast.save_pretrained(tmp / "tok")

    req = ChatCompletionRequest(model="x", messages=[{"role": "user", "content": "upper: a"}])
    from_tokenizer = ChatPrompter.load(None, str(tmp / "tok"))
    assert from_tokenizer is not None
    assert from_tokenizer.render(req) == "<user> upper: a\n"
    assert from_tokenizer.count_tokens("upper : a") == 3
    # A configured template (here a file) wins over the tokenizer's.
    (tmp / "t.jinja").write_text("{{ bos_token }}{{ messages[-1].content }}")
    configured = ChatPrompter.load(str(tmp / "t.jinja"), str(tmp / "tok"))
    assert configured is not None and configured.render(req) == "<s>upper: a"
    assert ChatPrompter.load(None, None) is None


# --- shutdown (last: it stops the module's server) ------------------------------------------------
def test_stopping_the_server_gives_503_and_leaves_nothing(gw: Server, triton: TritonServer) -> None:
    pid = triton.proc.pid
    assert shm_entries(pid), "PyTriton should hold shared memory while serving"
    took = stop_triton(triton)
    assert triton.proc.returncode is not None
    assert not group_alive(pid), "tritonserver or a stub outlived the server"
    assert not triton.workspace.exists()
    assert shm_entries(pid) == []
    assert took < 30, f"graceful stop took {took:.1f}s"
    with pytest.raises(openai.APIStatusError) as err:
        chat(client(gw), "reverse: gone")
    assert err.value.status_code == 503


# --- the server's callable, in-process (no tritonserver needed) ----------------------------------
def test_a_decoupled_batch_streams_each_request_in_lockstep() -> None:
    """Triton may hand the callable several requests at once; they share one response stream."""
    import asyncio

    from distillserve.backends.testbed_teacher import TestbedTeacher
    from distillserve.launchers.triton_serving import BackendModel

    model = BackendModel(TestbedTeacher("teacher"))
    flags = {"stream": np.array([True]), "return_finish_reason": np.array([True])}
    requests = [
        {"text_input": np.array([b"upper: ab"], dtype=object), **flags},
        {"text_input": np.array([b"reverse: wxyz"], dtype=object), **flags},
    ]

    async def collect() -> list[list[dict]]:
        return [step async for step in model(requests)]

    steps = asyncio.run(collect())
    assert all(len(step) == 2 for step in steps)
    texts = ["".join(s[i]["text_output"][0].decode() for s in steps) for i in range(2)]
    assert texts == ["AB", "zyxw"]
    finishes = [[s[i]["finish_reason"][0] for s in steps if "finish_reason" in s[i]] for i in range(2)]
    assert finishes[0][-1] == b"stop" and finishes[1][-1] == b"stop"


def test_the_server_refuses_numpy_2() -> None:
    """tritonserver's Python backend stub garbles BYTES tensors under numpy 2: fail clearly instead."""
    from distillserve.launchers.triton_serving import prepare_stub_environment

    assert int(np.__version__.split(".")[0]) >= 2  # the main venv
    with pytest.raises(RuntimeError, match=r"\.venv-triton"):
        prepare_stub_environment()
