"""The metrics the gate knows, by kind, and which of them are better when lower."""

from __future__ import annotations

CLASSIFICATION_METRICS = frozenset(
    {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "roc_auc_ovr",
        "balanced_accuracy",
    }
)
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2", "mape"})
KNOWN_METRICS = CLASSIFICATION_METRICS | REGRESSION_METRICS
# Metrics that only take values in [0, 1]: a threshold outside that range is a typo ("80" for 0.80).
UNIT_INTERVAL_METRICS = CLASSIFICATION_METRICS - {"log_loss"}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
