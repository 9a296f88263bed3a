"""The challenger-vs-champion rules (MLflow-style) and the PSI the shift guard uses."""

from __future__ import annotations

import pytest

from mlship.ops.factory.compare import compare_metric
from mlship.project.drift import psi
from mlship.project.retrain import CompareRule


def test_greater_is_better_needs_the_absolute_and_relative_gain() -> None:
    rule = CompareRule(min_absolute_change=0.01, min_relative_change=0.02)
    assert compare_metric("f1", rule, 0.83, 0.80).passed  # +0.03, +3.75 %
    assert not compare_metric("f1", rule, 0.805, 0.80).passed  # +0.005 < 0.01
    assert not compare_metric("f1", CompareRule(min_relative_change=0.05), 0.83, 0.80).passed  # 3.75 % < 5 %


def test_lower_is_better_is_mirrored_and_can_be_overridden() -> None:
    assert compare_metric("rmse", CompareRule(), 9.0, 10.0).passed
    assert not compare_metric("rmse", CompareRule(), 11.0, 10.0).passed
    assert not compare_metric("rmse", CompareRule(greater_is_better=True), 9.0, 10.0).passed


def test_default_rule_refuses_any_loss_and_an_undefined_challenger() -> None:
    assert compare_metric("roc_auc", CompareRule(), 0.90, 0.90).passed
    assert not compare_metric("roc_auc", CompareRule(), 0.8999, 0.90).passed
    assert not compare_metric("roc_auc", CompareRule(), None, 0.90).passed
    assert compare_metric("roc_auc", CompareRule(), 0.5, None).passed


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == pytest.approx(0.0)
    assert psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.228, abs=0.01)
    assert psi([0.25] * 4, [0.0, 0.0, 0.0, 1.0]) > 1
