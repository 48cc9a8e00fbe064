"""The web sub-app mounted at /web: its routes, its cookie policy and the signed OAuth transaction cookie."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ferryman import identity
from ferryman.config import Settings
from ferryman.errors import FerrymanError
from ferryman.web.pages import Pages
from ferryman.web.providers import ProviderConfig, build_oauth

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
OAUTH_COOKIE_SECONDS = 600


@dataclass(frozen=True, slots=True)
class WebConfig:
    base_url: str
    cookie_key: str
    session_lifetime_seconds: float
    providers: ProviderConfig

    @classmethod
    def from_settings(cls, settings: Settings) -> WebConfig:
        key = (
            settings.secret_key.get_secret_value().encode()
            if settings.secret_key
            else identity.load_or_create_secret_key(settings.data_dir / "secret-key")
        )
        providers = ProviderConfig(
            github_client_id=settings.github_client_id,
            github_client_secret=_reveal(settings.github_client_secret),
            github_authorize_url=settings.github_authorize_url,
            github_token_url=settings.github_token_url,
            github_api_url=settings.github_api_url,
            google_client_id=settings.google_client_id,
            google_client_secret=_reveal(settings.google_client_secret),
            google_discovery_url=settings.google_discovery_url,
            timeout_seconds=settings.oauth_timeout_seconds,
        )
        return cls(
            base_url=settings.base_url(),
            cookie_key=hmac.new(key, b"web:oauth-cookie", hashlib.sha256).hexdigest(),
            session_lifetime_seconds=settings.session_lifetime_seconds,
            providers=providers,
        )

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` except when Ferryman is reached over plain HTTP on this machine."""
        parts = urlsplit(self.base_url)
        return not (parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS)


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret else None


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
