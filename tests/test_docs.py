"""The documentation's YAML fragments are valid parts of a flow file.

Python samples in the docs are doctests or included examples, which the docs
build and tests/test_examples.py run; flow-file fragments are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flowforge._flowfile import FlowDoc
from flowforge.serialization import problems_of

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^\.\. code-block:: yaml\n\n((?:   .*\n|\n)+)", re.MULTILINE)


def yaml_fragments() -> list[tuple[str, str]]:
    """``(place, text)`` of every YAML code block in the docs."""
    found = []
    for page in sorted(DOCS.rglob("*.rst")):
        if "_build" in page.parts:
            continue
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            text = "\n".join(line[3:] for line in match.group(1).splitlines())
            line = page.read_text(encoding="utf-8")[: match.start()].count("\n") + 1
            found.append((f"{page.relative_to(DOCS)}:{line}", text))
    return found


FRAGMENTS = yaml_fragments()


def test_the_docs_have_yaml_fragments() -> None:
    """The pattern finds the fragments (so the next test checks something)."""
    assert len(FRAGMENTS) >= 3


@pytest.mark.parametrize(("place", "text"), FRAGMENTS, ids=[p for p, _ in FRAGMENTS])
def test_yaml_fragment_is_a_valid_part_of_a_flow_file(place: str, text: str) -> None:
    """Each fragment parses, and every section in it has the flow-file format."""
    data = yaml.safe_load(text)
    assert isinstance(data, dict), place
    _, problems = problems_of({"routines": {}, **data}, FlowDoc, "flow")
    assert problems == [], place
