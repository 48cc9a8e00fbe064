"""Where a gateway's time goes: py-spy attached to its processes during a measure, summarised per function.

`record` starts `py-spy record --format raw` (folded stacks) on each process; `summarise` keeps the samples of
the thread that runs the event loop and ranks functions by inclusive share, which is what a report needs to say
"the API spends 25% of its loop in dependency solving".
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

LOOP_FRAME = "Runner.run"  # asyncio.run's frame: present only in the event loop thread's stacks


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(processes: dict[str, int], out_dir: Path, *, seconds: float) -> list[subprocess.Popen[bytes]]:
    """One py-spy per process, each writing `<name>.folded` in `out_dir`; wait on them to finish."""
    binary = py_spy()
    if binary is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                binary,
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--duration",
                str(max(1, round(seconds))),
                "--output",
                str(out_dir / f"{name}.folded"),
                "--pid",
                str(pid),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in processes.items()
    ]


def _frame_name(frame: str) -> str:
    function, _, where = frame.partition(" (")
    return f"{function} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else function


def summarise(folded: Path, *, top: int = 25) -> dict[str, object]:
    """The event loop thread's busy samples and its `top` functions by inclusive share of them."""
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if LOOP_FRAME not in stack:
            continue
        count = int(count_text)
        samples += count
        for name in {_frame_name(f) for f in stack.split(";")}:
            inclusive[name] += count
    ranked = (
        [{"function": name, "share": n / samples} for name, n in inclusive.most_common(top)]
        if samples
        else []
    )
    return {"loop_samples": samples, "top": ranked}
