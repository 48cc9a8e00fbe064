"""Choosing the autoscaler's provider from settings and flags: per region and model, with the Vast.ai API key taken
only from the environment or a file, and a setting that cannot work refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ferryman.config import Settings
from ferryman.fleet_wiring import SavedQuarantine, check, managed_models, provider_name


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, autoscale=True, **values)  # type: ignore[arg-type]


def test_the_provider_is_chosen_per_region_and_model_over_the_default(tmp_path: Path) -> None:
    chosen = settings(
        tmp_path,
        autoscale_provider="local",
        autoscale_providers={"eu": "vastai", "eu/echo-1": "local", "us/llama": "vastai"},
    )
    asked = [("eu", "llama"), ("eu", "echo-1"), ("us", "llama"), ("us", "x")]
    assert [provider_name(chosen, r, m) for r, m in asked] == ["vastai", "local", "vastai", "local"]


def test_autoscaled_models_default_to_what_up_serves(tmp_path: Path) -> None:
    assert managed_models(settings(tmp_path, dev=True)) == {"echo-1": "echo"}
    assert managed_models(settings(tmp_path, autoscale_models={"llama-3-8b": "llamacpp"})) == {
        "llama-3-8b": "llamacpp"
    }


def test_vastai_without_a_key_or_an_image_is_refused_with_what_to_set(tmp_path: Path) -> None:
    problems = check(settings(tmp_path, autoscale_provider="vastai"))
    assert len(problems) == 2
    assert "FERRYMAN_VASTAI_API_KEY" in problems[0] and "FERRYMAN_VASTAI_IMAGE" in problems[1]
    assert check(settings(tmp_path, autoscale_provider="gcp"))[0].startswith(
        "unknown autoscale provider ['gcp']"
    )


def test_the_key_is_read_from_a_secret_file(tmp_path: Path) -> None:
    key = tmp_path / "vast.key"
    key.write_text("k-123\n")
    assert (
        check(settings(tmp_path, autoscale_provider="vastai", vastai_api_key_file=key, vastai_image="img"))
        == []
    )
    missing = check(
        settings(tmp_path, autoscale_provider="vastai", vastai_api_key_file=tmp_path / "no", vastai_image="i")
    )
    assert "cannot read vastai_api_key_file" in missing[0]


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    argv = [sys.executable, "-m", "ferryman", "serve", "--data-dir", str(tmp_path), "--port", "9", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=clean)


def test_serve_refuses_vastai_without_a_key_before_starting_and_takes_no_key_flag(tmp_path: Path) -> None:
    refused = _serve(tmp_path, "--autoscale", "--provider", "vastai", "--vastai-image", "img")
    flag = _serve(tmp_path, "--autoscale", "--provider", "vastai", "--vastai-api-key", "k-123")

    assert refused.returncode == 2 and "cannot autoscale: vastai needs an API key" in " ".join(
        refused.stderr.split()
    )
    assert flag.returncode == 2 and "No such option" in flag.stderr
    assert not (tmp_path / "global.db").exists()  # nothing was started


def test_the_vastai_host_quarantine_outlives_a_restart_and_an_unreadable_file_starts_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vastai-quarantine.json"
    first = SavedQuarantine(path)
    first.add("17", "its worker did not register within the boot timeout")

    again = SavedQuarantine(path)
    path.write_text("not json")
    broken = SavedQuarantine(path)

    assert (again.hosts, again.reason("17")) == (
        frozenset({"17"}),
        "its worker did not register within the boot timeout",
    )
    assert len(broken) == 0
