"""The ASGI application: the container as lifespan state, and every surface mounted in one explicit list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

from ferryman.api import health
from ferryman.api.anthropic import create_anthropic_app
from ferryman.api.enrol import enrol_endpoint
from ferryman.api.fal import create_fal_app
from ferryman.api.native import create_native_app
from ferryman.api.openai import create_openai_app
from ferryman.api.signed_urls import UrlSigner, media_route
from ferryman.api.workers import worker_endpoint
from ferryman.clock import Clock
from ferryman.config import Settings
from ferryman.container import Container, open_container
from ferryman.web import WebConfig, create_web_app


def create_app(settings: Settings, *, clock: Clock | None = None, on_ready: Any = None) -> Starlette:
    """Build the app; the container opens when the lifespan starts and closes when it ends."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Container]]:
        async with open_container(settings, clock=clock) as container:
            if on_ready is not None:
                on_ready(container)
            yield {"container": container}

    signer = UrlSigner(settings.data_dir / "url-signing.key")
    limit = settings.max_body_bytes
    routes = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", health.metrics),
        WebSocketRoute("/v1/workers/connect", worker_endpoint),
        Route("/v1/workers/enrol", enrol_endpoint, methods=["POST"]),
        media_route(signer),
        Mount("/openai/v1", app=create_openai_app(signer=signer, max_body_bytes=limit)),
        Mount("/anthropic/v1", app=create_anthropic_app(signer=signer, max_body_bytes=limit)),
        Mount("/fal", app=create_fal_app(signer=signer, max_body_bytes=limit)),
        Mount("/v1", app=create_native_app(max_body_bytes=settings.max_body_bytes)),
        Mount("/web", app=create_web_app(WebConfig.from_settings(settings))),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
