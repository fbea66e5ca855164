"""Regression set and base replay by student: the golden slice of the deployment's own traffic for a
real student (versioned in the registry), a user file, the testbed sets only for the testbed student."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from distillserve.adapters.registry import AdapterRegistry, AdapterRejected
from distillserve.config import DistillerConfig
from distillserve.distiller.examples import build_examples
from distillserve.distiller.reference_sets import GoldenSlice, base_replay_pool, regression_source
from distillserve.testbed.tasks import parse_prompt
from tests.support.chat_records import chat_records

BASE = "/models/SmolLM2-135M-Instruct"


@pytest.fixture
def registry(tmp_path: Path) -> AdapterRegistry:
    return AdapterRegistry(str(tmp_path / "registry"), BASE)


def _examples():
    examples, _ = build_examples(chat_records(), learn_reasoning=True)
    return examples


def test_the_golden_slice_is_taken_from_the_first_batch_and_frozen(registry: AdapterRegistry) -> None:
    examples = _examples()  # 16
    golden = GoldenSlice(registry, size=4, batch_share=0.25, seed=0)
    assert golden.examples() == [] and golden.describe()["version"] is None
    first = golden.reserve(examples)
    assert (first.reserved, first.excluded, len(first.remaining)) == (4, 0, 12)
    info = golden.describe()
    assert info["source"] == "golden" and info["version"] == "v1" and info["n"] == 4 and info["complete"]
    held = {e.key for e in golden.examples()}
    assert not held & {e.key for e in first.remaining}  # never trained on
    # The file in the registry is what the manifest says, and it reads back the same.
    rows = registry.read_golden("v1")
    assert len(rows.splitlines()) == 4
    again = GoldenSlice(registry, size=4, batch_share=0.25, seed=0)
    assert [e.messages for e in again.examples()] == [e.messages for e in golden.examples()]
    assert again.describe() == info
    # Frozen: a later batch adds nothing; the same conversations coming back are kept out of training.
    later = again.reserve(examples)
    assert (later.reserved, later.excluded, len(later.remaining)) == (0, 4, 12)
    assert [i.version for i in registry.golden_sets()] == ["v1"]


def test_the_golden_slice_grows_over_the_first_batches_until_full(registry: AdapterRegistry) -> None:
    examples = _examples()
    golden = GoldenSlice(registry, size=6, batch_share=0.25, seed=0)
    golden.reserve(examples[:8])  # 2 of 8
    golden.reserve(examples[8:])  # 2 of 8
    assert golden.describe()["n"] == 4 and not golden.describe()["complete"]
    third = golden.reserve(examples)  # the 4 golden ones are excluded; 2 of the 12 others complete it
    assert (third.reserved, third.excluded) == (2, 4)
    assert [(i.version, i.n, i.complete) for i in registry.golden_sets()] == [
        ("v1", 2, False),
        ("v2", 4, False),
        ("v3", 6, True),
    ]


def test_a_corrupt_golden_file_is_refused(registry: AdapterRegistry) -> None:
    GoldenSlice(registry, size=4, batch_share=0.25, seed=0).reserve(_examples())
    path = Path(registry.root) / "golden" / "v1.jsonl"
    path.write_bytes(path.read_bytes().replace(b"Canberra", b"Sydney") + b"\n")
    with pytest.raises(AdapterRejected, match="checksum"):
        GoldenSlice(registry, size=4, batch_share=0.25, seed=0)


def test_a_real_student_gets_no_testbed_data(registry: AdapterRegistry) -> None:
    cfg = DistillerConfig()
    source = regression_source(cfg, BASE, registry)
    assert isinstance(source, GoldenSlice)
    pool, described = base_replay_pool(cfg, BASE, 64)
    assert pool == [] and described == {"source": "traffic", "pool": 0}
    # smollm2 by its alias is a real student too.
    assert isinstance(regression_source(cfg, "smollm2", registry), GoldenSlice)


def test_the_testbed_sets_are_for_the_testbed_student(tmp_path: Path) -> None:
    registry = AdapterRegistry(str(tmp_path / "registry"), "testbed-student")
    cfg = DistillerConfig()
    source = regression_source(cfg, "testbed-student", registry)
    assert source.describe() == {"source": "testbed", "n": len(source.examples())}
    assert all(parse_prompt(e.messages[-1]["content"]) for e in source.examples())
    pool, described = base_replay_pool(cfg, "testbed-student", 64)
    assert described == {"source": "testbed", "pool": 64} and all(e.source == "base" for e in pool)


def test_user_files_win_and_are_named_by_hash(registry: AdapterRegistry, tmp_path: Path) -> None:
    reg = tmp_path / "regression.jsonl"
    reg.write_bytes(b"".join(orjson.dumps({"prompt": f"q{i}?", "answer": f"a{i}"}) + b"\n" for i in range(5)))
    base = tmp_path / "base.jsonl"
    base.write_bytes(
        orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "answer": "Hello!"}) + b"\n"
    )
    cfg = DistillerConfig(eval={"regression_path": str(reg)}, replay={"base_path": str(base)})
    described = regression_source(cfg, BASE, registry).describe()
    assert described["source"] == "file" and described["n"] == 5 and len(described["sha256"]) == 64
    pool, replay = base_replay_pool(cfg, BASE, 64)
    assert replay["source"] == "file" and replay["pool"] == 1 and pool[0].answer == "Hello!"
