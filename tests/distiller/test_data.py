"""Distiller data path: records from the real testbed teacher → examples → tokens → loss."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from distillserve.distiller.encoding import IGNORE, ChatEncoder, DistillationCollator
from distillserve.distiller.examples import build_examples
from distillserve.distiller.loss import distillation_loss, scheduled_temperature
from distillserve.distiller.replay import (
    ExampleStore,
    base_replay_examples,
    labelled_examples,
    mix_replay,
    regression_examples,
)
from distillserve.distiller.trainer import load_tokenizer
from distillserve.testbed.tasks import answer
from tests.support.teacher_records import teacher_records
from tests.support.tiny_student import build_tiny_student


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return load_tokenizer(build_tiny_student(tmp_path_factory.mktemp("tiny")))


def test_filters_count_each_bad_kind_and_keep_the_rest() -> None:
    good = teacher_records(["reverse"], 6, seed=1)
    empty = good[0].model_copy(update={"response_text": "  ", "request_id": "e"})
    truncated = good[1].model_copy(update={"finish_reason": "length", "request_id": "t"})
    no_user = good[2].model_copy(update={"messages": [{"role": "assistant", "content": "hi"}]})
    raw = [*good, good[3], empty, truncated, no_user, b"{not json", b'{"schema_version": 99}']
    examples, report = build_examples(raw, learn_reasoning=False)
    assert report.seen == len(raw)
    assert report.as_dict()["dropped"] == {
        "empty": 1,
        "truncated": 1,
        "duplicate": 1,
        "malformed": 3,
        "tool_call": 0,
        "tools": 0,
        "vision": 0,
        "deleted_tenant": 0,
    }
    assert report.kept == len(examples) == 6
    for e in examples:  # the teacher's exact answers, nothing else
        assert e.answer == answer(e.messages[-1]["content"])


def test_duplicates_are_caught_across_batches() -> None:
    recs = teacher_records(["sort"], 5, seed=2)
    seen: set[str] = set()
    build_examples(recs, learn_reasoning=False, seen_fingerprints=seen)
    again, report = build_examples(recs, learn_reasoning=False, seen_fingerprints=seen)
    assert again == [] and report.dropped["duplicate"] == 5


@pytest.mark.parametrize("fmt", ["think_tags", "reasoning_content"])
def test_reasoning_is_learned_or_dropped_by_config(fmt: str) -> None:
    recs = teacher_records(["reverse"], 3, seed=3, reasoning=fmt)
    with_trace, _ = build_examples(recs, learn_reasoning=True)
    answer_only, _ = build_examples(recs, learn_reasoning=False)
    for t, a in zip(with_trace, answer_only, strict=True):
        assert t.target.startswith("<think>The task is reverse") and t.target.endswith("</think>" + a.answer)
        assert a.target == a.answer == answer(a.messages[-1]["content"])


def test_labels_cover_exactly_the_assistant_turn(tokenizer) -> None:
    examples, _ = build_examples(teacher_records(["reverse"], 4, seed=4), learn_reasoning=False)
    enc = ChatEncoder(tokenizer, 256)
    for ex in examples:
        e = enc.encode(ex)
        assert e is not None
        labelled = [t for t in e.labels if t != IGNORE]
        assert tokenizer.decode(labelled) == ex.target + "<|im_end|>\n"
        first = e.labels.index(labelled[0])
        assert all(t == IGNORE for t in e.labels[:first])
        assert tokenizer.decode(e.input_ids[:first]).endswith("<|im_start|>assistant\n")


def test_teacher_topk_lines_up_with_the_target_tokens(tokenizer) -> None:
    recs = teacher_records(["reverse"], 3, seed=5, top_logprobs=1)
    examples, _ = build_examples(recs, learn_reasoning=False)
    enc = ChatEncoder(tokenizer, 256)
    for ex in examples:
        e = enc.encode(ex)
        assert e is not None and len(e.kd) == len(ex.target)
        for pos, (ids, lps) in e.kd.items():
            assert ids == [e.input_ids[pos]] and lps == [0.0]  # the oracle is certain of its own token
    # A teacher token the student cannot spell as one token: that alternative is skipped.
    lp = recs[0].logprobs
    assert lp is not None
    lp[0].top[0] = ("<not-a-char>", -3.0)  # k stays as announced (a ragged top list falls back to CE)
    ex, _ = build_examples([recs[0]], learn_reasoning=False)
    e = enc.encode(ex[0])
    assert e is not None and enc.stats["kd_alternatives_skipped"] == 1
    assert all(len(ids) == 1 for ids, _ in e.kd.values())


def test_too_long_examples_are_dropped_and_counted(tokenizer) -> None:
    examples, _ = build_examples(teacher_records(["reverse"], 2, seed=6), learn_reasoning=False)
    enc = ChatEncoder(tokenizer, 10)
    assert enc.encode_all(examples) == [] and enc.stats["too_long"] == 2


def _batch(tokenizer, top_logprobs: int):
    examples, _ = build_examples(
        teacher_records(["reverse"], 4, seed=7, top_logprobs=top_logprobs), learn_reasoning=False
    )
    enc = ChatEncoder(tokenizer, 256)
    return DistillationCollator(tokenizer.pad_token_id)(enc.encode_all(examples))


def test_loss_is_ce_without_teacher_topk_and_mixes_with_kl_when_present(tokenizer) -> None:
    torch.manual_seed(0)
    plain = _batch(tokenizer, 0)
    assert "kd_ids" not in plain
    logits = torch.randn(*plain["input_ids"].shape, len(tokenizer))
    parts = distillation_loss(logits, plain["labels"], alpha=0.5, temperature=2.0)
    assert parts.kl is None and torch.equal(parts.loss, parts.ce)

    kd = _batch(tokenizer, 1)
    logits = torch.randn(*kd["input_ids"].shape, len(tokenizer), requires_grad=True)
    p = distillation_loss(logits, kd["labels"], kd["kd_ids"], kd["kd_logprobs"], alpha=0.3, temperature=2.0)
    assert p.kl is not None and p.kl > 0
    p.loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    # Where every labelled token has teacher top-k, the loss is exactly the α/T² mix of the means.
    only_kd = kd["labels"].clone()
    only_kd[(kd["kd_ids"] < 0).all(-1)] = IGNORE
    q = distillation_loss(logits, only_kd, kd["kd_ids"], kd["kd_logprobs"], alpha=0.3, temperature=2.0)
    assert math.isclose(float(q.loss), 0.3 * float(q.ce) + 0.7 * 4.0 * float(q.kl), rel_tol=1e-4)
    # Tokens without top-k (end-of-turn here, replayed data in general) count as plain CE.
    assert float(p.loss) < float(q.loss)
    only_ce = distillation_loss(
        logits, kd["labels"], kd["kd_ids"], kd["kd_logprobs"], alpha=1.0, temperature=2.0
    )
    assert math.isclose(float(only_ce.loss), float(only_ce.ce), rel_tol=1e-6)


def test_kl_is_zero_when_the_student_matches_the_teacher() -> None:
    # Two positions, vocab 5; teacher top-2 at position 1 (logits index 0 predicts it).
    teacher = torch.log_softmax(torch.tensor([2.0, 1.0]), -1)
    logits = torch.full((1, 2, 5), -1e4)
    logits[0, 0, 3], logits[0, 0, 1] = 2.0, 1.0  # the student puts the same two tokens in the same ratio
    labels = torch.tensor([[IGNORE, 3]])
    kd_ids = torch.tensor([[[-1, -1], [3, 1]]])
    kd_lp = torch.zeros(1, 2, 2)
    kd_lp[0, 1] = teacher
    for t in (1.0, 2.0):
        p = distillation_loss(logits, labels, kd_ids, kd_lp, alpha=0.0, temperature=t)
        assert p.kl is not None and abs(float(p.kl)) < 1e-5
    logits[0, 0, 1] = 3.0  # now it prefers the teacher's second choice
    assert float(distillation_loss(logits, labels, kd_ids, kd_lp, alpha=0.0, temperature=1.0).kl) > 0.1


def test_temperature_schedule() -> None:
    assert scheduled_temperature(2.0, 1.0, "constant", 0.7) == 2.0
    assert scheduled_temperature(2.0, 1.0, "linear", 0.0) == 2.0
    assert scheduled_temperature(2.0, 1.0, "linear", 0.5) == 1.5
    assert scheduled_temperature(2.0, 1.0, "linear", 1.5) == 1.0


def test_replay_mixes_old_data_and_base_skills(tmp_path: Path) -> None:
    new = labelled_examples([(f"reverse: w{i}", f"{i}w") for i in range(20)], "teacher")
    store = ExampleStore(tmp_path / "replay.jsonl", max_items=30)
    store.add(labelled_examples([(f"sort: s{i}", "x") for i in range(50)], "teacher"))
    past = store.load()
    assert len(past) == 30 and all(e.source == "replay" for e in past)  # bounded, read back as replay
    base = base_replay_examples(40)
    mixed = mix_replay(new, past, base, ratio=0.5, base_share=0.5, rng=random.Random(0))
    sources = [e.source for e in mixed]
    assert sources.count("teacher") == 20 and sources.count("replay") == 5 and sources.count("base") == 5
    # With no past data yet the base pool fills the whole replay share.
    only_base = mix_replay(new, [], base, ratio=0.5, base_share=0.5, rng=random.Random(0))
    assert [e.source for e in only_base].count("base") == 10


def test_regression_set_is_fixed_and_disjoint_from_base_replay() -> None:
    reg = regression_examples(60)
    assert [e.messages for e in reg] == [e.messages for e in regression_examples(60)]
    replay_prompts = {e.messages[0]["content"] for e in base_replay_examples(4096)}
    assert reg and not any(e.messages[0]["content"] in replay_prompts for e in reg)
