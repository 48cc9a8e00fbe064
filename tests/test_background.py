"""The container's background task group: work runs, a crash is logged and restarted, stop ends everything."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ferryman.background import Background
from ferryman.config import Settings
from ferryman.container import open_container

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_crashed_work_is_logged_and_restarted_with_a_growing_back_off() -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def flaky() -> None:
        runs.append(loop.time())
        if len(runs) < 3:
            raise RuntimeError("the prompt was: secret")
        await asyncio.Event().wait()  # the third run keeps going

    group = Background(restart_first_seconds=0.01, restart_max_seconds=1.0)
    with capture_logs() as logs:
        group.start("sweeper", flaky)
        async with asyncio.timeout(5):
            while len(runs) < 3:
                await asyncio.sleep(0.005)
        await group.stop()

    crashed = [e for e in logs if e["event"] == "background.crashed"]
    assert [(e["work"], e["error"], e["crashes"]) for e in crashed] == [
        ("sweeper", "RuntimeError", 1),
        ("sweeper", "RuntimeError", 2),
    ]
    assert "secret" not in repr(logs)
    assert runs[2] - runs[1] >= runs[1] - runs[0] >= 0.01  # 0.01 s, then 0.02 s
    assert group.crashes("sweeper") == 2 and not group.is_running("sweeper")


async def test_work_that_returns_is_not_restarted() -> None:
    runs: list[None] = []

    async def once() -> None:
        runs.append(None)

    group = Background(restart_first_seconds=0.01)
    group.start("once", once)
    await asyncio.sleep(0.05)

    assert (runs, group.is_running("once")) == ([None], False)
    await group.stop()


async def test_stop_cancels_running_work_and_refuses_new_work() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    group = Background()
    group.start("forever", forever)
    await asyncio.sleep(0)
    await group.stop()

    assert cancelled.is_set() and not group.is_running("forever")
    with pytest.raises(RuntimeError, match="stopped"):
        group.start("late", forever)


async def test_the_container_stops_its_background_work_when_it_closes(tmp_path: Path) -> None:
    ended = asyncio.Event()

    async def consumer() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    async with open_container(Settings(data_dir=tmp_path, regions=["us"])) as c:
        c.background.start("consumer", consumer)
        await asyncio.sleep(0)
        assert c.background.is_running("consumer")

    assert ended.is_set()
