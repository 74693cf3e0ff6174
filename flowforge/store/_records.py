"""What a store writes and reads: batches of changes, and job records.

A :class:`~flowforge.store.Store` turns what the scheduler journals into one
:class:`Batch` per commit, and a backend applies each batch atomically.
Loading reads a :class:`JobRecord` back and :func:`assemble` rebuilds the
:class:`~flowforge.JobState`.

A job is kept in the format of :meth:`JobState.serialize
<flowforge.JobState.serialize>` (JSON), cut into pieces that change at
different rates, so that a commit costs what changed rather than the size
of the job:

- the *header*: :meth:`JobState.header_data <flowforge.JobState.header_data>`,
  the job without its bulky parts (status, counters, ``next_seq``, error,
  the tracker's per-routine figures and elapsed time);
- the *entry*, written only when the job starts or stops (it may be large);
- the pending messages, in *segments*: the messages a commit adds are one
  segment (at most :data:`SEGMENT_MAX` messages), and a segment records which
  of its messages were consumed since, as runs of ``seq`` numbers. A segment
  whose messages are all consumed is deleted;
- one row per routine (:meth:`JobState.routine_data
  <flowforge.JobState.routine_data>`), per slot state and per task run
  (:meth:`JobState.task_data <flowforge.JobState.task_data>`: a task's
  status and result);
- the *tails* (history, errors, skipped work, event flow), as segments of
  consecutive entries numbered from the job's first entry; a commit adds
  what is new and drops what retention let go. Timestamps of history and
  event-flow entries are kept as packed doubles beside the JSON, which is
  exact and much cheaper than writing floats as text.

Everything is read through the public readings of
:class:`~flowforge.JobState` and :class:`~flowforge.ExecutionTracker`
(``header_data``, ``routine_data``, ``task_data``, ``history_since``, ``errors_since``,
``skipped_since``, ``event_flow_since``), and a job is rebuilt with
:meth:`JobState.from_parts <flowforge.JobState.from_parts>`, so the stored
format follows the model's and old jobs load as old documents do.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from typing import Any

import attrs

from ..errors import SerializationError
from ..job_state import JobState, Message
from ..serialization import converter, describe_value, unencodable_path

#: The tails of a job, in the order they are stored.
TAIL_KINDS = ("history", "errors", "skipped", "event_flow")
#: The most messages in one stored segment.
SEGMENT_MAX = 1000

#: ``(kind, first, count, entries, stamps)``: entries ``first .. first + count - 1``.
TailRow = tuple[str, int, int, str, bytes | None]
#: ``(first, alive, entries)``: a new segment of messages.
SegmentRow = tuple[int, int, str]
#: ``(first, alive, consumed)``: which messages of a stored segment were consumed.
ConsumedRow = tuple[int, int, str]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: ``value`` as compact JSON (raises TypeError or ValueError when it is not).
encode = _encode


def bad_place(data: dict[str, Any]) -> str:
    """Where in ``data`` the value JSON cannot hold is, in words."""
    path = unencodable_path(data)
    if not path:
        return "its data"
    keys = "".join(f"[{k!r}]" for k in path)
    return f"{keys} holds {describe_value(data, path)}"


@attrs.define
class Batch:
    """One commit: everything that changed in one job since the previous one.

    With ``replace`` the batch holds the whole job, and a backend drops
    whatever it had for the job before writing it.
    """

    job_id: str
    flow_id: str | None
    status: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    reason: str | None
    header: str
    replace: bool = False
    entry: str | None = None
    segments: list[SegmentRow] = attrs.field(factory=list)
    consumed: list[ConsumedRow] = attrs.field(factory=list)
    #: Segments whose messages were all consumed, by ``first``.
    dropped: list[int] = attrs.field(factory=list)
    routines: list[tuple[str, str]] = attrs.field(factory=list)
    slots: list[tuple[str, str | None]] = attrs.field(factory=list)
    tails: list[TailRow] = attrs.field(factory=list)
    #: Per tail kind, the number of the oldest entry still kept.
    keep_from: dict[str, int] = attrs.field(factory=dict)
    #: ``(flow_id, definition)`` to save with the job, if any.
    flow: tuple[str, str] | None = None
    #: ``(name, run)`` of each task run the batch changed.
    tasks: list[tuple[str, str]] = attrs.field(factory=list)
    #: The runner whose lease covers this commit (``None``: no lease is checked or kept).
    owner: str | None = None
    #: Take the lease (``begin``, ``save``): allowed when it is free, expired or ``owner``'s.
    #: Without it the commit needs ``owner`` to hold the lease already.
    acquire: bool = False
    #: The lease's new expiry; ``None`` releases the lease (and clears control requests).
    expires_at: float | None = None


@attrs.frozen
class JobRecord:
    """A stored job as a backend reads it back."""

    header: str
    entry: str | None
    #: ``(entries, consumed)`` of every stored segment.
    segments: list[tuple[str, str]]
    routines: list[tuple[str, str]]
    slots: list[tuple[str, str]]
    #: Tail segments ordered by kind, then by ``first``.
    tails: list[TailRow]
    #: ``(name, run)`` of each task.
    tasks: list[tuple[str, str]] = attrs.field(factory=list)


@attrs.frozen
class BriefRecord:
    """A stored job without its bulk, as a backend reads it for showing the job.

    What :class:`JobRecord` holds but the pending messages (only their
    count), the slot states and the tails other than the errors.
    """

    header: str
    entry: str | None
    #: How many messages wait to be delivered.
    pending: int
    routines: list[tuple[str, str]]
    #: The errors tail's segments ``(first, count, entries)``, ordered by ``first``.
    errors: list[tuple[int, int, str]]
    #: ``(name, run)`` of each task.
    tasks: list[tuple[str, str]] = attrs.field(factory=list)


class Segment:
    """A stored segment of messages, as a running job's store tracks it."""

    __slots__ = ("alive", "first", "runs")

    def __init__(self, first: int, seqs: Iterable[int]) -> None:
        self.first = first
        self.alive = set(seqs)
        #: Consumed ``seq`` numbers as ``[low, high]`` runs, in the order consumed.
        self.runs: list[list[int]] = []


