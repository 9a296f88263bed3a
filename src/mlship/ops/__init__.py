"""Operations: what runs beside the released service (Kubernetes, monitoring, the model factory)."""
