"""Threshold calibration on labelled pairs (the embedding grader's threshold is fitted, not guessed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillserve.grading.calibration import calibrate_threshold, load_pairs


def test_the_threshold_sits_in_the_widest_gap_of_the_best_split() -> None:
    c = calibrate_threshold([0.2, 0.3, 0.55, 0.8, 0.9], [False, False, False, True, True])
    assert c.threshold == pytest.approx(0.675) and c.accuracy == 1.0 and c.n == 5


def test_overlapping_classes_get_the_most_accurate_cut() -> None:
    c = calibrate_threshold([0.1, 0.6, 0.4, 0.7, 0.9], [False, False, True, True, True])
    assert c.accuracy == 0.8 and 0.1 < c.threshold <= 0.4


def test_one_class_only_cannot_be_calibrated() -> None:
    with pytest.raises(ValueError, match="both agreeing and disagreeing"):
        calibrate_threshold([0.5, 0.6], [True, True])


def test_the_shipped_set_loads_and_a_bad_file_is_named(tmp_path: Path) -> None:
    pairs = load_pairs()
    assert len(pairs) >= 30 and any(p.label for p in pairs) and not all(p.label for p in pairs)
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "q", "reference": "a"}\n')
    with pytest.raises(ValueError, match=r"pairs\.jsonl:1: not a labelled pair"):
        load_pairs(bad)
