"""Liveness, readiness and Prometheus metrics: unauthenticated, for load balancers and scrapers."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ferryman.container import Container


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    container: Container = request.state.container
    regions = {r.value: {"workers": n.snapshot()["workers"]} for r, n in container.nodes.items()}
    return JSONResponse({"status": "ready", "regions": regions})


async def metrics(request: Request) -> Response:
    container: Container = request.state.container
    return Response(generate_latest(container.registry), media_type=CONTENT_TYPE_LATEST)
