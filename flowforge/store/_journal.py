"""The journal of one running job: its open group, and what is stored of it.

The scheduler reports each step it commits in memory. The store collects
steps into an open *group* (:class:`OpenJob`) and commits the group as one
:class:`~flowforge.store._records.Batch`. Building the batch is where the
work is, so reporting a step costs almost nothing:

- messages produced and consumed within the group cancel out and are never
  written; the others become one new segment, or are marked consumed in the
  segment that holds them (found by ``seq``: segments are kept in ``seq``
  order, since ``seq`` numbers only grow);
- only the routine and slot states the group touched are written;
- only the tail entries made since the last commit are written, and entries
  retention let go are dropped from storage a few hundred at a time.

Nothing here changes until the backend has applied the batch
(:meth:`OpenJob.committed`), so a failed commit can simply be retried.
"""

from __future__ import annotations

import bisect

from ..job_state import JobState, Message
from . import _records
from ._records import Batch, Segment

#: Stored tail entries beyond retention are dropped this many at a time, at least.
TRIM_STEP = 256


class OpenJob:
    """A job running against a store."""

    __slots__ = (
        "broken",
        "consumed",
        "header",
        "job",
        "made",
        "opened",
        "routines",
        "segments",
        "slots",
        "starts",
        "steps",
        "trimmed",
        "update",
        "written",
    )

    def __init__(self, job: JobState) -> None:
        self.job = job
        #: The group: messages consumed and produced, states touched, steps.
        self.consumed: list[Message] = []
        self.made: list[Message] = []
        self.routines: set[str] = set()
        self.slots: set[str] = set()
        self.steps = 0
        self.opened = 0.0
        #: Per tail kind, how many entries had been made at the last commit.
        self.written: dict[str, int] = {}
        #: Per tail kind, up to where stored entries were last dropped.
        self.trimmed: dict[str, int] = {}
        #: The stored message segments, in ``seq`` order, and their first seqs.
        self.segments: list[Segment] = []
        self.starts: list[int] = []
        self.header = _records.Header()
        #: What the batch being committed changes in ``segments``.
        self.update: tuple[
            dict[Segment, list[int]], dict[Segment, list[list[int]]], list[Segment]
        ] = ({}, {}, [])
        #: Set when a group could not be committed; the job's last commit stays as it is,
        #: and only its final status is written over it (:meth:`final`).
        self.broken = False

    def stored(self, batch: Batch, segments: list[Segment]) -> None:
        """The job was just written whole by ``batch``: start afresh."""
        self.header.committed = batch.header
        self.segments = segments
        self.starts = [seg.first for seg in segments]
        self.trimmed = dict(batch.keep_from)
        self._reset()

    def batch(self, now: float) -> Batch:
        """The open group as one batch; :meth:`committed` once it is stored."""
        job = self.job
        made = {m.seq: m for m in self.made}
        gone = [m.seq for m in self.consumed if made.pop(m.seq, None) is None]
        batch = _records.new_batch(job, now, self.header.text(job))
        consumed = self._find(gone)
        runs = self._consume(batch, consumed)
        parts = _records.segments(job.job_id, list(made.values()))
        batch.segments = [row for _, row in parts]
        batch.routines = [_records.state_row(job, rid) for rid in self.routines]
        batch.slots = [_records.slot_row(job, key) for key in self.slots]
        batch.tasks = _records.task_rows(job, self.routines)
        _records.add_tails(batch, job, self.written)
        # Entries retention let go are filtered out when loading, so dropping
        # them can wait until there are enough to be worth a statement.
        batch.keep_from = {
            kind: keep
            for kind, keep in batch.keep_from.items()
            if keep - self.trimmed.get(kind, 0) >= TRIM_STEP
        }
        self.update = (consumed, runs, [seg for seg, _ in parts])
        return batch

    def final(self, now: float) -> Batch:
        """A batch that leaves the last commit as it is but for how the job ended."""
        job = self.job
        return _records.new_batch(job, now, self.header.final(job))

    def _find(self, seqs: list[int]) -> dict[Segment, list[int]]:
        """The stored segments holding ``seqs``, with the seqs each holds."""
        found: dict[Segment, list[int]] = {}
        starts, segments = self.starts, self.segments
        held: list[int] = []
        seg = None
        for seq in seqs:
            if seg is None or seq not in seg.alive:
                i = bisect.bisect_right(starts, seq) - 1
                # A message the journal never saw (none so far) is in no segment.
                if i < 0 or seq not in segments[i].alive:
                    continue
                seg = segments[i]
                held = found.setdefault(seg, [])
            held.append(seq)
        return found

    def _consume(
        self, batch: Batch, consumed: dict[Segment, list[int]]
    ) -> dict[Segment, list[list[int]]]:
        runs: dict[Segment, list[list[int]]] = {}
        for seg, seqs in consumed.items():
            alive = len(seg.alive) - len(seqs)
            if alive == 0:
                batch.dropped.append(seg.first)
                continue
            runs[seg] = [run[:] for run in seg.runs]
            for seq in seqs:
                _records.consume(runs[seg], seq)
            batch.consumed.append((seg.first, alive, _records.dumps(runs[seg], "runs")))
        return runs

    def committed(self, batch: Batch) -> None:
        """``batch`` (from :meth:`batch`) is stored: track it, open a new group."""
        consumed, runs, new = self.update
        self.header.committed = batch.header
        for seg, seqs in consumed.items():
            seg.alive.difference_update(seqs)
            if seg.alive:
                seg.runs = runs[seg]
            else:
                i = bisect.bisect_left(self.starts, seg.first)
                del self.starts[i], self.segments[i]
        self.segments += new
        self.starts += [seg.first for seg in new]
        self.trimmed.update(batch.keep_from)
        self.update = ({}, {}, [])
        self._reset()

    def _reset(self) -> None:
        self.consumed = []
        self.made = []
        self.routines = set()
        self.slots = set()
        self.steps = 0
        self.written = _records.tail_totals(self.job)
