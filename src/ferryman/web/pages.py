"""The web pages: sign-in, provider callbacks, 18+ confirmation, account, invitations, sign-out.

Every POST carries a CSRF token bound to the session (or, before sign-in, to the pending sign-up), and its
Origin, when the browser sends one, must be Ferryman's own. The session cookie is HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from authlib.integrations.starlette_client import OAuth
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ferryman.api.errors import status_of
from ferryman.errors import FerrymanError, Forbidden, InvalidRequest
from ferryman.identity import Accounts, BrowserSession, Provider, ProviderIdentity, Scope
from ferryman.types import OrgId, Region
from ferryman.web.providers import client_for, complete

if TYPE_CHECKING:
    from ferryman.web.config import WebConfig

SESSION_COOKIE = "fm_session"
MAX_FORM_BYTES = 16_384


def _accounts(request: Request) -> Accounts:
    accounts: Accounts = request.state.container.accounts
    return accounts


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


class Pages:
    def __init__(self, *, config: WebConfig, oauth: OAuth, templates: Jinja2Templates) -> None:
        self._config, self._oauth, self._templates = config, oauth, templates

    # helpers

    def _render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        return self._templates.TemplateResponse(
            request, template, context, status_code=status_code, headers={"Cache-Control": "no-store"}
        )

    def _redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(f"/web{path}", status_code=303)

    async def _session(self, request: Request) -> BrowserSession | None:
        return await _accounts(request).sessions.resolve(request.cookies.get(SESSION_COOKIE), ip=_ip(request))

    async def _form(self, request: Request, subject: BrowserSession | str | None) -> dict[str, str]:
        """The posted form after the CSRF and Origin checks; raises Forbidden when either fails."""
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") != self._config.base_url:
            raise Forbidden(f"cross-origin form post from {origin!r} refused")
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise InvalidRequest(f"form larger than {MAX_FORM_BYTES} bytes")
        async with request.form(max_files=0, max_fields=20) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        presented = fields.get("csrf_token") or request.headers.get("x-csrf-token")
        if subject is None or not _accounts(request).sessions.is_csrf_valid(subject, presented):
            raise Forbidden("missing or wrong CSRF token; reload the page and try again")
        return fields

    def _start_session(self, response: Response, secret: str) -> Response:
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(self._config.session_lifetime_seconds),
            path="/",
            httponly=True,
            secure=self._config.secure_cookies,
            samesite="lax",
        )
        return response

    async def on_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FerrymanError)
        return self._render(
            request, "error.html", status_code=status_of(exc), code=exc.code, message=exc.message
        )

    # pages

    async def home(self, request: Request) -> Response:
        return self._redirect("/account" if await self._session(request) else "/sign-in")

    async def sign_in(self, request: Request) -> Response:
        return self._render(request, "sign_in.html", providers=self._enabled(), linking=False)

    def _enabled(self) -> list[str]:
        return [p.value for p in Provider if self._oauth.create_client(p.value) is not None]

    async def login(self, request: Request) -> Response:
        client = client_for(self._oauth, request.path_params["provider"])
        redirect_uri = f"{self._config.base_url}/web/auth/{client.name}/callback"
        response: Response = await client.authorize_redirect(request, redirect_uri)
        return response

    async def callback(self, request: Request) -> Response:
        identity = await complete(client_for(self._oauth, request.path_params["provider"]), request)
        accounts, session = _accounts(request), await self._session(request)
        user_id = await accounts.signin.find_user(identity)
        if session is not None and user_id is None:  # signed in, and this identity is new: link it
            await accounts.signin.link(session.user_id, identity, ip=_ip(request))
            return self._redirect("/account")
        if user_id is None:
            request.session["pending"] = {
                "provider": identity.provider.value,
                "subject": identity.subject,
                "name": identity.name,
                "email": identity.email,
                "nonce": secrets.token_urlsafe(16),
            }
            return self._redirect("/confirm-age")
        await accounts.signin.record_sign_in(user_id, identity, ip=_ip(request))
        return await self._signed_in(request, user_id)

    async def _signed_in(self, request: Request, user_id: Any) -> Response:
        session, secret = await _accounts(request).sessions.start(
            user_id,
            ip=_ip(request),
            user_agent=request.headers.get("user-agent"),
            replaces=request.cookies.get(SESSION_COOKIE),
        )
        invitation = request.session.pop("invitation", None)
        target = f"/invitations/{invitation}" if invitation else "/account"
        return self._start_session(self._redirect(target), secret)

    async def confirm_age_form(self, request: Request) -> Response:
        pending = request.session.get("pending")
        if pending is None:
            return self._redirect("/sign-in")
        csrf = _accounts(request).sessions.csrf_token(pending["nonce"])
        return self._render(request, "confirm_age.html", name=pending["name"], csrf_token=csrf)

    async def confirm_age(self, request: Request) -> Response:
        pending = request.session.get("pending")
        if pending is None:
            raise InvalidRequest("no sign-in is waiting for confirmation; start again")
        form = await self._form(request, pending["nonce"])
        identity = ProviderIdentity(
            Provider(pending["provider"]), pending["subject"], pending["name"], pending["email"]
        )
        user_id = await _accounts(request).signin.sign_up(
            identity,
            is_adult=form.get("is_adult") == "yes",
            invitation=request.session.pop("invitation", None),
            ip=_ip(request),
        )
        del request.session["pending"]
        return await self._signed_in(request, user_id)

    async def account(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._redirect("/sign-in")
        accounts = _accounts(request)
        user = await accounts.signin.get_user(session.user_id)
        return self._render(
            request,
            "account.html",
            user=user,
            session=session,
            providers=await accounts.signin.providers(session.user_id),
            all_providers=self._enabled(),
            orgs=await accounts.orgs.memberships(session.user_id),
            sessions=await accounts.sessions.find(session.user_id),
            csrf_token=accounts.sessions.csrf_token(session),
            regions=[r.value for r in Region],
        )

    async def create_org(self, request: Request) -> Response:
        session = await self._require_session(request)
        form = await self._form(request, session)
        region = form.get("region", "us")
        if region not in Region._value2member_map_:
            raise InvalidRequest(f"region must be one of {[r.value for r in Region]}")
        await _accounts(request).orgs.create(
            session.user_id, name=form.get("name", ""), region=Region(region), ip=_ip(request)
        )
        return self._redirect("/account")

    async def mint_token(self, request: Request) -> Response:
        """A short-lived token for the browser's scripts, for one of the user's orgs, with the role's scopes."""
        session = await self._require_session(request)
        form = await self._form(request, session)
        scopes = frozenset(Scope(s) for s in form.get("scopes", "").split() if s in Scope._value2member_map_)
        minted = await _accounts(request).identity.mint_short_lived(
            parent=session.id,
            user_id=session.user_id,
            org_id=OrgId(form.get("org_id", "")),
            scopes=scopes or None,
            ttl_seconds=int(form.get("ttl_seconds", "900") or 900),
            ip=_ip(request),
        )
        return JSONResponse(
            {
                "object": "short_lived_token",
                "secret": minted.secret,
                "scopes": sorted(minted.scopes),
                "expires_at": minted.expires_at,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def revoke_session(self, request: Request) -> Response:
        session = await self._require_session(request)
        await self._form(request, session)
        await _accounts(request).sessions.revoke(session.user_id, request.path_params["session_id"])
        return self._redirect("/account")

    async def sign_out(self, request: Request) -> Response:
        session = await self._require_session(request)
        await self._form(request, session)
        await _accounts(request).sessions.end(request.cookies[SESSION_COOKIE])
        return self._signed_out()

    async def sign_out_everywhere(self, request: Request) -> Response:
        session = await self._require_session(request)
        await self._form(request, session)
        await _accounts(request).sessions.revoke_all(session.user_id)
        return self._signed_out()

    def _signed_out(self) -> Response:
        response = self._redirect("/sign-in")
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, secure=self._config.secure_cookies, samesite="lax"
        )
        return response

    async def invitation(self, request: Request) -> Response:
        secret = request.path_params["secret"]
        invitation, org = await _accounts(request).invitations.preview(secret)
        session = await self._session(request)
        if session is None:
            request.session["invitation"] = secret  # picked up again after sign-in
        csrf = _accounts(request).sessions.csrf_token(session) if session else None
        return self._render(
            request,
            "invitation.html",
            org=org,
            role=invitation.role.value,
            signed_in=bool(session),
            providers=self._enabled(),
            csrf_token=csrf,
            secret=secret,
        )

    async def accept_invitation(self, request: Request) -> Response:
        session = await self._require_session(request)
        await self._form(request, session)
        await _accounts(request).invitations.accept(
            request.path_params["secret"], session.user_id, ip=_ip(request)
        )
        return self._redirect("/account")

    async def _require_session(self, request: Request) -> BrowserSession:
        session = await self._session(request)
        if session is None:
            raise Forbidden("sign in first (your session ended or never began)")
        return session
