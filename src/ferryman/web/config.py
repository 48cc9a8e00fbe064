"""What the web sub-app needs from the settings: its base URL, cookie key and policy, and the OAuth providers.

Its own module so that the pages and the app both import it, and neither imports the other."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from ferryman import identity
from ferryman.config import Settings
from ferryman.web.providers import ProviderConfig

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


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
