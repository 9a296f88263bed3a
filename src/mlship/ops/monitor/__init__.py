"""Watching the live model: Prometheus rules and alerts, live accuracy from the prediction log, report."""
