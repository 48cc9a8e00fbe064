"""What `ferryman up` tells each region's node about its local workers before they connect."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferryman.cli import LOCAL_BACKEND_TASKS
from ferryman.worker import BackendSettings, load_backend
from ferryman.worker.backends import llamacpp, pocketsphinx


@pytest.mark.parametrize("name", sorted(LOCAL_BACKEND_TASKS))
def test_up_declares_the_tasks_each_local_backend_offers(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the engines' own presence checks are beside the point here: only what each backend offers is compared
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/espeak-ng")
    monkeypatch.setattr(pocketsphinx, "has_ffmpeg", lambda: True)
    monkeypatch.setattr(llamacpp, "import_llama_cpp", lambda: None)
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"")

    backend = load_backend(name, BackendSettings(models=("m",), model_path=str(model_file)))

    assert {t for offer in backend.offers() for t in offer.tasks} == LOCAL_BACKEND_TASKS[name]
