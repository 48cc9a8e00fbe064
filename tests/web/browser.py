"""A minimal browser for sign-in tests: follows redirects between Ferryman (in-process) and the providers
(real HTTP), keeps each side's cookies, and fills the provider's login form."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx

from tests.identity.harness import BASE_URL


class Browser:
    def __init__(self, ferryman: httpx.AsyncClient, outside: httpx.AsyncClient) -> None:
        self.ferryman, self.outside = ferryman, outside
        self.visited: list[str] = []

    async def go(
        self,
        url: str,
        *,
        login: str | None = None,
        method: str = "GET",
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Request `url` and follow redirects to the final page; `login` is who signs in at the provider."""
        for _ in range(20):
            url = urljoin(BASE_URL + "/", url)
            if login and "/login/oauth/authorize" in url:
                url += f"&login={login}"
            self.visited.append(f"{method} {url.split('?')[0]}")
            client = self.ferryman if url.startswith(BASE_URL) else self.outside
            response = await client.request(method, url, data=data, headers=headers)
            if response.is_redirect:
                url, method, data = urljoin(str(response.url), response.headers["location"]), "GET", None
                continue
            if login and "/interaction/" in url and "<form" in response.text:
                method, data = "POST", {"login": login}
                continue
            return response
        raise AssertionError(f"too many redirects: {self.visited}")

    async def post(self, path: str, fields: dict[str, str] | None = None) -> httpx.Response:
        """A form post carrying the CSRF token of the page it came from."""
        return await self.ferryman.post(path, data={"csrf_token": self.csrf, **(fields or {})})

    @property
    def csrf(self) -> str:
        return self._csrf

    def read_csrf(self, page: httpx.Response) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found is not None, page.text
        self._csrf = found.group(1)
        return self._csrf
