"""The surface: exactly the documented routes, the OpenAPI document, Swagger UI without outside hosts."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlparse

import pytest

from mlship.serving import ROUTES

from .conftest import ROW

DOCUMENTED = {
    ("POST", "/predict"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/static/{asset}"),
}


def test_the_app_has_exactly_the_documented_routes(client: Any) -> None:
    app = client.app
    found = {(method, route.path) for route in app.routes for method in route.methods - {"HEAD"}}
    assert found == DOCUMENTED
    assert set(ROUTES) == {path for _, path in DOCUMENTED}
    document = client.get("/openapi.json").json()
    assert {(m.upper(), p) for p, ops in document["paths"].items() for m in ops} == DOCUMENTED


@pytest.mark.parametrize("path", ["/admin", "/models/load", "/reload", "/predict/", "/docs/", "/shutdown"])
def test_no_other_route_answers(client: Any, path: str) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        response = client.request(method, path)
        assert response.status_code in (404, 405)
        assert response.headers["content-type"] == "application/json"


def test_wrong_methods_are_405(client: Any) -> None:
    assert client.get("/predict").status_code == 405
    assert client.post("/health/live").status_code == 405


def test_openapi_31_validates_and_states_every_limit(client_for: Any) -> None:
    from openapi_spec_validator import validate

    client = client_for(serving={"max_batch_rows": 321})
    document = client.get("/openapi.json").json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    row = document["components"]["schemas"]["Row"]
    assert row["required"] == ["amount", "count", "channel", "flag", "score"]
    assert row["additionalProperties"] is False
    properties = row["properties"]
    assert properties["amount"] == {"type": "number", "minimum": 0.0, "maximum": 10000.0}
    assert properties["count"]["type"] == "integer" and properties["count"]["maximum"] == 100
    assert properties["channel"] == {"type": "string", "enum": ["web", "pos"]}
    assert properties["score"]["type"] == ["number", "null"]
    assert document["components"]["schemas"]["Rows"]["maxItems"] == 321
    predict = document["paths"]["/predict"]["post"]
    assert set(predict["responses"]) == {"200", "408", "413", "415", "422", "500", "503", "504"}
    example = predict["requestBody"]["content"]["application/json"]["examples"]["one_row"]["value"]
    assert example == ROW


def test_openapi_30_variant_validates_for_swagger_ui(client: Any) -> None:
    from openapi_spec_validator import validate

    document = client.get("/openapi.json", params={"openapi": "3.0"}).json()
    validate(document)
    assert document["openapi"] == "3.0.3"
    score = document["components"]["schemas"]["Row"]["properties"]["score"]
    assert score["type"] == "number" and score["nullable"] is True
    assert client.get("/openapi.json", params={"openapi": "2.0"}).status_code == 422


def _loaded_urls(html: str) -> list[str]:
    """The URLs a browser fetches for this page: script src, link href, and Swagger UI's config url."""
    urls = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
    urls += re.findall(r'<link[^>]*\shref="([^"]+)"', html)
    urls += re.findall(r'"url":\s*"([^"]+)"', html)
    return urls


def test_docs_load_only_from_the_service_itself(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "SwaggerUIBundle" in page.text
    base = "http://testserver/docs"
    urls = _loaded_urls(page.text)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls)
    assert any("openapi.json" in u for u in urls)
    for url in urls:
        absolute = urljoin(base, url)
        assert urlparse(absolute).netloc == "testserver", url
        response = client.get(absolute)
        assert response.status_code == 200, url
        if absolute.endswith(".css"):  # a stylesheet could pull more: fonts and images
            for inner in re.findall(r"url\(([^)]+)\)", response.text):
                inner = inner.strip("'\"")
                assert inner.startswith("data:") or urlparse(urljoin(absolute, inner)).netloc == "testserver"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "http" not in policy  # no outside host may be allowed
    assert '"validatorUrl":null' in page.text


def test_docs_static_serves_only_the_listed_assets(client: Any) -> None:
    assert client.get("/docs/static/swagger-ui.css").headers["content-type"].startswith("text/css")
    for name in (
        "index.html",
        "swagger-initializer.js",
        "swagger-ui-bundle.js.map",
        "../__init__.py",
        "..%2F..%2Fsettings.py",
    ):
        assert client.get(f"/docs/static/{name}").status_code == 404, name


def test_health_endpoints(client: Any) -> None:
    live = client.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "live"
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "model_version": "v7"}
