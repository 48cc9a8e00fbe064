"""Turning untrusted request bodies into validated Pydantic models, raising only InvalidRequest."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ferryman.errors import InvalidJSON, InvalidRequest

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]} for e in exc.errors()]


def parse_body(model: type[M], raw: bytes) -> M:
    """Raises InvalidJSON for bytes that are not JSON and InvalidRequest (with details) for a wrong shape."""
    if not raw.strip():
        raise InvalidJSON("request body is empty; send a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidJSON("request body is not valid JSON") from None
        problems = describe(exc)
        first = problems[0]
        where = ".".join(first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['message']}", details={"errors": problems}) from None
