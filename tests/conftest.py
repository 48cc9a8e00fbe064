"""Fixtures shared by every test directory, and the strict switch (tests/capabilities.py): under
`FERRYMAN_STRICT_TESTS=1` a skipped test fails, unless it is marked `allow_skip`."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.capabilities import STRICT_ENV, strict

# Every property test: no per-example deadline and no too_slow health check, which fail on a loaded machine
# for reasons that say nothing about the code; the number and size of examples bound the run instead.
settings.register_profile("ferryman", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ferryman")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"allow_skip(reason): this test may skip even under {STRICT_ENV}=1 (say why in the reason)",
    )


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _refused(reason: str) -> str:
    return f"skipped under {STRICT_ENV}=1, which allows no skip: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if (
        strict()
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("allow_skip") is None
    ):
        report.outcome = "failed"
        report.longrepr = _refused(_skip_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if strict() and report.skipped:
        report.outcome = "failed"
        report.longrepr = _refused(_skip_reason(report.longrepr))
    return report


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
