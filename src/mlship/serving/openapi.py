"""The OpenAPI 3.1 document, generated once from schema.json and the serving settings.

It states every limit the service enforces (bounds, categories, required and unknown fields, ``maxItems``)
and every status each route can answer. ``as_openapi_30`` rewrites it for tools that only read 3.0 — the
bundled Swagger UI among them.
"""

from __future__ import annotations

import copy
from typing import Any

from .asgi import PREDICTIONS_ONLY
from .columns import FLOAT_MAX, Column
from .contract import InputContract
from .settings import ServiceInfo

__all__ = ["FLOAT_MAX", "as_openapi_30", "build_openapi", "column_schema"]

JSON_TYPES = {"number", "integer", "boolean", "string"}
DOC_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def column_schema(column: Column) -> dict[str, Any]:
    """JSON Schema (2020-12, as OpenAPI 3.1 uses it) for one input column."""
    schema: dict[str, Any] = {"type": [column.kind, "null"] if column.nullable else column.kind}
    if column.kind == "integer":
        schema["format"] = "int64"
    if column.kind in ("number", "integer"):
        schema["minimum"], schema["maximum"] = column.stated_bounds()
    if column.enum is not None:
        schema["enum"] = [*column.enum, None] if column.nullable else list(column.enum)
    return schema


def _error_response(description: str, *, details: bool = False, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("ValidationError" if details else "Error")}},
    }
    if retry:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string"},
            }
        }
    return response


