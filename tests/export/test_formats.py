"""The three formats exported from a SmolLM2 adapter, each run by the runtime that serves it, and
measured against the adapter on its base on the version's regression set (8 items, greedy).

Tolerances (agreement = share of items whose greedy answer is the same text as the source's):
- merged f32 and ONNX fp32 compute what the source computes: agreement 1.0; vLLM's CPU build
  serving the merged f32 model agreed on 8 of 8 (bound 6 of 8);
- merged bf16, GGUF f16/q8_0: rounding of the weights only; merged bf16 measured 1.0 (8/8),
  bound 0.75;
- ONNX int8 (int8 weights in blocks of 32): measured 7 of 8 here and 25 of 30 in bench/export.py,
  bound 0.5;
- GGUF q4_k_m: real 4-bit quantization, 5 of 30 identical in bench/export.py; the bound here only
  says the model still answers (the drop is measured by bench/export.py, bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from distillserve.adapters.registry import AdapterRegistry, sha256_file
from distillserve.export.card import ExportCard
from distillserve.export.pipeline import Exporter, ExportRequest
from distillserve.export.publish import list_exports
from tests.export.smollm2_registry import smollm2_registry

MAX_NEW_TOKENS = 16

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Exporter, str]]:
    registry, version = smollm2_registry(tmp_path_factory.mktemp("smollm2"))
    # One merge, one f16 GGUF and one fp32 ONNX graph for all quants, as the bench does.
    ex = Exporter(registry, tmp_path_factory.mktemp("work"), keep_intermediates=True)
    try:
        yield ex, version
    finally:
        ex.close()


def export(exporter: tuple[Exporter, str], fmt: str, quant: str) -> tuple[ExportCard, Path]:
    ex, version = exporter
    card, path = ex.export(ExportRequest(version, fmt, quant, max_new_tokens=MAX_NEW_TOKENS))
    return card, Path(path)


def assert_published(registry: AdapterRegistry, card: ExportCard, path: Path) -> None:
    """The files on disk are the ones the card hashes, the card is listed, sizes add up."""
    assert {n: sha256_file(path / n) for n in card.files} == card.files
    assert card.size_bytes == sum((path / n).stat().st_size for n in card.files)
    assert card.name in [c.name for c in list_exports(registry, card.source_version)]
    assert card.accuracy is not None and card.accuracy.n == 8
    assert card.accuracy.regression_set["source"] == "golden"


@pytest.fixture(scope="module")
def merged_f32(
    exporter: tuple[Exporter, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[ExportCard, Path]:
    """The f32 merge, published in the registry and also written out for a device (``--out``)."""
    ex, version = exporter
    out = tmp_path_factory.mktemp("out")
    card, _ = ex.export(ExportRequest(version, "merged", "f32", out=out, max_new_tokens=MAX_NEW_TOKENS))
    return card, out / card.name


def test_merged_f32_is_the_adapter_on_its_base(
    exporter: tuple[Exporter, str], merged_f32: tuple[ExportCard, Path]
) -> None:
    from safetensors.torch import load_file

    from distillserve.export.publish import exports_path
    from distillserve.models.prepared import ensure_smollm2

    card, out = merged_f32
    ex, version = exporter
    assert_published(ex.registry, card, Path(exports_path(ex.registry, version)) / card.name)
    assert {n: sha256_file(out / n) for n in card.files} == card.files  # the --out copy
    assert card.accuracy.runtime == "transformers" and card.accuracy.agreement == 1.0
    # The adapter was folded in: the merged weights are not the base's.
    merged = load_file(out / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    base = load_file(ensure_smollm2() / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    assert (merged.float() - base.float()).abs().max() > 1e-3


@pytest.mark.timeout(1200)  # vLLM takes 40 s to 3 min to start on 2 cores
def test_vllm_serves_the_merged_model(
    exporter: tuple[Exporter, str], merged_f32: tuple[ExportCard, Path], tmp_path: Path
) -> None:
    """vLLM's CPU build serves the merged export as a plain model (no adapter), and its greedy
    answers on the regression set are the adapter-on-base's (measured: 8 of 8)."""
    import httpx

    from distillserve.backends.vllm_engine_args import VLLMEngineArgs
    from distillserve.export.runtimes import TransformersRunner, chat_prompts
    from distillserve.export.source import fetch_source, regression_set
    from distillserve.launchers.vllm_process import VLLMProcess
    from tests.support.processes import free_port

    ex, version = exporter
    merged = merged_f32[1]
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    source = fetch_source(ex.registry, version, tmp_path / "source")
    items, _ = regression_set(ex.registry, source.card, None, None)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    reference = TransformersRunner(source.base_dir, tokenizer, MAX_NEW_TOKENS, adapter_dir=source.adapter_dir)
    expected = reference.answers(items)

    args = VLLMEngineArgs(max_model_len=512, dtype="float32")
    vllm = VLLMProcess(
        merged, port=free_port(), served_name="merged", args=args, log_path=tmp_path / "vllm.log"
    )
    vllm.start()
    try:
        vllm.wait_ready(900)
        served = []
        for prompt in chat_prompts(tokenizer, items):
            r = httpx.post(
                f"{vllm.url}/completions",
                json={"model": "merged", "prompt": prompt, "max_tokens": MAX_NEW_TOKENS, "temperature": 0},
                timeout=120,
            )
            r.raise_for_status()
            served.append(r.json()["choices"][0]["text"])
    finally:
        vllm.stop()
    same = sum(a.strip() == b.strip() for a, b in zip(expected, served, strict=True))
    # Measured 8 of 8 (nice 19 beside a CI run). Both are fp32 but vLLM's CPU kernels sum in
    # another order, so a near-tie could flip one greedy token: the bound of the bf16 merge.
    assert same >= 6, list(zip(expected, served, strict=True))


def test_merged_default_is_bf16_like_its_base(exporter: tuple[Exporter, str]) -> None:
    ex, version = exporter
    card, path = ex.export(ExportRequest(version, "merged", max_new_tokens=MAX_NEW_TOKENS))
    assert card.quant == "bf16"
    assert_published(ex.registry, card, Path(path))
    assert card.accuracy.agreement >= 0.75


@pytest.mark.timeout(2400)  # converting 135M params takes ~25 s of CPU, minutes on 2 busy cores
@pytest.mark.parametrize(("quant", "bound"), [("f16", 0.75), ("q8_0", 0.75), ("q4_k_m", 0.25)])
def test_gguf_runs_in_llama_cpp(exporter: tuple[Exporter, str], quant: str, bound: float) -> None:
    card, path = export(exporter, "gguf", quant)
    assert_published(exporter[0].registry, card, path)
    assert card.accuracy.runtime == "llama.cpp"
    assert card.accuracy.agreement >= bound
    assert set(card.files) == {"model.gguf"}


@pytest.mark.timeout(2400)  # the dynamo export alone takes minutes on 2 busy cores
@pytest.mark.parametrize(("quant", "bound"), [("fp32", 1.0), ("int8", 0.5)])
def test_onnx_runs_in_onnxruntime(exporter: tuple[Exporter, str], quant: str, bound: float) -> None:
    card, path = export(exporter, "onnx", quant)
    assert_published(exporter[0].registry, card, path)
    assert card.accuracy.runtime == "onnxruntime"
    assert card.accuracy.agreement >= bound, card.accuracy
    assert "model.onnx" in card.files
