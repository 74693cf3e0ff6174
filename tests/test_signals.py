"""Signals: each fires when documented, with the flow as sender and the documented data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from blinker import NamedSignal
from conftest import chain, linear_flow, no_retry_delay

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobStatus, signals
from flowforge.testing import Flaky


@contextmanager
def listening(signal: NamedSignal, sender: Any = None) -> Iterator[list[dict[str, Any]]]:
    """Collect ``(sender, kwargs)`` of every send of ``signal`` while in the block."""
    seen: list[dict[str, Any]] = []

    def receiver(sent_by: Any, **kwargs: Any) -> None:
        seen.append({"sender": sent_by, **kwargs})

    if sender is None:
        signal.connect(receiver)
    else:
        signal.connect(receiver, sender=sender)
    try:
        yield seen
    finally:
        signal.disconnect(receiver)


def test_every_signal_has_a_docstring() -> None:
    """Each public signal says when it fires and what it carries."""
    for name in signals.__all__:
        assert getattr(signals, name).__doc__, name


def test_job_started_and_finished_carry_the_job_with_the_flow_as_sender() -> None:
    """job_started and job_finished are sent once each, sender the flow."""
    flow = Flow()
    linear_flow(flow)
    with listening(signals.job_started) as started, listening(signals.job_finished) as finished:
        job = flow.execute("src", {"values": [1]})
    assert [(s["sender"], s["job_state"]) for s in started] == [(flow, job)]
    assert [(s["sender"], s["job_state"]) for s in finished] == [(flow, job)]


def test_job_finished_sees_the_final_status() -> None:
    """When job_finished fires, the job already has its final status."""
    flow = Flow()
    linear_flow(flow)
    statuses: list[JobStatus] = []

    def receiver(sender: Flow, job_state: Any) -> None:
        statuses.append(job_state.status)

    signals.job_finished.connect(receiver, sender=flow)
    try:
        flow.execute("src", {"values": [1]})
    finally:
        signals.job_finished.disconnect(receiver, sender=flow)
    assert statuses == [JobStatus.COMPLETED]


def test_receivers_can_listen_to_one_flow_only() -> None:
    """Connecting with sender=flow hears that flow and not another."""
    flow, other = Flow(), Flow()
    linear_flow(flow)
    linear_flow(other)
    with listening(signals.job_finished, sender=flow) as seen:
        other.execute("src", {"values": [1]})
        flow.execute("src", {"values": [1]})
    assert [s["sender"] for s in seen] == [flow]


def test_routine_started_and_finished_carry_routine_slot_and_activation() -> None:
    """Each handler call sends routine_started and routine_finished with its details."""
    flow = Flow()
    linear_flow(flow)
    with (
        listening(signals.routine_started, flow) as started,
        listening(signals.routine_finished, flow) as finished,
    ):
        job = flow.execute("src", {"values": [1]})
    assert [(s["routine_id"], s["slot"]) for s in started] == [
        ("src", "in"),
        ("double", "in"),
        ("relay", "in"),
        ("sink", "in"),
    ]
    assert [s["activation_id"] for s in started] == [s["activation_id"] for s in finished]
    assert all(s["activation_id"].startswith(f"{job.job_id}:") for s in started)
    assert all(s["duration"] >= 0 for s in finished)
    assert all(s["job_state"] is job for s in started + finished)


def test_event_emitted_carries_routine_event_and_data() -> None:
    """event_emitted is sent for every routed emit."""
    flow = Flow()
    linear_flow(flow)
    with listening(signals.event_emitted, flow) as seen:
        flow.execute("src", {"values": [3]})
    assert [(s["routine_id"], s["event"], s["data"]) for s in seen] == [
        ("src", "out", {"value": 3}),
        ("double", "out", {"value": 6}),
        ("relay", "out", {"value": 6}),
    ]


def test_routine_failed_carries_the_error_and_strategy() -> None:
    """routine_failed is sent once per failed call with the exception and strategy."""
    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flaky = Flaky()
    chain(flow, ("flaky", flaky))
    with listening(signals.routine_failed, flow) as seen:
        flow.execute("flaky", {"x": 1})
    assert len(seen) == 1
    assert seen[0]["routine_id"] == "flaky" and seen[0]["slot"] == "in"
    assert isinstance(seen[0]["error"], ValueError)
    assert seen[0]["strategy"] == "continue"


def test_retry_scheduled_fires_per_retry_and_routine_failed_only_at_the_end() -> None:
    """Each retry sends retry_scheduled; routine_failed only when tries run out."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flaky.set_error_handler(no_retry_delay(ErrorStrategy.RETRY, max_retries=2))
    chain(flow, ("flaky", flaky))
    with (
        listening(signals.retry_scheduled, flow) as retries,
        listening(signals.routine_failed, flow) as failed,
    ):
        job = flow.execute("flaky", {"x": 1})
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(r["job_id"] == job.job_id and r["routine_id"] == "flaky" for r in retries)
    assert len(failed) == 1 and failed[0]["strategy"] == "stop"


def test_a_raising_receiver_does_not_break_the_job(caplog: pytest.LogCaptureFixture) -> None:
    """A receiver that raises is logged and ignored; the job completes."""
    flow = Flow()
    sink = linear_flow(flow)

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    for signal in (
        signals.job_started,
        signals.routine_started,
        signals.routine_finished,
        signals.event_emitted,
        signals.job_finished,
    ):
        signal.connect(broken, sender=flow)
    try:
        job = flow.execute("src", {"values": [1]})
    finally:
        for signal in (
            signals.job_started,
            signals.routine_started,
            signals.routine_finished,
            signals.event_emitted,
            signals.job_finished,
        ):
            signal.disconnect(broken, sender=flow)
    assert job.status == "completed"
    assert sink.items == [{"value": 2}]
    assert "receiver bug" in caplog.text
