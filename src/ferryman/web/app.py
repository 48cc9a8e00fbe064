"""The web sub-app mounted at /web: its routes, its cookie policy and the signed OAuth transaction cookie."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ferryman.errors import FerrymanError
from ferryman.web.config import WebConfig
from ferryman.web.pages import Pages
from ferryman.web.providers import build_oauth

OAUTH_COOKIE_SECONDS = 600


def create_web_app(config: WebConfig) -> Starlette:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    pages = Pages(config=config, oauth=build_oauth(config.providers), templates=templates)
    routes = [
        Route("/", pages.home),
        Route("/sign-in", pages.sign_in),
        Route("/auth/{provider}/login", pages.login),
        Route("/auth/{provider}/callback", pages.callback),
        Route("/confirm-age", pages.confirm_age_form),
        Route("/confirm-age", pages.confirm_age, methods=["POST"]),
        Route("/account", pages.account),
        Route("/orgs", pages.create_org, methods=["POST"]),
        Route("/tokens/short-lived", pages.mint_token, methods=["POST"]),
        Route("/sessions/{session_id}/revoke", pages.revoke_session, methods=["POST"]),
        Route("/sign-out", pages.sign_out, methods=["POST"]),
        Route("/sign-out-everywhere", pages.sign_out_everywhere, methods=["POST"]),
        Route("/invitations/{secret}", pages.invitation),
        Route("/invitations/{secret}/accept", pages.accept_invitation, methods=["POST"]),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=config.cookie_key,
            session_cookie="fm_oauth",
            max_age=OAUTH_COOKIE_SECONDS,
            same_site="lax",
            https_only=config.secure_cookies,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={FerrymanError: pages.on_error})