def dumps(value: Any, what: str) -> str:
    """``value`` as compact JSON; a :class:`SerializationError` naming ``what`` if it is not."""
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"Cannot store {what}: {exc}. A store keeps message data, slot state, stats and "
            "config as JSON: use dict, list, str, int, float, bool and None."
        ) from exc


# -- writing -------------------------------------------------------------------


class Header:
    """A running job's header; the last one committed is kept for :meth:`final`."""

    __slots__ = ("committed",)

    def __init__(self) -> None:
        self.committed: str | None = None

    def text(self, job: JobState) -> str:
        """The header of ``job`` now, as JSON."""
        return dumps(job.header_data(), f"job {job.job_id}")

    def final(self, job: JobState) -> str:
        """The last committed header with ``job``'s final status, reason and error.

        For a job whose latest steps could not be stored: what is stored stays
        the state after its last commit, and only says how the job ended.
        """
        data = job.header_data() if self.committed is None else json.loads(self.committed)
        data.update(
            status=str(job.status),
            reason=job.reason,
            finished_at=job.finished_at,
            error=converter.unstructure(job.error),
        )
        return dumps(data, f"job {job.job_id}")


def new_batch(job: JobState, now: float, header: str, *, replace: bool = False) -> Batch:
    """A batch carrying the job's ``header``; the caller adds what changed."""
    return Batch(
        job.job_id,
        job.flow_id,
        str(job.status),
        job.created_at,
        now,
        job.started_at,
        job.finished_at,
        job.reason,
        header,
        replace,
    )


