"""The strict switch itself: a real pytest run over a generated test file, once without the switch and
once with `FERRYMAN_STRICT_TESTS=1`, read back from its JUnit report."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = (
    "from tests.conftest import pytest_configure, pytest_make_collect_report, pytest_runtest_makereport\n"
)
TESTS = """
import pytest
from tests.capabilities import POSTGRES, require, require_module, require_programs

def test_passes():
    pass

def test_needs_postgres():
    require(POSTGRES, "no server here")

def test_needs_a_module_that_is_not_installed():
    require_module("ferryman_no_such_module", "the thing", "it is not installed")

def test_needs_a_program_that_is_not_on_path():
    require_programs("the thing", "it is not installed", "ferryman-no-such-program")

@pytest.fixture
def needs_capability():
    require(POSTGRES, "no server here")

def test_skips_in_a_fixture(needs_capability):
    pass

def test_plain_pytest_skip():
    pytest.skip("for no good reason")

@pytest.mark.skipif(True, reason="a skipif marker")
def test_skipif_marker():
    pass

@pytest.mark.allow_skip(reason="explicitly allowed")
def test_allowed_skip():
    pytest.skip("allowed")

@pytest.mark.xfail(reason="expected", strict=True)
def test_expected_failure():
    assert False
"""
MODULE_SKIP = "from tests.capabilities import BROWSER, require\nrequire(BROWSER, 'no browser here')\n"


def _run(tmp_path: Path, strict: bool) -> dict[str, str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_generated.py").write_text(TESTS)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != "FERRYMAN_STRICT_TESTS"}
    env["PYTHONPATH"] = str(ROOT)
    if strict:
        env["FERRYMAN_STRICT_TESTS"] = "1"
    report = tmp_path / "report.xml"
    done = subprocess.run(
        # a module that fails to collect would stop the run (exit 2) before the other tests: run them all
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors"]
        + [f"--junitxml={report}", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name") or case.get("classname", "")
        kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[name] = kinds[0] if kinds else "passed"
    outcomes["exit code"] = str(done.returncode)
    return outcomes


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_missing_capabilities_skip_by_default_and_fail_under_the_switch(tmp_path: Path, strict: bool) -> None:
    outcomes = _run(tmp_path, strict)
    missing = "failure" if strict else "skipped"
    assert outcomes == {
        "test_passes": "passed",
        "test_needs_postgres": missing,
        "test_needs_a_module_that_is_not_installed": missing,
        "test_needs_a_program_that_is_not_on_path": missing,
        "test_skips_in_a_fixture": "error" if strict else "skipped",
        "test_plain_pytest_skip": missing,
        "test_skipif_marker": "error" if strict else "skipped",  # a skip at setup fails as an error
        "test_allowed_skip": "skipped",
        "test_expected_failure": "skipped",  # JUnit's spelling of xfailed
        "test_module_skip": "error" if strict else "skipped",
        "exit code": "1" if strict else "0",
    }
