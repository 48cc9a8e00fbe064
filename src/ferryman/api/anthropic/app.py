"""The Anthropic-compatible surface as its own FastAPI app: `x-api-key`, Anthropic's error shape everywhere."""

from __future__ import annotations

from fastapi import FastAPI

from ferryman.api.anthropic import render, router
from ferryman.api.credentials import anthropic_token, authenticating
from ferryman.api.signed_urls import UrlSigner
from ferryman.api.surface_app import create_surface_app


def create_anthropic_app(*, signer: UrlSigner, max_body_bytes: int) -> FastAPI:
    return create_surface_app(
        title="Ferryman Anthropic-compatible API",
        routers=[router.router],
        render_error=render.render_error,
        error_schema=render.ERROR_SCHEMA,
        authenticate=authenticating(anthropic_token),
        signer=signer,
        max_body_bytes=max_body_bytes,
    )
