"""Stores record where a saved flow's routine classes came from (its ``FlowOrigin``)."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowforge import Flow
from flowforge.store import FlowOrigin, MemoryStore, SQLiteStore
from flowforge.testing import Collect, Source

LOCAL_ROUTINE = '''\
from flowforge.testing import Collect


class LocalSink(Collect):
    """A sink importable only from the directory it was written to."""
'''


@pytest.fixture
def local_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """A flow whose sink class comes from a module in ``tmp_path/mods``."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "origin_local_sink.py").write_text(LOCAL_ROUTINE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(mods))
    import origin_local_sink  # type: ignore[import-not-found]

    flow = Flow(flow_id="local")
    flow.add_routine(Source(), "source")
    flow.add_routine(origin_local_sink.LocalSink(), "sink")
    flow.connect("source", "out", "sink", "in")
    yield flow
    sys.modules.pop("origin_local_sink", None)


def test_a_saved_flow_records_the_directories_and_modules_of_its_routines(
    local_flow: Flow, tmp_path: Path
) -> None:
    """save_flow keeps the sys.path directory of each routine module, and the modules."""
    store = MemoryStore()
    store.save_flow(local_flow)
    origin = store.flow_origin("local")
    assert isinstance(origin, FlowOrigin)
    assert str((tmp_path / "mods").resolve()) in origin.paths
    assert origin.modules == ("flowforge.testing", "origin_local_sink")


def test_a_job_start_records_the_origin(local_flow: Flow, tmp_path: Path) -> None:
    """A job run against a store saves its flow with the origin."""
    with SQLiteStore(tmp_path / "jobs.db") as store:
        local_flow.execute("source", {"values": [1]}, store=store)
        origin = store.flow_origin("local")
    assert origin is not None and "origin_local_sink" in origin.modules


def test_the_origin_is_not_part_of_the_loaded_flow(local_flow: Flow) -> None:
    """load_flow rebuilds the flow as saved; the origin is kept beside it only."""
    store = MemoryStore()
    store.save_flow(local_flow)
    loaded = store.load_flow("local", allowed_modules=["origin_local_sink"])
    assert loaded.serialize() == local_flow.serialize()


def test_a_definition_without_origin_still_loads(tmp_path: Path) -> None:
    """Stores written before origins were recorded: flow_origin is None, load_flow works."""
    flow = Flow(flow_id="plain")
    flow.add_routine(Source(), "source")
    flow.add_routine(Collect(), "sink")
    flow.connect("source", "out", "sink", "in")
    path = tmp_path / "old.db"
    with SQLiteStore(path) as store:
        store.save_flow(flow)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE flows SET definition = ?", (json.dumps(flow.serialize()),))
    conn.close()
    with SQLiteStore(path) as store:
        assert store.flow_origin("plain") is None
        assert store.load_flow("plain").routines.keys() == {"source", "sink"}
