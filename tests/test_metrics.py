"""The metric conventions, pinned: threshold, averaging, classes absent from a split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.metrics import gap_closed, multilabel_scores, single_label_scores, task_scores


def test_multilabel_threshold_is_strictly_above_one_half() -> None:
    targets = np.array([[1, 0], [0, 1]])
    at_half = multilabel_scores(targets, np.array([[0.5, 0.0], [0.0, 0.5]]))
    assert at_half["f1_macro"] == 0.0  # 0.5 is not a positive prediction
    above = multilabel_scores(targets, np.array([[0.51, 0.0], [0.0, 0.51]]))
    assert above["f1_macro"] == 1.0


def test_macro_micro_weighted_samples_by_hand() -> None:
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]])
    predictions = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=float)
    scores = multilabel_scores(targets, predictions)
    # class 0: tp 2 fn 1 -> F1 0.8; class 1: tp 2 -> 1.0; class 2: absent, 1 false positive -> 0.
    assert scores["f1_macro"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)
    assert scores["f1_micro"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))  # tp 4, fp 1, fn 1
    assert scores["f1_weighted"] == pytest.approx((3 * 0.8 + 2 * 1.0) / 5)
    per_sample = [1.0, 2 * 1 / (2 * 1 + 1), 2 * 1 / (2 * 1 + 1), 1.0]
    assert scores["f1_samples"] == pytest.approx(np.mean(per_sample))


def test_a_class_absent_from_the_split_and_never_predicted_counts_as_zero() -> None:
    targets = np.array([[1, 0], [1, 0]])
    scores = multilabel_scores(targets, np.array([[0.9, 0.1], [0.8, 0.2]]))
    assert scores["f1_macro"] == pytest.approx(0.5)  # (1.0 + 0) / 2, not 1.0 over one class


def test_single_label_accuracy_and_binary_auroc() -> None:
    targets = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    scores = single_label_scores(targets, probabilities, "auroc")
    assert scores["accuracy"] == 0.75
    assert scores["auroc"] == 1.0  # every positive outranks every negative
    assert "auroc" not in task_scores("single", "accuracy", targets, probabilities)


def test_gap_closed() -> None:
    assert gap_closed(0.6, 0.5, 0.7) == pytest.approx(0.5)
    assert gap_closed(0.5, 0.5, 0.7) == 0.0
    assert math.isnan(gap_closed(0.5, 0.5, 0.5))


def test_gap_closed_is_undefined_unless_the_oracle_beats_zero() -> None:
    # oracle below zero flipped the sign: a restorer worse than zero read as 2.5 gaps closed
    assert math.isnan(gap_closed(0.45, 0.50, 0.48))
    assert math.isnan(gap_closed(0.55, 0.50, 0.48))
    assert gap_closed(0.45, 0.50, 0.60) == pytest.approx(-0.5)  # worse than zero, gap defined: negative


def test_auroc_of_a_split_holding_one_class_is_nan() -> None:
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert math.isnan(single_label_scores(np.array([1, 1, 1]), probabilities, "auroc")["auroc"])
    assert math.isnan(single_label_scores(np.array([0, 0, 0]), probabilities, "auroc")["auroc"])


def test_auroc_of_more_than_two_classes_is_refused_not_made_up() -> None:
    # A perfect 3-class model on a split of classes 0 and 2 scored 0.5 from class 1's probability.
    targets = np.array([0, 2, 0, 2])
    probabilities = np.array([[0.9, 0.05, 0.05], [0.05, 0.05, 0.9], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    with pytest.raises(ValueError, match="auroc scores a two-class task, not one with 3 classes"):
        single_label_scores(targets, probabilities, "auroc")
