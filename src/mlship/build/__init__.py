"""From a project to an image: frozen requirements, the staged context, the Dockerfile."""
