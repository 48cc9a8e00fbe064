"""The supervisor of `ferryman up`'s local workers, with real child processes that die."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from pathlib import Path

from ferryman.supervisor import RestartPolicy, WorkerCommand, WorkerSupervisor, describe_exit

FAST = RestartPolicy(
    first_delay_seconds=0.05, max_delay_seconds=0.15, healthy_after_seconds=1.0, give_up_after=3
)


async def _supervise(
    command: WorkerCommand, policy: RestartPolicy, timeout: float = 20
) -> tuple[list[str], bytes]:
    """Run one worker under the supervisor until it gives up; the console reports and the stderr passed on."""
    reports: list[str] = []
    passed = io.BytesIO()
    gave_up = asyncio.Event()
    supervisor = WorkerSupervisor(
        [command],
        policy=policy,
        report=reports.append,
        on_give_up=lambda _: gave_up.set(),
        passthrough=passed,
    )
    supervisor.start()
    try:
        await asyncio.wait_for(gave_up.wait(), timeout)
    finally:
        await supervisor.stop(grace_seconds=2)
    assert supervisor.given_up == {command.name}
    return reports, passed.getvalue()


def _delays(reports: list[str]) -> list[str]:
    return [m.group(1) for r in reports if (m := re.search(r"restarting in ([0-9.]+) s", r))]


def test_a_worker_killed_by_sigill_is_reported_with_the_signal_its_stderr_and_advice() -> None:
    child = "import os, signal, sys; print('loading smollm2', file=sys.stderr); os.kill(os.getpid(), signal.SIGILL)"
    command = WorkerCommand("worker-us-llamacpp", [sys.executable, "-c", child], {})

    reports, passed = asyncio.run(_supervise(command, FAST))

    first = reports[0]
    assert "worker worker-us-llamacpp killed by SIGILL (illegal instruction)" in first
    assert "| loading smollm2" in first
    assert "rebuild it portably" in first
    assert b"loading smollm2\n" in passed  # the child's stderr still reaches the console as it comes
    assert _delays(reports) == ["0.05", "0.1"]  # exponential backoff between the quick failures
    assert len(reports) == 3
    assert "3 quick failures in a row" in reports[-1] and "not restarting it" in reports[-1]


def test_a_non_zero_exit_quotes_only_the_last_lines_of_stderr() -> None:
    child = "import sys\nfor i in range(50): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    command = WorkerCommand("worker-eu-echo", [sys.executable, "-c", child], {})
    policy = RestartPolicy(
        first_delay_seconds=0.05, healthy_after_seconds=30, give_up_after=1, stderr_lines=4
    )

    reports, _ = asyncio.run(_supervise(command, policy))

    quoted = re.findall(r"\| (.*)", reports[0])
    assert "worker worker-eu-echo exited with code 3" in reports[0]
    assert quoted == ["line 46", "line 47", "line 48", "line 49"]
    assert "not restarting it" in reports[0]


def test_backoff_starts_over_after_a_healthy_run(tmp_path: Path) -> None:
    # runs 1, 2, 4, 5, 6 fail at once; run 3 stays up past healthy_after_seconds, then fails
    runs = tmp_path / "runs"
    script = (
        f"n=$(($(cat {runs} 2>/dev/null || echo 0) + 1)); echo $n > {runs}; "
        'echo "run $n" >&2; [ "$n" = 3 ] && sleep 1.3; exit 1'
    )
    command = WorkerCommand("worker-us-echo", ["/bin/sh", "-c", script], {})

    reports, _ = asyncio.run(_supervise(command, FAST))

    assert runs.read_text().strip() == "6"
    assert _delays(reports) == ["0.05", "0.1", "0.05", "0.05", "0.1"]
    assert "after a healthy run" in reports[2]
    assert "| run 6" in reports[-1] and "3 quick failures in a row" in reports[-1]


def test_exits_are_described_in_words() -> None:
    assert describe_exit(-9)[0] == "killed by SIGKILL (killed)"
    assert "memory" in describe_exit(-9)[1]
    assert describe_exit(2)[0] == "exited with code 2"
    assert describe_exit(-200)[0] == "killed by signal 200"
    assert describe_exit(132) == (
        "exited with code 132, i.e. SIGILL (illegal instruction)",
        describe_exit(-4)[1],
    )
