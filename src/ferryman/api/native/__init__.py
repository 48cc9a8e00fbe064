"""The native API under /v1: jobs and models."""

from ferryman.api.native.app import create_native_app

__all__ = ["create_native_app"]
