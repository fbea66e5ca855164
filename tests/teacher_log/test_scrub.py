"""The PII scrubber on realistic text: a hand-labelled set (support tickets, e-mail signatures,
pasted configs with keys, hard negatives such as order ids, hashes and failed checksums).

Precision and recall are span-level: a labelled value counts as found when a span of its type
covers it; any other span found is a false positive. Measured on this set (2026-12-03):
precision 1.00, recall 1.00 (see tests/fixtures/pii/README.md); the bounds leave room for one
miss or one false alarm per entity class as the detectors' versions move.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from distillserve.config.teacher_log import ScrubConfig
from distillserve.teacher_log.dead_letter import DeadLetter
from distillserve.teacher_log.record import TeacherLogRecord, TokenLogprob
from distillserve.teacher_log.scrub import PiiScrubber, RecordScrubbing
from distillserve.teacher_log.scrubbing_sink import ScrubbingSink
from distillserve.teacher_log.sink import JsonlFileSink
from tests.support.metrics import sample

LABELLED = Path(__file__).parents[1] / "fixtures" / "pii" / "labelled.jsonl"


@pytest.fixture(scope="module")
def scrubber() -> PiiScrubber:
    return PiiScrubber(ScrubConfig())


def _rows() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]


def _score(scrubber: PiiScrubber) -> tuple[Counter[str], Counter[str], Counter[str]]:
    tp, fp, fn = Counter[str](), Counter[str](), Counter[str]()
    for row in _rows():
        text, spans = row["text"], scrubber.find(row["text"])
        matched: set[int] = set()
        for ent in row["entities"]:
            start = text.index(ent["value"])
            end = start + len(ent["value"])
            hit = [i for i, (s, e, t) in enumerate(spans) if t == ent["type"] and s <= start and e >= end]
            if hit:
                tp[ent["type"]] += 1
                matched.update(hit)
            else:
                fn[ent["type"]] += 1
        for i, (_, _, t) in enumerate(spans):
            if i not in matched:
                fp[t] += 1
    return tp, fp, fn


def test_precision_and_recall_on_the_labelled_set(scrubber: PiiScrubber) -> None:
    tp, fp, fn = _score(scrubber)
    n_tp, n_fp, n_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    assert n_tp + n_fn >= 30, "the labelled set must hold enough entities to say anything"
    precision, recall = n_tp / (n_tp + n_fp), n_tp / (n_tp + n_fn)
    print(f"precision {precision:.3f} recall {recall:.3f} tp={dict(tp)} fp={dict(fp)} fn={dict(fn)}")
    assert precision >= 0.95, (fp, fn)
    assert recall >= 0.9, (fp, fn)
    # Every entity class is exercised and found at least once.
    assert set(tp) == {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "API_KEY", "TOKEN", "PRIVATE_KEY"}


def test_checksums_decide_cards_and_ibans(scrubber: PiiScrubber) -> None:
    counts: Counter[str] = Counter()
    good = "card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00"
    bad = "card 4111 1111 1111 1112, IBAN DE89 3704 0044 0532 0130 01"
    assert scrubber.scrub_text(good, counts) == "card <CREDIT_CARD>, IBAN <IBAN>"
    assert scrubber.scrub_text(bad, counts) == bad
    assert counts == {"CREDIT_CARD": 1, "IBAN": 1}


def test_a_secret_assignment_keeps_its_name(scrubber: PiiScrubber) -> None:
    text = 'db_password: "hunter2hunter2"\nauth_token=abcdef0123456789'
    assert scrubber.scrub_text(text, Counter()) == 'db_password: "<TOKEN>"\nauth_token=<TOKEN>'


def _record() -> TeacherLogRecord:
    return TeacherLogRecord(
        request_id="r1",
        key="k",
        messages=[
            {"role": "system", "content": "You are a support agent."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "I am ann@example.com, call +1 415 555 2671"}],
            },
        ],
        teacher_model="t",
        teacher_backend="openai",
        response_text="Thanks ann@example.com, we will call +1 415 555 2671.",
        reasoning_content="The user ann@example.com wants a call.",
        logprobs=[TokenLogprob(token="Thanks", logprob=-0.1)],
        tenant="acme",
    )


def test_a_record_is_scrubbed_everywhere_and_counted(scrubber: PiiScrubber, fresh_metrics) -> None:
    clean = RecordScrubbing(scrubber)(_record())
    text = clean.to_json().decode()
    assert "ann@example.com" not in text and "555" not in text
    assert clean.messages[1]["content"][0]["text"] == "I am <EMAIL>, call <PHONE>"
    assert clean.response_text == "Thanks <EMAIL>, we will call <PHONE>."
    assert clean.reasoning_content == "The user <EMAIL> wants a call."
    assert clean.logprobs is None  # they would spell the removed address token by token
    assert clean.tenant == "acme" and clean.messages[0]["content"] == "You are a support agent."
    assert sample(fresh_metrics, "distillserve_teacher_log_scrubbed_total", entity="EMAIL") == 3
    assert sample(fresh_metrics, "distillserve_teacher_log_scrubbed_total", entity="PHONE") == 2


def test_only_the_configured_entities_are_scrubbed() -> None:
    only_email = PiiScrubber(ScrubConfig(entities=["EMAIL"]))
    out = only_email.scrub_text("ann@example.com +1 415 555 2671", Counter())
    assert out == "<EMAIL> +1 415 555 2671"


async def test_the_sink_writes_only_scrubbed_records_and_dead_letters(
    scrubber: PiiScrubber, tmp_path: Path
) -> None:
    inner = JsonlFileSink(tmp_path / "log.jsonl")
    sink = ScrubbingSink(inner, RecordScrubbing(scrubber))
    sink.submit(_record())
    sink.dead_letter(DeadLetter(b"r2", b'{"text": "reach me at bob@example.org"}', "bad usage"))
    await sink.aclose()  # drains the scrubbing thread first
    written = inner.path.read_bytes() + inner.dead_letter_path.read_bytes()
    assert b"ann@example.com" not in written and b"bob@example.org" not in written
    assert written.count(b"<EMAIL>") == 4 and b"bad usage" in written


async def test_a_full_scrubbing_queue_scrubs_on_the_callers_thread(
    scrubber: PiiScrubber, tmp_path: Path
) -> None:
    inner = JsonlFileSink(tmp_path / "log.jsonl")
    sink = ScrubbingSink(inner, RecordScrubbing(scrubber), max_pending=0)  # never queue
    sink.submit(_record())
    assert b"<EMAIL>" in inner.path.read_bytes()  # written before submit returned
    await sink.aclose()
