"""Every URL a user can give is held to netguard's rule at the edge, answered in each surface's own format.

Issue 19 defect 4: internal targets (100.64.0.0/10 with the cloud metadata address 100.100.100.200, 6to4
embedding 127.0.0.1, fec0::/10) were accepted. Driven with the official SDKs against a real server.
"""

from __future__ import annotations

import anthropic
import fal_client.client
import openai
import pytest

from tests.e2e.processes import FerrymanServer
from tests.e2e.tls import LocalCA

INTERNAL = ["http://100.100.100.200/latest/meta-data/", "http://[2002:7f00:1::1]/x", "http://[fec0::1]/x"]


def _image_message(url: str) -> list[dict[str, object]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


@pytest.mark.parametrize("url", INTERNAL)
def test_a_webhook_on_an_internal_address_is_refused(shared_server: FerrymanServer, url: str) -> None:
    with shared_server.client() as api:
        answer = api.post(
            "/v1/jobs",
            json={
                "task": "chat",
                "model": "echo-1",
                "webhook_url": url,
                "input": {"messages": [{"role": "user", "content": "hi"}]},
            },
        )
    assert answer.status_code == 400
    assert "not publicly routable" in answer.json()["error"]["message"]


@pytest.mark.parametrize("url", INTERNAL)
def test_an_openai_image_url_on_an_internal_address_is_refused(oai: openai.OpenAI, url: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="echo-1", messages=_image_message(url))  # type: ignore[arg-type]
    assert "image_url URL points at" in str(refused.value)


def test_an_openai_image_url_on_a_public_address_or_inline_passes(oai: openai.OpenAI) -> None:
    for url in ["https://93.184.216.34/cat.png", "data:image/png;base64,iVBORw0KGgo="]:
        reply = oai.chat.completions.create(model="echo-1", messages=_image_message(url))  # type: ignore[arg-type]
        assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("url", INTERNAL)
def test_an_anthropic_image_url_on_an_internal_address_is_refused(
    claude: anthropic.Anthropic, url: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="echo-1",
            max_tokens=16,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image", "source": {"type": "url", "url": url}},
                    ],
                }
            ],
        )
    assert "not publicly routable" in str(refused.value)


@pytest.mark.parametrize("url", INTERNAL)
def test_a_fal_webhook_on_an_internal_address_is_refused(
    tls_server: FerrymanServer, local_ca: LocalCA, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{tls_server.url}/fal/")
    monkeypatch.setenv("SSL_CERT_FILE", str(local_ca.ca_file))
    sdk = fal_client.SyncClient(key=tls_server.token)
    try:
        with pytest.raises(fal_client.client.FalClientHTTPError) as refused:
            sdk.submit("echo-1", arguments={"prompt": "a ferry"}, webhook_url=url)
    finally:
        sdk._client.close()
    assert refused.value.status_code == 400
    assert "not publicly routable" in str(refused.value)
