"""The portable llama-cpp-python build: a wheel is found again only under the exact flags it was built with."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("FERRYMAN_WHEEL_DIR", str(tmp_path / "wheels"))
    spec = importlib.util.spec_from_file_location(
        "local_model_wheel", ROOT / "tools" / "local_model_wheel.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_pinned_version_is_the_one_the_tool_builds(tool: ModuleType) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert f"llama-cpp-python=={tool.VERSION}" in extras["local-model"]


def test_no_profile_compiles_for_the_building_cpu(tool: ModuleType) -> None:
    for profile in tool.PROFILES:
        assert "-DGGML_NATIVE=OFF" in profile.cmake_args
        assert not any("NATIVE=ON" in arg or "march=native" in arg for arg in profile.cmake_args)
        if profile.arch == "x86_64":
            # AMX and AVX-512 are what faulted on guests whose hypervisor does not allow them
            for wide in ("AMX_TILE", "AMX_INT8", "AMX_BF16", "AVX512"):
                assert f"-DGGML_{wide}=OFF" in profile.cmake_args


def test_a_wheel_built_with_other_flags_is_never_found(tool: ModuleType) -> None:
    v3, v2 = (p for p in tool.PROFILES if p.arch == "x86_64")
    assert tool.key(v3) != tool.key(v2)
    other = tool.Profile(v3.name, v3.arch, v3.needs, (*v3.cmake_args, "-DGGML_AVX512=ON"))
    assert tool.key(other) != tool.key(v3), "same name, other flags: another directory"
    directory = tool.WHEELS / tool.key(other)
    directory.mkdir(parents=True)
    (directory / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    assert not list((tool.WHEELS / tool.key(v3)).glob("*.whl"))


def test_the_best_profile_the_cpu_offers_comes_first(
    tool: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tool.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(
        tool, "cpu_flags", lambda: {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "amx_tile"}
    )
    assert [p.name for p in tool.candidates(None)] == ["x86-64-v3", "x86-64-v2"]
    monkeypatch.setattr(tool, "cpu_flags", lambda: {"sse4_2"})
    assert [p.name for p in tool.candidates(None)] == ["x86-64-v2"]


def test_a_build_that_faulted_is_refused_on_that_cpu_only(
    tool: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tool.platform, "machine", lambda: "x86_64")
    flags = {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"}
    monkeypatch.setattr(tool, "cpu_flags", lambda: flags)
    v3 = tool.candidates(None)[0]
    tool._refuse(v3)
    assert [p.name for p in tool.candidates(None)] == ["x86-64-v2"]
    assert json.loads((tool.WHEELS / "refused.json").read_text())
    flags.add("avx512f")  # another kind of CPU: the refusal does not follow the wheel there
    assert [p.name for p in tool.candidates(None)] == ["x86-64-v3", "x86-64-v2"]


def test_an_unknown_profile_is_a_one_line_error(tool: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool.platform, "machine", lambda: "x86_64")
    with pytest.raises(SystemExit, match="choose one of x86-64-v3, x86-64-v2"):
        tool.candidates("x86-64-v9")


def test_a_build_that_dies_of_sigill_is_refused_and_the_next_profile_runs(
    tool: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The smoke child really dies by SIGILL (as ggml's AMX matmul did) the first time; the tool survives it."""
    monkeypatch.setattr(tool.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(tool, "cpu_flags", lambda: {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"})
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # the marker goes in this test's environment
    installed: list[str] = []
    monkeypatch.setattr(tool, "wheel_for", lambda p: tmp_path / tool.key(p) / "llama_cpp_python.whl")
    monkeypatch.setattr(tool, "install", lambda wheel: installed.append(wheel.parent.name))
    first = tmp_path / "first-run"
    monkeypatch.setattr(
        tool,
        "SMOKE",
        "import os, pathlib, signal, sys\n"
        f"flag = pathlib.Path({str(first)!r})\n"
        "if not flag.exists():\n"
        "    flag.write_text('x'); print('ggml_backend_amx_mul_mat', file=sys.stderr); sys.stderr.flush()\n"
        "    os.kill(os.getpid(), signal.SIGILL)\n"
        "print('tokens-per-second 42.0')\n",
    )
    monkeypatch.setattr(sys, "argv", ["local_model_wheel.py"])
    tool.main()
    out = capsys.readouterr()
    assert "x86-64-v3 build does not run here (killed by SIGILL)" in out.err
    assert "ggml_backend_amx_mul_mat" in out.err
    assert "runs the model on this CPU with x86-64-v2: 42.0 tokens/s" in out.out
    assert [name.split("-")[1:4] for name in installed] == [["x86", "64", "v3"], ["x86", "64", "v2"]]
    # the next run on this CPU goes straight to what worked, without building or testing again
    installed.clear()
    tool.main()
    assert installed == [] and "already installed and tested" in capsys.readouterr().out
