"""The OAuth 2 / OpenID Connect clients (Authlib) and what each provider says about the person signing in.

State, PKCE (S256) and, for OpenID Connect, the nonce and the ID token's signature, issuer, audience and expiry
are handled by Authlib; the transaction data lives in a short-lived signed cookie between redirect and callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App
from joserfc.errors import JoseError
from starlette.requests import Request

from ferryman.errors import InvalidRequest
from ferryman.identity import Provider, ProviderIdentity


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    github_client_id: str | None
    github_client_secret: str | None
    github_authorize_url: str
    github_token_url: str
    github_api_url: str
    google_client_id: str | None
    google_client_secret: str | None
    google_discovery_url: str
    timeout_seconds: float


def build_oauth(config: ProviderConfig) -> OAuth:
    """An Authlib registry holding only the providers that have a client id configured."""
    oauth = OAuth()
    if config.github_client_id:
        oauth.register(
            name=Provider.GITHUB.value,
            client_id=config.github_client_id,
            client_secret=config.github_client_secret,
            authorize_url=config.github_authorize_url,
            access_token_url=config.github_token_url,
            api_base_url=config.github_api_url,
            client_kwargs={
                "scope": "read:user user:email",
                "code_challenge_method": "S256",
                "timeout": config.timeout_seconds,
            },
        )
    if config.google_client_id:
        oauth.register(
            name=Provider.GOOGLE.value,
            client_id=config.google_client_id,
            client_secret=config.google_client_secret,
            server_metadata_url=config.google_discovery_url,
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "timeout": config.timeout_seconds,
            },
        )
    return oauth


def client_for(oauth: OAuth, provider: str) -> StarletteOAuth2App:
    client = oauth.create_client(provider) if provider in Provider._value2member_map_ else None
    if client is None:
        raise InvalidRequest(f"sign-in with {provider!r} is not enabled here")
    return client


async def complete(client: StarletteOAuth2App, request: Request) -> ProviderIdentity:
    """Finish the callback: check state, redeem the code with the PKCE verifier, validate the ID token.
    Raises InvalidRequest, naming the provider's complaint, when any of that fails."""
    provider = Provider(client.name)
    try:
        token: dict[str, Any] = await client.authorize_access_token(request)
        if provider is Provider.GOOGLE:
            return await _google_identity(client, token)
        return await _github_identity(client, token)
    except (OAuthError, JoseError) as exc:
        raise InvalidRequest(f"sign-in with {provider.value} failed ({exc}); start again") from exc


async def _google_identity(client: StarletteOAuth2App, token: dict[str, Any]) -> ProviderIdentity:
    claims = token.get("userinfo")
    if claims is None:
        raise InvalidRequest("the provider returned no ID token; start again")
    if "email" not in claims:
        claims = {**claims, **(await client.userinfo(token=token))}
    email = claims.get("email") if claims.get("email_verified") else None
    return ProviderIdentity(
        Provider.GOOGLE, str(claims["sub"]), str(claims.get("name") or email or claims["sub"]), email
    )


async def _github_identity(client: StarletteOAuth2App, token: dict[str, Any]) -> ProviderIdentity:
    user = (await client.get("user", token=token)).json()
    emails = (await client.get("user/emails", token=token)).json()
    verified = [e["email"] for e in emails if isinstance(e, dict) and e.get("verified") and e.get("primary")]
    return ProviderIdentity(
        Provider.GITHUB,
        str(user["id"]),
        str(user.get("name") or user["login"]),
        verified[0] if verified else None,
    )
