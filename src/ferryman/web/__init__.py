"""The browser side: sign-in with GitHub or Google, the 18+ confirmation, invitations and a minimal account page."""

from ferryman.web.app import WebConfig, create_web_app

__all__ = ["WebConfig", "create_web_app"]