def segments(
    job_id: str, messages: Sequence[Message], positions: Sequence[int] | None = None
) -> list[tuple[Segment, SegmentRow]]:
    """``messages``, in ``seq`` order, cut into stored segments.

    Each message is positioned by its ``seq`` unless ``positions`` are given.
    """
    out = []
    for start in range(0, len(messages), SEGMENT_MAX):
        chunk = messages[start : start + SEGMENT_MAX]
        if positions is None:
            rows = [(m.seq, m.seq, m.routine_id, m.slot, m.source, m.data) for m in chunk]
        else:
            rows = [
                (pos, m.seq, m.routine_id, m.slot, m.source, m.data)
                for pos, m in zip(positions[start : start + SEGMENT_MAX], chunk, strict=True)
            ]
        try:
            text = _encode(rows)
        except (TypeError, ValueError, RecursionError):
            for m in chunk:
                dumps(m.data, f"the message {m.seq} of job {job_id} for '{m.routine_id}.{m.slot}'")
            raise
        first = chunk[0].seq
        out.append((Segment(first, [row[1] for row in rows]), (first, len(chunk), text)))
    return out


def pending_segments(job: JobState) -> list[tuple[Segment, SegmentRow]]:
    """The whole pending queue as segments, keeping its exact order.

    A queue in ``seq`` order (the usual case) is positioned by ``seq``;
    otherwise positions count up to -1, so messages added later (positioned
    by their ``seq``, which is never negative) still come after.
    """
    pending = list(job.pending)
    if all(a.seq < b.seq for a, b in pairwise(pending)):
        return segments(job.job_id, pending)
    items = sorted(zip(range(-len(pending), 0), pending, strict=True), key=lambda i: i[1].seq)
    return segments(job.job_id, [m for _, m in items], [pos for pos, _ in items])


def consume(runs: list[list[int]], seq: int) -> None:
    """Add ``seq`` to consumed ``runs``, extending the last run when it follows on."""
    if runs and runs[-1][1] + 1 == seq:
        runs[-1][1] = seq
    else:
        runs.append([seq, seq])


def state_row(job: JobState, routine_id: str) -> tuple[str, str]:
    """The routine's run and state as a row."""
    return routine_id, dumps(
        job.routine_data(routine_id),
        f"the state (stats) of routine '{routine_id}' in job {job.job_id}",
    )


def task_rows(job: JobState, names: Iterable[str]) -> list[tuple[str, str]]:
    """The runs of the tasks among ``names`` (results included), as rows."""
    runs = job.task_runs
    return [
        (name, dumps(job.task_data(name), f"the result of task '{name}'"))
        for name in names
        if name in runs
    ]


def slot_row(job: JobState, key: str) -> tuple[str, str | None]:
    """The slot's merge state as a row; ``None`` when the slot has none any more."""
    state = job.slot_states.get(key)
    if state is None:
        return key, None
    return key, dumps(state, f"the merge state of slot '{key}' in job {job.job_id}")


def _history(entries: list[Any]) -> tuple[list[Any], bytes | None]:
    return [e[:3] for e in entries], _pack([e[3] for e in entries])


def _event_flow(entries: list[Any]) -> tuple[list[Any], bytes | None]:
    return [e[1:] for e in entries], _pack([e[0] for e in entries])


def _plain(entries: list[Any]) -> tuple[list[Any], bytes | None]:
    return [converter.unstructure(e) for e in entries], None


def _pack(stamps: list[float]) -> bytes:
    return struct.pack(f"<{len(stamps)}d", *stamps)


#: How each tail's entries are stored: JSON rows, and packed timestamps.
_SPLITTERS: dict[str, Callable[[list[Any]], tuple[list[Any], bytes | None]]] = {
    "history": _history,
    "errors": _plain,
    "skipped": _plain,
    "event_flow": _event_flow,
}


def tail_totals(job: JobState) -> dict[str, int]:
    """How many entries each tail has had, over the job's life."""
    return {
        "history": job.history_total,
        "errors": job.errors_total,
        "skipped": job.skipped_total,
        "event_flow": job.tracker.event_flow_total,
    }


def _since(job: JobState, kind: str, total: int) -> list[Any]:
    if kind == "history":
        return job.history_since(total)
    if kind == "errors":
        return job.errors_since(total)
    if kind == "skipped":
        return job.skipped_since(total)
    return job.tracker.event_flow_since(total)


