"""Each surface's OpenAPI document, made to say what the surface answers.

FastAPI documents every validation error as `422` with its own `HTTPValidationError` body; every Ferryman surface
answers `400` in its own error envelope (and 401/403/404/413/429/5xx in the same one). `document_errors` swaps
FastAPI's generator for one that writes that down: `400` and the other error statuses with the surface's error
schema (component `Error`), and `default` for the rarer ones, so a client generated from the document, or
schemathesis, sees the real answers. Request bodies a route reads itself (native `POST /jobs`, fal submit) are
declared on their routes with `openapi_extra`, their models added here as components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

ERROR_REF = {"$ref": "#/components/schemas/Error"}

ERROR_STATUSES = {
    "400": "Invalid request: a validation problem, a body that is not JSON, or a NUL character.",
    "401": "No token, or one that is invalid, expired or revoked.",
    "403": "The token lacks the scope this route needs.",
    "404": "No such object, or it belongs to another organization.",
    "413": "The body is over the size limit.",
    "429": "Rate limited or the backlog is full; `Retry-After` says when to try again.",
    "default": "Any other error (409, 410, 500, 502, 503, 504), in the same envelope.",
}

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def component_schemas(models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """The JSON schemas of `models` and everything they refer to, keyed by component name."""
    _, found = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    defs: dict[str, Any] = found.get("$defs", {})
    return defs


def document_errors(
    app: FastAPI,
    *,
    error_schema: dict[str, Any],
    models: Sequence[type[BaseModel]] = (),
    schemas: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Make `app.openapi()` document the surface's own error answers (see the module docstring); `models` and
    `schemas` become components that routes refer to."""

    generate = app.openapi  # FastAPI's own, which caches its document until the routes change

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for fastapi_own in ("HTTPValidationError", "ValidationError"):
            components.pop(fastapi_own, None)
        components.update(component_schemas(models))
        components.update(schemas or {})
        components["Error"] = error_schema
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                if method not in HTTP_METHODS:
                    continue
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, description in ERROR_STATUSES.items():
                    responses.setdefault(status, error_response(description))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# per-route additions, passed as `responses=` where a route answers more than one JSON 200
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the job was queued (`async`, or not finished within the wait); poll it.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer; with `stream`, Server-Sent Events.",
        "content": {"application/json": {}, "text/event-stream": {"schema": {"type": "string"}}},
    }
}
EVENTS_ONLY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events until the job ends.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
ANY_MEDIA: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The bytes, with their content type.",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}
JSON_OR_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or plain text for the text formats.",
        "content": {"application/json": {}, "text/plain": {"schema": {"type": "string"}}},
    }
}


def json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body itself (so FastAPI cannot see it)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
