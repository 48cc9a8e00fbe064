"""The Anthropic-compatible surface, mounted at /anthropic/v1."""

from ferryman.api.anthropic.app import create_anthropic_app

__all__ = ["create_anthropic_app"]
