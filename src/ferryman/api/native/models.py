"""The native models router: which models are served, where, and whether a worker is warm."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AppContainer, CurrentPrincipal

router = APIRouter()


@router.get("/models")
async def list_models(principal: CurrentPrincipal, container: AppContainer) -> JSONResponse:
    catalog: dict[str, dict[str, Any]] = {}
    for region, node in container.nodes.items():
        for info in node.models():
            entry = catalog.setdefault(
                info.name, {"id": info.name, "object": "model", "tasks": set(), "regions": []}
            )
            entry["tasks"] |= {t.value for t in info.tasks}
            entry["regions"].append(
                {
                    "region": region.value,
                    "workers": info.workers,
                    "warm": info.warm,
                    "quarantined_workers": info.quarantined,
                }
            )
    data = [{**e, "tasks": sorted(e["tasks"])} for _, e in sorted(catalog.items())]
    return JSONResponse({"object": "list", "data": data})
