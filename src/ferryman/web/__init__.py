"""The browser side: sign-in with GitHub or Google, the 18+ confirmation, invitations and a minimal account page."""

from ferryman.web.app import create_web_app
from ferryman.web.config import WebConfig

__all__ = ["WebConfig", "create_web_app"]
