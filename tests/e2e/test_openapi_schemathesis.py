"""Every surface's OpenAPI document is true: schemathesis generates requests from it (a few examples per
operation, so the run stays within seconds) against a real `ferryman serve` with an echo worker, and checks
that no answer is a 5xx, that each status is documented, and that each body matches its documented schema."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.e2e.processes import FerrymanServer

SURFACES = {"native": "/v1", "openai": "/openai/v1", "anthropic": "/anthropic/v1", "fal": "/fal"}
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# few examples per operation: about 40 operations in all, and each example is a real HTTP round trip
BOUNDED = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each step would be another round trip
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerrymanServer]:
    """A server of the module's own: generated requests create orgs and tokens, so no other test shares it."""
    server = FerrymanServer(tmp_path_factory.mktemp("schemathesis"))
    try:
        server.start()
        server.start_worker(region="us", slots=4, worker_id="fuzz-us")
        yield server
    finally:
        server.stop()


def _validate(case: schemathesis.Case, server: FerrymanServer, surface: str) -> schemathesis.Response:
    return case.call_and_validate(
        base_url=f"{server.url}{SURFACES[surface]}",
        headers={"Authorization": f"Bearer {server.token}"},
        checks=CHECKS,
    )


@pytest.mark.parametrize("surface", SURFACES)
def test_the_surfaces_openapi_document_is_true(fuzzed_server: FerrymanServer, surface: str) -> None:
    """Each operation in turn, with valid and with invalid inputs (schemathesis's pytest plugin does not run
    under this pytest, so the loop is ours); each operation's first failure is reported with its reproduction."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}{SURFACES[surface]}/openapi.json")
    failures, sent = [], 0
    for loaded in schema.get_all_operations():
        operation = loaded.ok()
        # a free-text path parameter has no invalid value: only bodies, queries and headers get negative cases
        violable = len(operation.body) + len(operation.query) + len(operation.headers) > 0
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if violable else (GenerationMode.POSITIVE,)
        for mode in modes:

            @BOUNDED
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                _validate(case, fuzzed_server, surface)

            try:
                check()
            except Unsatisfiable:  # no invalid input exists (say, a lone free-text path parameter)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert sent >= len(list(schema.get_all_operations())), "schemathesis sent fewer requests than operations"
    assert not failures, "\n\n".join(failures)


def test_real_job_answers_match_their_documented_schemas(fuzzed_server: FerrymanServer) -> None:
    """Generated requests rarely name a served model, so the success schemas are checked on real jobs too."""
    native = schemathesis.openapi.from_url(f"{fuzzed_server.url}/v1/openapi.json")
    chat = {"task": "chat", "model": "echo-1", "input": {"messages": [{"role": "user", "content": "hi"}]}}
    submit = native["/jobs"]["POST"]
    done = submit.Case(body={**chat, "wait": 10}, media_type="application/json")
    queued = submit.Case(
        body={**chat, "input": {**chat["input"], "sleep_ms": 3000}}, media_type="application/json"
    )
    answers = [_validate(done, fuzzed_server, "native"), _validate(queued, fuzzed_server, "native")]
    job_id = answers[1].json()["id"]
    answers.append(
        _validate(
            native["/jobs/{job_id}"]["GET"].Case(path_parameters={"job_id": job_id}), fuzzed_server, "native"
        )
    )
    answers.append(
        _validate(
            native["/jobs/{job_id}/cancel"]["POST"].Case(path_parameters={"job_id": job_id}),
            fuzzed_server,
            "native",
        )
    )
    answers.append(_validate(native["/jobs"]["GET"].Case(query={"limit": 5}), fuzzed_server, "native"))
    for surface in ("openai", "anthropic"):
        models = schemathesis.openapi.from_url(f"{fuzzed_server.url}{SURFACES[surface]}/openapi.json")
        answers.append(_validate(models["/models"]["GET"].Case(), fuzzed_server, surface))
        answers.append(
            _validate(
                models["/models/{model}"]["GET"].Case(path_parameters={"model": "echo-1"}),
                fuzzed_server,
                surface,
            )
        )
    assert [a.status_code for a in answers] == [200, 202, 200, 200, 200, 200, 200, 200, 200]


@pytest.mark.parametrize("surface", SURFACES)
def test_validation_errors_are_documented_as_400_in_the_surfaces_envelope(
    fuzzed_server: FerrymanServer, surface: str
) -> None:
    document = httpx.get(f"{fuzzed_server.url}{SURFACES[surface]}/openapi.json", timeout=10).json()
    statuses = {
        status
        for operations in document["paths"].values()
        for operation in operations.values()
        for status in operation["responses"]
    }
    bad_request = [
        op["responses"]["400"]["content"]["application/json"]["schema"]
        for operations in document["paths"].values()
        for op in operations.values()
    ]
    assert ("422" in statuses, "HTTPValidationError" in document["components"]["schemas"]) == (False, False)
    assert all(
        s == {"$ref": "#/components/schemas/Error"} or {"$ref": "#/components/schemas/Error"} in s["anyOf"]
        for s in bad_request
    )


def test_post_jobs_documents_its_request_body(fuzzed_server: FerrymanServer) -> None:
    document = httpx.get(f"{fuzzed_server.url}/v1/openapi.json", timeout=10).json()
    body = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    job_create = document["components"]["schemas"]["JobCreate"]
    assert (body, set(job_create["required"])) == (
        {"$ref": "#/components/schemas/JobCreate"},
        {"task", "model", "input"},
    )


@pytest.mark.parametrize(
    ("surface", "path", "method", "allow"),
    [
        ("native", "/jobs", "DELETE", "GET, POST"),
        ("openai", "/models", "POST", "GET"),
        ("anthropic", "/messages", "GET", "POST"),
        ("fal", "/echo-1", "GET", "POST"),
    ],
)
def test_an_unsupported_method_is_405_with_allow(
    fuzzed_server: FerrymanServer, surface: str, path: str, method: str, allow: str
) -> None:
    with fuzzed_server.client() as client:
        answer = client.request(method, f"{SURFACES[surface]}{path}")
    assert (answer.status_code, answer.headers.get("allow")) == (405, allow)