def add_tails(batch: Batch, job: JobState, written: dict[str, int] | None) -> None:
    """Add the tail entries made since ``written`` (every kept entry if ``None``)."""
    for kind, total in tail_totals(job).items():
        fresh = _since(job, kind, written[kind] if written is not None else 0)
        if fresh:
            rows, stamps = _SPLITTERS[kind](fresh)
            text = dumps(rows, f"the {kind} of job {job.job_id}")
            batch.tails.append((kind, total - len(fresh), len(fresh), text, stamps))
        kept = job.tracker.retention if kind == "event_flow" else job.retention
        batch.keep_from[kind] = total - kept


def whole(
    job: JobState, now: float, flow: tuple[str, str] | None = None
) -> tuple[Batch, list[Segment]]:
    """A batch that replaces everything stored for the job, and its segments."""
    batch = new_batch(job, now, dumps(job.header_data(), f"job {job.job_id}"), replace=True)
    batch.entry = None if job.entry is None else dumps(job.entry, f"the entry of job {job.job_id}")
    parts = pending_segments(job)
    batch.segments = [row for _, row in parts]
    batch.routines = [state_row(job, rid) for rid in job.routine_ids()]
    batch.slots = [slot_row(job, key) for key in job.slot_states]
    batch.tasks = task_rows(job, job.task_runs)
    add_tails(batch, job, None)
    batch.flow = flow
    return batch, [segment for segment, _ in parts]


# -- reading -------------------------------------------------------------------


def assemble(record: JobRecord) -> JobState:
    """Rebuild the JobState a record was written from."""
    loads = json.loads
    tails: dict[str, list[Any]] = {kind: [] for kind in TAIL_KINDS}
    for kind, _first, count, entries, stamps in record.tails:
        rows = loads(entries)
        if kind == "history":
            rows = [[*row, ts] for row, ts in zip(rows, _unpack(stamps, count), strict=True)]
        elif kind == "event_flow":
            rows = [[ts, *row] for row, ts in zip(rows, _unpack(stamps, count), strict=True)]
        tails[kind].extend(rows)
    return JobState.from_parts(
        loads(record.header),
        entry=None if record.entry is None else loads(record.entry),
        pending=_pending(record.segments),
        routines={rid: loads(state) for rid, state in record.routines},
        slot_states={key: loads(state) for key, state in record.slots},
        history=tails["history"],
        errors=tails["errors"],
        skipped=tails["skipped"],
        event_flow=tails["event_flow"],
        task_runs={name: loads(run) for name, run in record.tasks},
    )


def brief(record: JobRecord) -> BriefRecord:
    """The :class:`BriefRecord` part of a whole record."""
    return BriefRecord(
        record.header,
        record.entry,
        len(_pending(record.segments)),
        record.routines,
        [
            (first, count, entries)
            for kind, first, count, entries, _ in record.tails
            if kind == "errors"
        ],
        record.tasks,
    )


def assemble_brief(record: BriefRecord) -> JobState:
    """The JobState of a brief record: no pending messages, history, skipped work,
    event flow or slot states (their totals are kept)."""
    loads = json.loads
    return JobState.from_parts(
        loads(record.header),
        entry=None if record.entry is None else loads(record.entry),
        pending=[],
        routines={rid: loads(state) for rid, state in record.routines},
        slot_states={},
        history=[],
        errors=[row for _, _, entries in record.errors for row in loads(entries)],
        skipped=[],
        event_flow=[],
        task_runs={name: loads(run) for name, run in record.tasks},
    )


def _pending(stored: list[tuple[str, str]]) -> list[dict[str, Any]]:
    rows: list[list[Any]] = []
    for entries, consumed in stored:
        gone = {seq for low, high in json.loads(consumed) for seq in range(low, high + 1)}
        rows.extend(row for row in json.loads(entries) if row[1] not in gone)
    rows.sort(key=lambda row: (row[0], row[1]))
    return [
        {"seq": seq, "routine_id": rid, "slot": slot, "data": data, "source": source}
        for _pos, seq, rid, slot, source, data in rows
    ]


def _unpack(stamps: bytes | None, count: int) -> tuple[float, ...]:
    if stamps is None or len(stamps) != 8 * count:
        raise ValueError(f"expected {count} timestamps, found {len(stamps or b'') // 8}")
    return struct.unpack(f"<{count}d", stamps)
