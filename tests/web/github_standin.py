"""A test double of GitHub's OAuth endpoints (authorize, access_token, /user, /user/emails), served for real.

It checks what GitHub checks (client id and secret, redirect URI, the PKCE verifier against the S256 challenge)
and signs in whichever login the test names with `?login=` on the authorize URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "gh-test-client"
CLIENT_SECRET = "gh-test-secret"
USERS = {
    "octocat": {"id": 583231, "login": "octocat", "name": "The Octocat"},
    "hubot": {"id": 1000, "login": "hubot", "name": None},
    **{
        login: {"id": 2000 + n, "login": login, "name": f"Test {login}"}
        for n, login in enumerate(("dave", "young", "erin", "frank", "gina", "hal"))
    },
}


def user_id(login: str) -> str:
    """The GitHub account id the stand-in reports for `login` (what Ferryman keys the identity by)."""
    return str(USERS[login]["id"])


@dataclass
class GitHubStandIn:
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/oauth/authorize", self.authorize),
                Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
                Route("/user", self.user),
                Route("/user/emails", self.emails),
            ]
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "bad authorize request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "login": q.get("login", "octocat"),
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
        }
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

    async def access_token(self, request: Request) -> Response:
        form = await request.form()
        auth = request.headers.get("authorization", "")
        basic = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        client = basic or f"{form.get('client_id')}:{form.get('client_secret')}"
        grant = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if (
            client != f"{CLIENT_ID}:{CLIENT_SECRET}"
            or grant is None
            or grant["challenge"] != challenge
            or grant["redirect_uri"] != form.get("redirect_uri")
        ):
            return JSONResponse({"error": "bad_verification_code"})
        token = secrets.token_urlsafe(16)
        self.tokens[token] = grant["login"]
        return JSONResponse({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})

    def _login(self, request: Request) -> str | None:
        return self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))

    async def user(self, request: Request) -> Response:
        login = self._login(request)
        return JSONResponse(USERS[login]) if login else JSONResponse({"message": "Bad credentials"}, 401)

    async def emails(self, request: Request) -> Response:
        login = self._login(request)
        if login is None:
            return JSONResponse({"message": "Bad credentials"}, 401)
        found: list[dict[str, Any]] = [{"email": f"{login}@users.example", "primary": True, "verified": True}]
        return JSONResponse(found)


def serve_in_thread(app: Starlette, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the GitHub stand-in did not start")
        time.sleep(0.02)
    return server, thread
