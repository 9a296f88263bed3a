"""Swagger UI at /docs, from swagger_ui_bundle's files: no CDN, no outside host, works air-gapped.

The page loads only ``docs/static/swagger-ui.css`` and ``docs/static/swagger-ui-bundle.js`` (relative
URLs, so a path prefix added by a proxy keeps working) and reads ``openapi.json?openapi=3.0`` (the bundled
Swagger UI 4 renders OpenAPI 3.0 only). A Content-Security-Policy lets the browser fetch nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import html
from pathlib import Path

import orjson
import swagger_ui_bundle

from .openapi import DOC_ASSETS

CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}


def asset_dir() -> Path:
    """The folder of the bundled Swagger UI files."""
    return Path(swagger_ui_bundle.swagger_ui_path)


def assets() -> dict[str, Path]:
    """The files /docs/static serves, by name (nothing else in the bundle is reachable)."""
    folder = asset_dir()
    return {name: folder / name for name in DOC_ASSETS if (folder / name).is_file()}


def docs_page(title: str) -> tuple[bytes, str]:
    """The HTML page and the Content-Security-Policy that goes with it."""
    config = {
        "url": "openapi.json?openapi=3.0",
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "validatorUrl": None,  # the default would call validator.swagger.io
        "layout": "BaseLayout",
    }
    script = (
        f"window.ui = SwaggerUIBundle(Object.assign({orjson.dumps(config).decode()}, "
        "{presets: [SwaggerUIBundle.presets.apis]}));"
    )
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/static/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/static/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>{script}</script>
</body>
</html>
"""
    policy = (
        "default-src 'none'; "
        f"script-src 'self' 'sha256-{digest}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page.encode(), policy
