"""Sign-in in a real browser: headless Chromium, a real `ferryman serve`, and a real OpenID Connect provider."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.capabilities import BROWSER, OIDC_PROVIDER, require_module, require_programs
from tests.e2e.processes import FerrymanServer, free_port, tail, wait_until
from tests.web.conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_DIR


@pytest.fixture(scope="module")
def webdriver() -> Any:
    """Selenium and Debian's chromium and chromium-driver (make test installs them as root)."""
    require_programs(
        BROWSER, "make test installs Debian's chromium and chromium-driver", "chromium", "chromedriver"
    )
    return require_module("selenium.webdriver", BROWSER, "browser tests need selenium (the dev extra)")


@pytest.fixture
def server_with_google(tmp_path: Path) -> Iterator[FerrymanServer]:
    node, npm = require_programs(
        OIDC_PROVIDER, "node and npm run the npm package oidc-provider", "node", "npm"
    )
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=300)
    server = FerrymanServer(tmp_path / "server")
    issuer_port = free_port()
    log = tmp_path / "oidc.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "PORT": str(issuer_port),
        "CLIENT_ID": OIDC_CLIENT_ID,
        "CLIENT_SECRET": OIDC_CLIENT_SECRET,
        "REDIRECT_URIS": f"{server.url}/web/auth/google/callback",
    }
    with log.open("wb") as out:
        provider = subprocess.Popen(
            [node, "provider.mjs"], cwd=OIDC_DIR, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    issuer = f"http://127.0.0.1:{issuer_port}"
    try:
        wait_until(
            lambda: _answers(f"{issuer}/.well-known/openid-configuration"),
            timeout_s=30,
            what="the OpenID Connect provider",
            log=log,
        )
        server.env.update(
            {
                "FERRYMAN_GOOGLE_CLIENT_ID": OIDC_CLIENT_ID,
                "FERRYMAN_GOOGLE_CLIENT_SECRET": OIDC_CLIENT_SECRET,
                "FERRYMAN_GOOGLE_DISCOVERY_URL": f"{issuer}/.well-known/openid-configuration",
            }
        )
        yield server.start()
    finally:
        server.stop()
        provider.terminate()
        provider.wait(timeout=10)
        print(tail(log))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def chromium(tmp_path: Path, webdriver: Any) -> Iterator[object]:
    chromium_path, chromedriver_path = require_programs(
        BROWSER, "see the webdriver fixture", "chromium", "chromedriver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=chromedriver_path)
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_google_sign_in_in_a_real_browser_ends_on_the_account_page_with_an_httponly_session(
    chromium: object,  # first: without a browser, no server is started for nothing
    server_with_google: FerrymanServer,
    tmp_path: Path,
) -> None:
    by = require_module("selenium.webdriver.common.by", BROWSER, "browser tests need selenium").By
    browser = chromium
    browser.get(f"{server_with_google.url}/web/sign-in")  # type: ignore[attr-defined]
    browser.find_element(by.ID, "sign-in-google").click()  # type: ignore[attr-defined]
    browser.find_element(by.NAME, "login").send_keys("ada")  # type: ignore[attr-defined]  # the provider's form
    browser.find_element(by.TAG_NAME, "button").click()  # type: ignore[attr-defined]
    wait_until(
        lambda: "/web/confirm-age" in browser.current_url,
        timeout_s=15,  # type: ignore[attr-defined]
        what="the age confirmation page",
    )
    browser.find_element(by.NAME, "is_adult").click()  # type: ignore[attr-defined]
    browser.find_element(by.CSS_SELECTOR, "form button[type=submit]").click()  # type: ignore[attr-defined]
    wait_until(
        lambda: browser.current_url.endswith("/web/account"),
        timeout_s=15,  # type: ignore[attr-defined]
        what="the account page",
    )
    browser.save_screenshot(str(tmp_path / "account.png"))  # type: ignore[attr-defined]

    assert browser.find_element(by.ID, "user-name").text == "Test ada"  # type: ignore[attr-defined]
    assert "(this one)" in browser.find_element(by.ID, "sessions").text  # type: ignore[attr-defined]
    session = browser.get_cookie("fm_session")  # type: ignore[attr-defined]
    assert (session["httpOnly"], session["sameSite"], session["secure"]) == (True, "Lax", False)
    assert browser.execute_script("return document.cookie").find("fm_session") == -1  # type: ignore[attr-defined]