def _json_ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_openapi(contract: InputContract, info: ServiceInfo, example: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this service."""
    settings = info.serving
    target = contract.schema.get("target") if isinstance(contract.schema.get("target"), dict) else {}
    target_type = target.get("type") if isinstance(target, dict) else None
    # null: what a model's NaN, infinity or None becomes in JSON (orjson writes them as null)
    prediction_item: dict[str, Any] = {"type": [target_type, "null"]} if target_type in JSON_TYPES else {}
    if target_type == "integer":
        prediction_item = {"type": ["number", "null"]}  # a classifier may answer 1 or 1.0; both are the class
    score: dict[str, Any] = {"type": ["number", "null"]}
    row = {
        "type": "object",
        "description": "One input row: every column of the model's schema, no other field.",
        "properties": {c.name: column_schema(c) for c in contract.columns},
        "required": list(contract.names),
        "additionalProperties": False,
    }
    rows = {
        "type": "array",
        "items": _ref("Row"),
        "minItems": 1,
        "maxItems": settings.max_batch_rows,
        "description": f"A batch of 1 to {settings.max_batch_rows} rows (serving.max_batch_rows).",
    }
    schemas = {
        "Row": row,
        "Rows": rows,
        "PredictResponse": {
            "type": "object",
            "required": ["predictions", "model_version", "request_id"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": prediction_item,
                    "description": "One prediction per input row, in order; null where the model's output "
                    "is not a finite number (NaN or infinity) or is missing.",
                },
                "probabilities": {
                    "type": "array",
                    "items": {"type": "array", "items": score},
                    "description": "Per row, the probability of each class (in `classes` order); "
                    "present when the model has predict_proba, unless predictions_only. null where it is "
                    "not finite.",
                },
                "scores": {
                    "type": "array",
                    "items": {"anyOf": [score, {"type": "array", "items": score}]},
                    "description": "Per row, decision_function's score(s); present when the model has "
                    "decision_function but no predict_proba, unless predictions_only. null where it is not "
                    "finite.",
                },
                "classes": {
                    "type": "array",
                    "items": {},
                    "description": "The classes, in probability (or score) order.",
                },
                "model_version": {"type": "string"},
                "request_id": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "request_id"],
            "properties": {
                "error": {"type": "string"},
                "request_id": {"type": "string"},
                "model_version": {"type": "string"},
            },
        },
        "Problem": {
            "type": "object",
            "required": ["row", "field", "message"],
            "properties": {
                "row": {"type": ["integer", "null"], "description": "Row index in the request."},
                "field": {"type": ["string", "null"]},
                "message": {"type": "string"},
            },
        },
        "ValidationError": {
            "type": "object",
            "required": ["error", "request_id", "details"],
            "properties": {
                "error": {"type": "string"},
                "request_id": {"type": "string"},
                "model_version": {"type": "string"},
                "details": {"type": "array", "items": _ref("Problem")},
                "problems": {"type": "integer", "description": "How many problems in all."},
            },
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string"},
                "model_version": {"type": "string"},
                "detail": {"type": "string"},
            },
        },
    }
    limit_mb = f"{settings.max_body_mb:g}"
    predict = {
        "operationId": "predict",
        "summary": "Predict for one row or a batch of rows",
        "description": (
            f"Send one row (an object) or a list of rows as `application/json`. Every column is "
            f"required and no other field is accepted. At most {settings.max_batch_rows} rows and "
            f"{limit_mb} MB per request; a prediction taking over {settings.timeout_s:g} s is "
            "answered 504."
        ),
        "parameters": [
            {
                "name": PREDICTIONS_ONLY,
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
                "description": "true: answer the predictions without probabilities or scores (the model "
                "computes only what is asked for, so the answer is quicker).",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [_ref("Row"), _ref("Rows")]},
                    "examples": {
                        "one_row": {"summary": "One row", "value": example},
                        "batch": {"summary": "A batch of two rows", "value": [example, example]},
                    },
                }
            },
        },
        "responses": {
            "200": {
                **_json_ok("Predictions, in the order of the rows.", _ref("PredictResponse")),
                "headers": {
                    "X-Request-ID": {
                        "description": "The caller's request id, or a new one.",
                        "schema": {"type": "string"},
                    }
                },
            },
            "408": _error_response("The body did not arrive in time (a stalled client)."),
            "413": _error_response(f"Body over {limit_mb} MB or more than {settings.max_batch_rows} rows."),
            "415": _error_response("Content-Type is not application/json (the body is not read)."),
            "422": _error_response(
                "Malformed JSON or a row that breaks the schema; `details` names the row and field.",
                details=True,
            ),
            "500": _error_response("The model raised an error for this input (logged with the request id)."),
            "503": _error_response(
                "The model is not ready yet, or every concurrency slot is busy.", retry=True
            ),
            "504": _error_response(f"The prediction took longer than {settings.timeout_s:g} s."),
        },
    }
    status = _ref("Status")
    paths = {
        "/predict": {"post": predict},
        "/health/live": {
            "get": {
                "operationId": "live",
                "summary": "The process is up",
                "responses": {"200": _json_ok("Alive.", status)},
            }
        },
        "/health/ready": {
            "get": {
                "operationId": "ready",
                "summary": "The model is loaded and passed its self-test",
                "responses": {
                    "200": _json_ok("Ready to predict.", status),
                    "503": {
                        **_json_ok("Not ready (loading or failed).", status),
                        "headers": _error_response("", retry=True)["headers"],
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "parameters": [
                    {
                        "name": "openapi",
                        "in": "query",
                        "required": False,
                        "description": "3.0 rewrites the document for tools that read only OpenAPI 3.0.",
                        "schema": {"type": "string", "enum": ["3.1", "3.0"]},
                    }
                ],
                "responses": {
                    "200": _json_ok("The OpenAPI document.", {"type": "object"}),
                    "422": _error_response("Unsupported `openapi` version."),
                },
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "summary": "Swagger UI (served from this service only)",
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/docs/static/{asset}": {
            "get": {
                "operationId": "docsAsset",
                "summary": "A file the Swagger UI page loads",
                "parameters": [
                    {
                        "name": "asset",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(DOC_ASSETS)},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/css": {"schema": {"type": "string"}},
                            "text/javascript": {"schema": {"type": "string"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "404": _error_response("No such file."),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": info.name,
            "version": info.version,
            "description": f"Model service for **{info.name}** {info.version}, generated by mlship "
            "from the model's schema.json.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def as_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """The same document in OpenAPI 3.0.3 form (``nullable`` instead of ``"null"`` in type lists)."""
    converted = _to_30(copy.deepcopy(document))
    converted["openapi"] = "3.0.3"
    return converted  # type: ignore[no-any-return]


def _to_30(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _to_30(value) for key, value in node.items()}
    kind = result.get("type")
    if isinstance(kind, list):
        others = [k for k in kind if k != "null"]
        if len(others) == 1:
            result["type"] = others[0]
            if "null" in kind:
                result["nullable"] = True
    return result
