"""The fal-compatible queue API as its own FastAPI app: `Authorization: Key …`, fal's `{"detail"}` errors."""

from __future__ import annotations

from fastapi import FastAPI

from ferryman.api.credentials import authenticating, fal_token
from ferryman.api.fal import render, router
from ferryman.api.signed_urls import UrlSigner
from ferryman.api.surface_app import create_surface_app


def create_fal_app(*, signer: UrlSigner, max_body_bytes: int) -> FastAPI:
    return create_surface_app(
        title="Ferryman fal-compatible queue API",
        routers=[router.router],
        render_error=render.render_error,
        error_schema=render.ERROR_SCHEMA,
        authenticate=authenticating(fal_token),
        signer=signer,
        max_body_bytes=max_body_bytes,
    )
