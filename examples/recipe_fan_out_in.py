"""Recipe: fan-out and fan-in, with a fixed set of branches and with N parts.

Fixed branches: one text goes to three different analyses, and a ``"join"``
slot waits for all three::

    text -> words ---\\
         -> lines ----> report (join)
         -> longest -/

N parts (map-reduce): a text is cut into chunks, each chunk is counted on
its own (4 at a time on threads), and an ``"append"`` slot gathers the
counts until every chunk has reported::

    chunks -> count (x N, 4 at once) -> gather (append) -> total

Run it with ``python examples/recipe_fan_out_in.py``.
``docs/cookbook/fan_out_in.rst`` explains it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flowforge import Flow, Routine

TEXT = """\
the quick brown fox
jumps over the lazy dog
the dog sleeps
a fox runs past the dog
"""


# [branches]
class Text(Routine):
    """Entry: sends the text to every analysis connected to ``text``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.start)
        self.define_event("text", ["text"])

    def start(self, text: str) -> None:
        self.emit("text", text=text)


class Words(Routine):
    """Counts the words."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.words)
        self.define_event("result", ["words"])

    def words(self, text: str) -> None:
        self.emit("result", words=len(text.split()))


class Lines(Routine):
    """Counts the lines."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.lines)
        self.define_event("result", ["lines"])

    def lines(self, text: str) -> None:
        self.emit("result", lines=len(text.splitlines()))


class Longest(Routine):
    """Finds the longest word."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.longest)
        self.define_event("result", ["longest"])

    def longest(self, text: str) -> None:
        self.emit("result", longest=max(text.split(), key=len))


class Report(Routine):
    """Runs once all the analyses connected to it have delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.report, merge_strategy="join")

    def report(self, words: int, lines: int, longest: str) -> None:
        print(f"report: {words} words on {lines} lines; longest: {longest!r}")


# [/branches]


# [branches-flow]
def branches_flow() -> Flow:
    flow = Flow(flow_id="analyses")
    flow.add_routine(Text(), "text")
    flow.add_routine(Report(), "report")
    for rid, analysis in (("words", Words()), ("lines", Lines()), ("longest", Longest())):
        flow.add_routine(analysis, rid)
        flow.connect("text", "text", rid, "input")  # fan-out
        flow.connect(rid, "result", "report", "input")  # fan-in: the join waits for all three
    return flow


# [/branches-flow]


# [parts]
class Chunks(Routine):
    """Entry: cuts the text into chunks of ``size`` lines; each says how many there are."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.cut)
        self.define_event("chunk", ["index", "of", "lines"])

    def cut(self, text: str, size: int) -> None:
        lines = text.splitlines()
        chunks = [lines[i : i + size] for i in range(0, len(lines), size)]
        for index, chunk in enumerate(chunks):
            self.emit("chunk", index=index, of=len(chunks), lines=chunk)


class Count(Routine):
    """Counts the words of one chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.count)
        self.define_event("counted", ["index", "of", "counts"])

    def count(self, index: int, of: int, lines: list[str]) -> None:
        counts = Counter(word for line in lines for word in line.split())
        self.emit("counted", index=index, of=of, counts=dict(counts))


class Gather(Routine):
    """Gathers the chunks' counts; when all ``of`` have arrived, emits the total."""

    def __init__(self) -> None:
        super().__init__()
        # "append": each parameter arrives as the list of every value so far.
        self.define_slot("input", handler=self.gather, merge_strategy="append")
        self.define_event("total", ["counts"])

    def gather(self, index: list[int], of: list[int], counts: list[dict[str, int]]) -> None:
        if len(index) < of[0]:
            return  # more chunks to come
        total: Counter[str] = Counter()
        for part in counts:
            total.update(part)
        self.emit("total", counts=dict(total.most_common(3)))


# [/parts]


# [parts-flow]
def parts_flow() -> Flow:
    flow = Flow(flow_id="word-count", executor="thread", max_workers=4)
    flow.add_routine(Chunks(), "chunks")
    flow.add_routine(Count(), "count")
    flow.add_routine(Gather(), "gather")
    flow.connect("chunks", "chunk", "count", "input")  # fan-out: one message per chunk
    flow.connect("count", "counted", "gather", "input")  # fan-in: every chunk's counts
    flow.get_routine("count").max_concurrency = 4
    return flow


# [/parts-flow]


def main() -> None:
    # [run]
    job = branches_flow().execute("text", {"text": TEXT})
    print("branches:", job.status)

    with parts_flow() as flow:
        job = flow.execute("chunks", {"text": TEXT, "size": 1})
    (total,) = job.get_execution_history("gather")
    print("parts:", job.status, "- chunks counted:", job.get_routine_state("count")["activations"])
    print("top words:", total.data["counts"])
    # [/run]
    assert_same_as_one_pass(total.data["counts"])


def assert_same_as_one_pass(counts: dict[str, Any]) -> None:
    """The gathered counts equal counting the whole text at once."""
    assert counts == dict(Counter(TEXT.split()).most_common(3)), counts


if __name__ == "__main__":
    main()
