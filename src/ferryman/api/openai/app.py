"""The OpenAI-compatible surface as its own FastAPI app: Bearer tokens, OpenAI's error shape everywhere."""

from __future__ import annotations

from fastapi import FastAPI

from ferryman.api.credentials import authenticating, openai_token
from ferryman.api.openai import render, router
from ferryman.api.signed_urls import UrlSigner
from ferryman.api.surface_app import create_surface_app


def create_openai_app(*, signer: UrlSigner, max_body_bytes: int) -> FastAPI:
    return create_surface_app(
        title="Ferryman OpenAI-compatible API",
        routers=[router.router],
        render_error=render.render_error,
        error_schema=render.ERROR_SCHEMA,
        authenticate=authenticating(openai_token),
        signer=signer,
        max_body_bytes=max_body_bytes,
    )
