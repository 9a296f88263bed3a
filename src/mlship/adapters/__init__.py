"""One module per external system: the container engine, the OCI registry, the Jupyter kernel."""
