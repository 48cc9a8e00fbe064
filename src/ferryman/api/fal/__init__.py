"""The fal-compatible queue surface, mounted at /fal."""

from ferryman.api.fal.app import create_fal_app

__all__ = ["create_fal_app"]
