"""The operations layer: what happens to a release after the registry (Kubernetes, monitoring, retraining)."""
