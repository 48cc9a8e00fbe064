"""POST /v1/workers/enrol: an autoscaled machine trades its one-time enrolment secret for a worker token.

Outside the native surface's token-authenticated routers on purpose: the caller holds no API token, only the
`fme_…` secret (in `Authorization: Bearer`), which is the credential. The body names the worker id and region the
secret was issued for; anything that does not match, or a secret that is expired or already spent, is answered
401 without saying which, and nothing is spent. See docs/autoscaler.md, "Enrolment".
"""

from __future__ import annotations

import json

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse

from ferryman import errors
from ferryman.api.errors import outage_of, render_native_error
from ferryman.container import Container

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 4096


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _field(body: object, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value or len(value) > 80:
        raise errors.InvalidRequest(f"`{name}` must be a non-empty string of at most 80 characters")
    return value


async def enrol_endpoint(request: Request) -> JSONResponse:
    container: Container = request.state.container
    try:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise errors.PayloadTooLarge(f"an enrolment request is at most {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise errors.InvalidJSON("the body is not valid JSON") from None
        worker_id, region = _field(body, "worker_id"), _field(body, "region")
        enrolled = await container.accounts.enrolments.redeem(
            _bearer(request), worker_id=worker_id, region=region
        )
    except errors.Unauthenticated as exc:
        log.warning("worker.enrolment_refused")  # never the secret, nor which check failed
        return render_native_error(exc)
    except errors.FerrymanError as exc:
        return render_native_error(exc)
    except Exception as exc:
        if (outage := outage_of(exc)) is not None:
            return render_native_error(outage)
        raise
    log.info(
        "worker.enrolled", worker_id=enrolled.worker_id, region=enrolled.region, instance=enrolled.instance_id
    )
    return JSONResponse(
        {
            "object": "worker_enrolment",
            "token": enrolled.token.secret,
            "token_id": enrolled.token.id,
            "worker_id": enrolled.worker_id,
            "region": enrolled.region.value,
            "models": list(enrolled.models),
        },
        headers={"Cache-Control": "no-store"},
    )
