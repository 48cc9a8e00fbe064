"""The web app's cookie policy."""

from __future__ import annotations

import pytest

from ferryman.web import WebConfig
from ferryman.web.providers import ProviderConfig

PROVIDERS = ProviderConfig(None, None, "", "", "", None, None, "", 1.0)


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [
        ("http://localhost:8000", False),
        ("http://127.0.0.1:8000", False),
        ("http://[::1]:8000", False),
        ("https://localhost", True),
        ("http://ferryman.example", True),
        ("https://ferryman.example", True),
    ],
)
def test_web_config_secure_cookies_except_plain_http_localhost(base_url: str, secure: bool) -> None:
    assert WebConfig(base_url, "k", 60.0, PROVIDERS).secure_cookies is secure
