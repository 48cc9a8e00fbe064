"""Timer heaps: due entries in order, and compaction of entries whose jobs moved on."""

from __future__ import annotations

from ferryman.dispatch.timers import TimerHeap


def test_pop_due_yields_only_due_entries_in_due_order() -> None:
    timers = TimerHeap()
    for due, job in ((3.0, "c"), (1.0, "a"), (2.0, "b"), (9.0, "late")):
        timers.push(due, job, 0)
    assert list(timers.pop_due(3.0)) == [(1.0, "a", 0), (2.0, "b", 0), (3.0, "c", 0)]
    assert len(timers) == 1


def test_compact_drops_entries_of_jobs_no_longer_held() -> None:
    timers = TimerHeap()
    for i in range(100):
        timers.push(float(i), f"job-{i}", 0)
    timers.compact(lambda job_id: job_id in {"job-7", "job-42"})
    assert (len(timers), list(timers.pop_due(100.0))) == (2, [(7.0, "job-7", 0), (42.0, "job-42", 0)])
