"""Liveness, readiness and Prometheus metrics: unauthenticated, for load balancers and scrapers."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ferryman.container import Container


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Per region: connected workers, the models warm there and the ones expected but still starting, how
    many workers take work (`healthy_workers`) and which are quarantined (docs/jobs.md).

    `status` is `starting` while any expected model is not warm yet, else `ready`; it answers 200 either way,
    since the API takes jobs meanwhile (they wait as `worker_starting`).
    """
    container: Container = request.state.container
    models = {r.value: n.model_readiness() for r, n in container.nodes.items()}
    regions = {
        r.value: {"workers": n.snapshot()["workers"], "models": models[r.value], **n.worker_health()}
        for r, n in container.nodes.items()
    }
    starting = any(m["starting"] for m in models.values())
    # regions where no connected worker takes work (none connected, or all quarantined, draining or paused)
    unserved = sorted(name for name, region in regions.items() if not region["healthy_workers"])
    return JSONResponse(
        {
            "status": "starting" if starting else "ready",
            "regions": regions,
            "regions_without_healthy_worker": unserved,
        }
    )


async def metrics(request: Request) -> Response:
    container: Container = request.state.container
    return Response(generate_latest(container.registry), media_type=CONTENT_TYPE_LATEST)
