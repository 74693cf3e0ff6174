"""The Dask session's batching, with a stand-in client: what it sends, what it
fetches and when, and that every call is settled exactly once.

The real cluster runs in ``test_executors_remote``; these tests drive
:class:`~flowforge.runtime.dask._DaskSession` through a fake client so each
message and each round trip can be counted.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from distributed.client import FutureCancelledError

from flowforge.runtime import dask as dask_runtime
from flowforge.runtime.dask import BACKLOG, _DaskSession
from flowforge.runtime.executors import WorkerLost

WORKERS = 2
#: Tasks that keep the fake cluster's workers busy: results are held meanwhile.
BUSY = BACKLOG * WORKERS + 1


def _result(call: Any) -> Any:
    """A RemoteResult stand-in that says which call it answers."""
    return SimpleNamespace(durations=[1.0], call=call, outcome=lambda: ("outcome of", call))


class _FakeTask:
    """A Dask future stand-in that finishes (or fails) when told to."""

    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls
        self.callbacks: list[Callable[[Any], None]] = []
        self.status = "pending"
        self.error: BaseException | None = None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self.callbacks.append(callback)

    def value(self) -> list[Any]:
        return [_result(call) for call, _ in self.calls]

    def result(self) -> list[Any]:
        if self.error is not None:
            raise self.error
        return self.value()

    def finish(self, status: str = "finished", error: BaseException | None = None) -> None:
        self.status, self.error = status, error
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback(self)


class _FakeClient:
    """Records every message (``map``) and every fetch (``gather``) of a session."""

    def __init__(self, workers: int = WORKERS) -> None:
        self.workers = workers
        self.messages: list[list[_FakeTask]] = []
        self.gathers: list[list[_FakeTask]] = []
        self.gather_error: BaseException | None = None

    def scheduler_info(self) -> dict[str, Any]:
        return {"workers": {f"w{i}": {} for i in range(self.workers)}}

    def map(self, fn: Any, parts: list[Any], pure: bool) -> list[_FakeTask]:
        tasks = [_FakeTask(part) for part in parts]
        self.messages.append(tasks)
        return tasks

    def gather(self, tasks: list[_FakeTask]) -> list[list[Any]]:
        self.gathers.append(list(tasks))
        if self.gather_error is not None:
            raise self.gather_error
        return [task.value() for task in tasks]

    def sent(self) -> list[_FakeTask]:
        return [task for message in self.messages for task in message]


def _session(client: _FakeClient) -> _DaskSession:
    shipper = SimpleNamespace(call=lambda act, job_id: SimpleNamespace(routine_id=act.rid))
    return _DaskSession(client, shipper)  # type: ignore[arg-type]


def _act(routine_id: str = "work") -> Any:
    return SimpleNamespace(call=SimpleNamespace(job_id="j"), error_handler=None, rid=routine_id)


def _send(session: _DaskSession, count: int) -> list[concurrent.futures.Future[Any]]:
    placeholders = [session.submit(_act()) for _ in range(count)]
    session.flush()
    return placeholders


def _take(session: _DaskSession, placeholders: list[concurrent.futures.Future[Any]]) -> None:
    """Read every result as the job's scheduler does (it counts what was taken)."""
    for placeholder in placeholders:
        session.outcome(placeholder)


def test_ready_calls_go_together_and_wait_while_the_workers_are_busy() -> None:
    """Ready calls go in one message; new ones wait while over BACKLOG tasks per worker run."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY)
    assert [len(m) for m in client.messages] == [BUSY]
    late = session.submit(_act())
    session.flush()
    assert len(client.messages) == 1 and not late.done()
    client.messages[0][0].finish()
    assert placeholders[0].done()
    _take(session, placeholders[:1])
    session.flush()
    assert [len(m) for m in client.messages] == [BUSY, 1]


def test_finished_results_wait_while_the_workers_are_busy_then_come_in_one_fetch() -> None:
    """While over BACKLOG tasks per worker run, results are held; then one gather fetches them."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY + 3)
    tasks = client.sent()
    for task in tasks[:3]:
        task.finish()
    assert client.gathers == [] and not any(p.done() for p in placeholders)
    tasks[3].finish()
    assert client.gathers == [tasks[:4]]
    assert all(p.done() for p in placeholders[:4]) and not placeholders[4].done()
    session.close()


def test_every_result_reaches_its_call_once() -> None:
    """Each call gets its own task's result, each task fetched exactly once."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY + 4)
    tasks = client.sent()
    for task in reversed(tasks):
        task.finish()
    fetched = [task for gather in client.gathers for task in gather]
    assert sorted(map(id, fetched)) == sorted(map(id, tasks))
    for placeholder, task in zip(placeholders, tasks, strict=True):
        assert placeholder.result().call is task.calls[0][0]


def test_held_results_are_fetched_after_hold_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result held while the workers stay busy is fetched after HOLD_AT_MOST anyway."""
    monkeypatch.setattr(dask_runtime, "HOLD_AT_MOST", 0.01)
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY + 2)
    client.sent()[0].finish()
    assert placeholders[0].result(timeout=10).durations == [1.0]
    assert len(client.gathers) == 1 and not placeholders[1].done()
    session.close()


def test_a_failed_task_fails_its_calls_and_the_others_still_succeed() -> None:
    """In one fetch, a task that failed fails its calls; finished ones get their results."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY + 1)
    tasks = client.sent()
    tasks[0].finish("error", ValueError("task broke"))
    tasks[1].finish("cancelled", FutureCancelledError("k", "worker lost"))
    tasks[2].finish()
    assert client.gathers == [[tasks[2]]]
    with pytest.raises(ValueError, match="task broke"):
        placeholders[0].result()
    with pytest.raises(WorkerLost):
        session.outcome(placeholders[1])
    assert placeholders[2].result().durations == [1.0]


def test_a_failed_fetch_settles_each_task_alone() -> None:
    """When the batched gather fails, each task's result is fetched on its own."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY)
    client.gather_error = OSError("connection reset")
    tasks = client.sent()
    tasks[0].finish()
    assert client.gathers == [[tasks[0]]]
    assert placeholders[0].result().call is tasks[0].calls[0][0]


def test_a_task_whose_result_was_lost_is_waited_for_again() -> None:
    """A held task whose data is lost (Dask runs it again) is settled when it finishes again."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY)
    tasks = client.sent()
    tasks[0].finish("lost")
    assert client.gathers == [] and not placeholders[0].done()
    tasks[0].finish()
    assert client.gathers == [[tasks[0]]]
    assert placeholders[0].result().call is tasks[0].calls[0][0]


def test_ready_calls_wait_until_the_scheduler_has_taken_every_result() -> None:
    """After a batch of results, calls made ready meanwhile go in one message, not one each."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY + 2)
    for task in client.sent()[:3]:
        task.finish()
    taken = placeholders[:3]
    for placeholder in taken[:-1]:
        session.outcome(placeholder)
        session.submit(_act())
        session.flush()
    assert len(client.messages) == 1
    session.outcome(taken[-1])
    session.submit(_act())
    session.flush()
    assert [len(m) for m in client.messages] == [BUSY + 2, 3]


def test_a_closed_session_fetches_nothing_more() -> None:
    """After close (the job ended, say past its deadline), late tasks are not fetched."""
    client = _FakeClient()
    session = _session(client)
    placeholders = _send(session, BUSY + 1)
    tasks = client.sent()
    tasks[0].finish()
    session.close()
    for task in tasks[1:]:
        task.finish()
    assert client.gathers == [] and not any(p.done() for p in placeholders)
