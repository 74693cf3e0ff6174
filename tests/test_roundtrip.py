"""Round trips, checked with hypothesis.

Random flows of :mod:`flowforge.testing` routines, with random configs,
stats, policies, error handlers and mappings, survive serialize -> JSON or
YAML -> from_dict. Random small jobs, paused at random points, saved,
loaded and resumed in a freshly loaded flow, end exactly like the same job
run without interruption.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import yaml
from conftest import AppendCollect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowforge import (
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    Routine,
    signals,
)
from flowforge.testing import Collect, Double, Flaky, Join, Relay, Sleep, Source

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EMITTING = [Source, Double, Relay, Join, Flaky, Sleep]
ROUTINE_CLASSES = [*EMITTING, Collect]
EXCEPTIONS = [Exception, ValueError, KeyError, ConnectionError, TimeoutError, OSError]

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=10),
)
plain = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=8,
)
positive = st.floats(0.001, 1000, allow_nan=False)


@st.composite
def error_handlers(draw: st.DrawFn) -> ErrorHandler:
    """Any valid ErrorHandler."""
    return ErrorHandler(
        draw(st.sampled_from(list(ErrorStrategy))),
        draw(st.integers(0, 10)),
        draw(st.floats(0, 60, allow_nan=False)),
        # The longest wait (60 * 2 ** 9 s) stays under the week ErrorHandler allows.
        draw(st.floats(0, 2, allow_nan=False)),
        tuple(draw(st.lists(st.sampled_from(EXCEPTIONS), min_size=1, max_size=3, unique=True))),
    )


@st.composite
def routines(draw: st.DrawFn) -> Routine:
    """A testing routine with random config, stats and policy."""
    routine: Routine = draw(st.sampled_from(ROUTINE_CLASSES))()
    routine.set_config(**draw(st.dictionaries(names, plain, max_size=3)))
    routine._stats = draw(st.dictionaries(names, st.integers(0, 1000), max_size=3))
    routine.set_policy(
        max_concurrency=draw(st.integers(1, 16)),
        timeout=draw(st.none() | positive),
        max_activations=draw(st.none() | st.integers(1, 10**6)),
        error_handler=draw(st.none() | error_handlers()),
    )
    return routine


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    """A flow of 1-6 random routines, randomly connected, with random flow options."""
    executor = draw(st.sampled_from(["sequential", "thread"]))
    flow = Flow(
        flow_id=draw(st.none() | names),
        executor=executor,
        max_workers=draw(st.integers(1, 8)) if executor == "thread" else None,
        error_handler=draw(error_handlers()),
        retention=draw(st.integers(1, 5000)),
        max_activations=draw(st.none() | st.integers(1, 10**6)),
    )
    members = draw(st.lists(routines(), min_size=1, max_size=6))
    ids = [flow.add_routine(routine, f"r{i}") for i, routine in enumerate(members)]
    emitters = [rid for rid, r in zip(ids, members, strict=True) if isinstance(r, tuple(EMITTING))]
    if emitters:
        for _ in range(draw(st.integers(0, 8))):
            mapping = draw(st.none() | st.dictionaries(names, names, min_size=1, max_size=2))
            # Wires the flow refuses (a repeated wire, an unsound mapping) are left out.
            with contextlib.suppress(DefinitionError):
                flow.connect(
                    draw(st.sampled_from(emitters)),
                    "out",
                    draw(st.sampled_from(ids)),
                    "in",
                    mapping,
                )
    if draw(st.booleans()):
        flow.entry = {
            "routine_id": ids[0],
            "slot": "in",
            "params": draw(st.dictionaries(names, plain, max_size=2)),
        }
    return flow


def describe(flow: Flow) -> dict[str, Any]:
    """Everything a loaded flow must bring back."""
    return {
        "flow_id": flow.flow_id,
        "executor": flow.executor.settings(),
        "error_handler": flow.error_handler,
        "retention": flow.retention,
        "max_activations": flow.max_activations,
        "entry": flow.entry,
        "routines": {
            rid: (type(r), r.config, r.stats(), r.policy) for rid, r in flow.routines.items()
        },
        "connections": [(c.key, c.param_mapping) for c in flow.connections],
    }


def via_json(data: Any) -> Any:
    """``data`` through JSON text."""
    return json.loads(json.dumps(data))


def via_yaml(data: Any) -> Any:
    """``data`` through YAML text (safe dump and load only)."""
    return yaml.safe_load(yaml.safe_dump(data))


@SETTINGS
@given(flows())
def test_flow_survives_json(flow: Flow) -> None:
    """serialize -> JSON -> from_dict rebuilds the same flow, and serializes the same."""
    data = flow.serialize()
    loaded = Flow.from_dict(via_json(data))
    assert describe(loaded) == describe(flow)
    assert via_json(loaded.serialize()) == via_json(data)


@SETTINGS
@given(flows())
def test_flow_survives_yaml(flow: Flow) -> None:
    """serialize -> YAML -> from_dict rebuilds the same flow."""
    loaded = Flow.from_dict(via_yaml(flow.serialize()))
    assert describe(loaded) == describe(flow)


# -- jobs paused at random points --------------------------------------------------

#: Stages a random job's pipeline is made of (see ``build_job_flow``).
STAGES = ["double", "relay", "diamond", "skip-branch", "continue-branch"]


def build_job_flow(stages: list[str]) -> Flow:
    """``src -> stage -> ... -> sink`` (append merge), every routine deterministic.

    ``diamond`` fans out to a Double and a Relay and joins them; the
    ``*-branch`` stages add a side branch through an always-failing Flaky
    (SKIP or CONTINUE) into a join with the main line.
    """
    flow = Flow(flow_id="job-roundtrip")
    flow.add_routine(Source(), "src")
    last = "src"
    for i, stage in enumerate(stages):
        last = _add_stage(flow, stage, f"s{i}", last)
    flow.add_routine(AppendCollect(), "sink")
    flow.add_routine(Collect(), "log")
    flow.connect(last, "out", "sink", "in")
    flow.connect(last, "out", "log", "in")
    return flow


def _add_stage(flow: Flow, stage: str, prefix: str, last: str) -> str:
    if stage in ("double", "relay"):
        flow.add_routine(Double() if stage == "double" else Relay(), prefix)
        flow.connect(last, "out", prefix, "in")
        return prefix
    side: Routine = Double()
    if stage != "diamond":
        side = Flaky()
        side.set_config(fail_times=-1)
        strategy = ErrorStrategy.SKIP if stage == "skip-branch" else ErrorStrategy.CONTINUE
        side.set_error_handler(ErrorHandler(strategy))
    flow.add_routine(side, f"{prefix}_side")
    flow.add_routine(Relay(), f"{prefix}_main")
    flow.add_routine(Join(), f"{prefix}_join")
    for branch, name in ((f"{prefix}_main", "main"), (f"{prefix}_side", "side")):
        flow.connect(last, "out", branch, "in")
        flow.connect(branch, "out", f"{prefix}_join", "in", {"value": name})
    flow.add_routine(Relay(), prefix)
    flow.connect(f"{prefix}_join", "out", prefix, "in", {"main": "value"})
    return prefix


def outputs(flow: Flow) -> list[list[dict[str, Any]]]:
    """What the two sinks of a job flow collected."""
    return [flow.get_routine(rid).items for rid in ("sink", "log")]  # type: ignore[union-attr]


def summary(job: JobState) -> dict[str, Any]:
    """What an interrupted and an uninterrupted run must agree on."""
    tracker = job.tracker
    return {
        "status": job.status,
        "routine_states": job.routine_states,
        "history": [(r.routine_id, r.event_name, r.data) for r in job.get_execution_history()],
        "calls": {
            rid: {
                k: tracker.get_routine_performance(rid)[k]
                for k in ("total_executions", "success_count", "failure_count")
            }
            for rid in job.routine_states
        },
        "errors": [(e.routine_id, e.error_type, e.strategy) for e in job.errors],
        "skipped": [(s.routine_id, s.missing) for s in job.skipped],
        "slot_states": job.slot_states,
    }


def run_segment(
    flow: Flow, job: JobState | None, params: dict[str, Any], limit: int | None
) -> JobState:
    """Start (or resume) the job, pausing it after ``limit`` finished calls."""
    finished = 0

    def pause_at(sender: Flow, job_state: JobState, **_: Any) -> None:
        nonlocal finished
        finished += 1
        if finished == limit:
            sender.pause(job_state, reason="test pause")

    signals.routine_finished.connect(pause_at, sender=flow)
    try:
        return flow.execute("src", params) if job is None else flow.resume(job)
    finally:
        signals.routine_finished.disconnect(pause_at, sender=flow)


def run_with_pauses(
    flow: Flow, params: dict[str, Any], pause_after: list[int], text: Any
) -> tuple[JobState, list[list[dict[str, Any]]]]:
    """Run a job, pausing after each count of finished calls; save, load and resume it."""
    collected: list[list[dict[str, Any]]] = [[], []]
    job: JobState | None = None
    for n, limit in enumerate([*pause_after, None]):
        job = run_segment(flow, job, params, limit)
        for mine, got in zip(collected, outputs(flow), strict=True):
            mine.extend(got)
        if job.status is not JobStatus.PAUSED:
            break
        assert n < len(pause_after)
        job = JobState.from_dict(text(job.serialize()))
        flow = Flow.from_dict(via_json(flow.serialize()))
    assert job is not None
    return job, collected


@SETTINGS
@given(
    stages=st.lists(st.sampled_from(STAGES), min_size=1, max_size=4),
    values=st.lists(st.integers(-100, 100), min_size=1, max_size=5),
    pause_after=st.lists(st.integers(1, 12), min_size=1, max_size=3).map(sorted),
    text=st.sampled_from([via_json, via_yaml]),
)
def test_paused_saved_and_resumed_job_ends_like_an_uninterrupted_one(
    stages: list[str],
    values: list[int],
    pause_after: list[int],
    text: Any,
) -> None:
    """Same outputs, counters, history and call counts as running the job straight through."""
    params = {"values": values}
    straight_flow = build_job_flow(stages)
    straight = straight_flow.execute("src", params)
    assert straight.status is JobStatus.COMPLETED
    deltas = [b - a for a, b in zip([0, *pause_after], pause_after, strict=False)]
    resumed, collected = run_with_pauses(
        build_job_flow(stages), params, [d for d in deltas if d > 0], text
    )
    assert collected == outputs(straight_flow)
    assert summary(resumed) == summary(straight)
