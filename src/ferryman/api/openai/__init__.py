"""The OpenAI-compatible surface, mounted at /openai/v1."""

from ferryman.api.openai.app import create_openai_app

__all__ = ["create_openai_app"]
