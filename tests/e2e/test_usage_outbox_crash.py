"""The usage outbox under SIGKILL: a real `ferryman serve` killed at random points of a 200-job run.

Every job that reached a terminal state has exactly one usage event, no unfinished job has one, and a consumer
that applies events in the region store (killed and restarted too, failing midway) takes each one exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Connection, text

from ferryman import store
from ferryman.jobs import UsageEvent, UsageOutbox
from tests.e2e.processes import FerrymanServer, wait_until

Make = Callable[..., FerrymanServer]
JOBS = 200
KILLS = 3
TERMINAL = ("succeeded", "failed", "cancelled", "expired")


class ConsumerCrashed(Exception):
    """The test consumer's stand-in for a crash in the middle of its work (before its commit)."""


def _consume(db: Path, *, fail_after: int | None) -> int:
    """One run of a consumer that books each event into a ledger table of the region store, in the outbox's
    transaction. With `fail_after`, it 'crashes' once it has booked that many events of a batch."""

    def book(conn: Connection, events: Sequence[UsageEvent]) -> int:
        for n, event in enumerate(events):
            if fail_after is not None and n == fail_after:
                raise ConsumerCrashed
            conn.execute(text("INSERT INTO test_ledger (event_id) VALUES (:id)"), {"id": event.id})
        return len(events)

    async def run() -> int:
        engine = store.create_engine(f"sqlite+aiosqlite:///{db}")
        writer = store.StoreWriter(engine, name="consumer")
        writer.start()
        booked = 0
        try:
            await writer.write(
                lambda conn: conn.execute(
                    text("CREATE TABLE IF NOT EXISTS test_ledger (event_id TEXT UNIQUE)")
                )
            )
            outbox = UsageOutbox(engine=engine, writer=writer)
            while True:
                events, done = await outbox.apply("test-ledger", book, limit=25)
                if not events:
                    return booked
                booked += done or 0
        except ConsumerCrashed:
            return booked
        finally:
            await writer.stop()
            await engine.dispose()

    return asyncio.run(run())


def _restart(server: FerrymanServer) -> None:
    for worker in server.workers:
        worker.kill()
        worker.wait(timeout=10)
    server.workers.clear()
    server.start()
    server.start_worker(slots=8, worker_id="echo")


def test_every_terminal_job_has_exactly_one_usage_event_across_sigkills(make_server: Make) -> None:
    seed = int(os.environ.get("FERRYMAN_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    server = make_server({"FERRYMAN_REGIONS": '["us"]'})
    server.start_worker(slots=8, worker_id="echo")
    db = server.data_dir / "regions" / "us" / "region.db"
    kill_after = set(rng.sample(range(10, JOBS - 10), KILLS))
    submitted: list[str] = []
    with server.client() as api:
        for n in range(JOBS):
            body = {
                "task": "chat",
                "model": "echo-1",
                "input": {
                    "messages": [{"role": "user", "content": f"job {n}"}],
                    "sleep_ms": rng.randint(0, 40),
                },
            }
            response = api.post("/v1/jobs", json=body)
            assert response.status_code in (200, 201, 202), response.text
            submitted.append(response.json()["id"])
            if n in kill_after:
                time.sleep(rng.uniform(0.0, 0.08))  # let some jobs run, some finish, some commit
                server.kill()
                _consume(db, fail_after=rng.randint(0, 10))  # the consumer runs (and crashes) meanwhile
                _restart(server)

    def all_ended() -> bool:
        with sqlite3.connect(db) as conn:
            states = dict(conn.execute("SELECT id, state FROM jobs").fetchall())
        return all(states.get(job_id) in TERMINAL for job_id in submitted)

    wait_until(all_ended, timeout_s=60, what=f"all {JOBS} jobs to end (seed {seed})", log=server.log)
    server.kill()  # even the last outcomes are only what was committed

    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT id, state FROM jobs").fetchall())
        per_job = dict(conn.execute("SELECT job_id, count(*) FROM usage_events GROUP BY job_id").fetchall())
        events = [row[0] for row in conn.execute("SELECT id FROM usage_events ORDER BY seq")]
    assert sorted(states) == sorted(submitted), f"seed {seed}"
    terminal = [job_id for job_id, state in states.items() if state in TERMINAL]
    assert len(terminal) == JOBS, f"seed {seed}"
    assert {job_id: per_job.get(job_id, 0) for job_id in terminal} == dict.fromkeys(terminal, 1), (
        f"seed {seed}"
    )
    assert len(events) == JOBS, f"seed {seed}"

    _consume(db, fail_after=None)
    with sqlite3.connect(db) as conn:
        ledger = [row[0] for row in conn.execute("SELECT event_id FROM test_ledger")]
        position = conn.execute(
            "SELECT acked_seq FROM usage_cursors WHERE consumer = 'test-ledger'"
        ).fetchone()
        last_seq = conn.execute("SELECT max(seq) FROM usage_events").fetchone()
    assert sorted(ledger) == sorted(events), f"seed {seed}: each event booked exactly once"
    assert position == last_seq
