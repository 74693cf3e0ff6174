"""Saving and loading flows: JSON and YAML files, the allow-list, bad files."""

from __future__ import annotations

import json
import pickle
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Countdown

from flowforge import (
    Connection,
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    Problem,
    Routine,
    SerializationError,
    ThreadExecutor,
    allow_modules,
)
from flowforge import serialization as ser
from flowforge.testing import Collect, Double, Flaky, Join, Relay, Source


def rich_flow() -> Flow:
    """A flow using every saved feature."""
    flow = Flow(
        flow_id="rich",
        executor="thread",
        max_workers=3,
        error_handler=ErrorHandler(ErrorStrategy.CONTINUE, max_retries=1),
        retention=50,
        max_activations=500,
    )
    source = Source()
    source.set_config(values=[1, 2, 3])
    flow.add_routine(source, "src")
    double = Double()
    double._stats["calls"] = 7
    double.max_concurrency = 4
    double.timeout = 2.5
    flow.add_routine(double, "double")
    flaky = Flaky()
    flaky.set_config(fail_times=2, error="KeyError")
    flaky.set_error_handler(
        ErrorHandler(
            ErrorStrategy.RETRY,
            max_retries=5,
            retry_delay=0.1,
            retry_backoff=1.5,
            retryable_exceptions=(KeyError, ConnectionError),
        )
    )
    flaky.max_activations = 9
    flow.add_routine(flaky, "flaky")
    flow.add_routine(Join(), "join")
    flow.add_routine(Collect(), "sink")
    flow.connect("src", "out", "double", "in")
    flow.connect("src", "out", "flaky", "in", {"value": "v"})
    flow.connect("double", "out", "join", "in")
    flow.connect("flaky", "out", "join", "in")
    flow.connect("join", "out", "sink", "in")
    flow.entry = {"routine_id": "src", "slot": "in", "params": {"values": [4]}}
    return flow


def describe(flow: Flow) -> dict[str, Any]:
    """Everything a saved flow must bring back, as comparable data."""
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


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_and_load_bring_everything_back(tmp_path: Path, suffix: str) -> None:
    """Routines, ids, config, stats, connections, mappings, handlers, policies come back."""
    flow = rich_flow()
    path = tmp_path / f"flow{suffix}"
    flow.save(path)
    loaded = Flow.load(path)
    assert describe(loaded) == describe(flow)


def test_saved_json_is_plain_json_with_format_and_version(tmp_path: Path) -> None:
    """A saved .json file is JSON naming its format and version first."""
    path = tmp_path / "flow.json"
    rich_flow().save(path)
    data = json.loads(path.read_text())
    assert list(data)[:2] == ["format", "version"]
    assert (data["format"], data["version"]) == ("flowforge/flow", 1)
    assert data["routines"]["src"]["class"] == "flowforge.testing:Source"


def test_saved_yaml_loads_with_safe_load(tmp_path: Path) -> None:
    """A saved .yaml file is plain YAML that safe_load reads."""
    path = tmp_path / "flow.yaml"
    rich_flow().save(path)
    assert yaml.safe_load(path.read_text()) == rich_flow().serialize()


def test_loaded_flow_runs_like_the_original(tmp_path: Path) -> None:
    """A loaded flow runs the same job to the same result."""

    def build() -> Flow:
        flow = Flow(flow_id="run")
        flow.add_routine(Source(), "src")
        flow.add_routine(Double(), "double")
        flow.add_routine(Relay(), "relay")
        flow.add_routine(Join(), "join")
        flow.add_routine(Collect(), "sink")
        flow.connect("src", "out", "double", "in")
        flow.connect("src", "out", "relay", "in", {"value": "original"})
        flow.connect("double", "out", "join", "in")
        flow.connect("relay", "out", "join", "in")
        flow.connect("join", "out", "sink", "in")
        return flow

    original = build()
    original.execute("src", {"values": [1, 2]})
    path = tmp_path / "flow.json"
    build().save(path)
    loaded = Flow.load(path)
    job = loaded.execute("src", {"values": [1, 2]})
    assert job.status == "completed"
    assert loaded.get_routine("sink").items == original.get_routine("sink").items  # type: ignore[union-attr]


def test_serialize_and_from_dict_round_trip() -> None:
    """Flow.from_dict(flow.serialize()) rebuilds the flow."""
    flow = rich_flow()
    assert describe(Flow.from_dict(flow.serialize())) == describe(flow)


def test_deserialize_fills_an_empty_flow() -> None:
    """Flow().deserialize(data) fills the flow and returns it."""
    data = rich_flow().serialize()
    empty = Flow()
    assert empty.deserialize(data) is empty
    assert describe(empty) == describe(rich_flow())


def test_deserialize_refuses_a_flow_with_routines() -> None:
    """deserialize() into a flow that has routines raises and points to from_dict."""
    flow = Flow()
    flow.add_routine(Relay(), "r")
    with pytest.raises(DefinitionError, match="from_dict"):
        flow.deserialize(rich_flow().serialize())


def test_loaded_flow_uses_default_entry() -> None:
    """A loaded flow with an entry runs with execute() and no arguments."""
    flow = Flow.from_dict(rich_flow().serialize())
    job = flow.execute()
    assert job.status == "completed"
    assert job.entry == {"routine_id": "src", "slot": "in", "params": {"values": [4]}}


def test_connections_can_be_written_by_hand_as_strings(tmp_path: Path) -> None:
    """A hand-written YAML file with 'a.out -> b.in' connections loads and runs."""
    path = tmp_path / "hand.yaml"
    path.write_text(
        "flow_id: hand\n"
        "routines:\n"
        "  src: {class: 'flowforge.testing:Source'}\n"
        "  sink: {class: 'flowforge.testing:Collect'}\n"
        "connections:\n"
        "  - src.out -> sink.in\n"
        "  - {from: src.out, to: sink.in, mapping: {value: renamed}}\n"
    )
    flow = Flow.load(path)
    flow.execute("src", {"values": [1]})
    assert flow.get_routine("sink").items == [{"value": 1}, {"renamed": 1}]  # type: ignore[union-attr]


def test_thread_executor_settings_are_saved() -> None:
    """executor kind and max_workers come back."""
    loaded = Flow.from_dict(rich_flow().serialize())
    assert isinstance(loaded.executor, ThreadExecutor)
    assert loaded.executor.max_workers == 3


def test_loop_routine_from_conftest_round_trips() -> None:
    """A routine class that is already imported loads without being allowed."""
    flow = Flow()
    flow.add_routine(Countdown(), "count")
    flow.connect("count", "again", "count", "in")
    loaded = Flow.from_dict(flow.serialize())
    assert type(loaded.get_routine("count")) is Countdown
    assert loaded.execute("count", {"n": 5}).status == "completed"


# -- the allow-list -------------------------------------------------------------------


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A routine module on sys.path that has not been imported; returns its name."""
    name = f"ff_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "from flowforge.testing import Relay\n\n"
        "class Plugged(Relay):\n"
        '    """A routine from a plug-in module."""\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ser, "_allowed_prefixes", set(ser._allowed_prefixes))
    yield name
    sys.modules.pop(name, None)


def plugin_flow(module: str) -> dict[str, Any]:
    """Flow data naming ``module:Plugged``."""
    return {"routines": {"p": {"class": f"{module}:Plugged"}}}


def test_module_not_allowed_is_refused_with_the_fix(plugin: str) -> None:
    """Loading a class from a module that is not allowed names the module and the fix."""
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(plugin_flow(plugin))
    message = str(info.value)
    assert f"'{plugin}'" in message and "allow_modules" in message
    assert "flow.routines.p.class" in message
    assert plugin not in sys.modules


def test_allowed_modules_argument_widens_the_list(plugin: str) -> None:
    """allowed_modules= lets a load import that module."""
    flow = Flow.from_dict(plugin_flow(plugin), allowed_modules=(plugin,))
    assert type(flow.get_routine("p")).__name__ == "Plugged"


def test_allow_modules_widens_the_list_process_wide(plugin: str) -> None:
    """flowforge.allow_modules(prefix) lets every later load import it."""
    allow_modules(plugin)
    assert type(Flow.from_dict(plugin_flow(plugin)).get_routine("p")).__name__ == "Plugged"


def test_allow_modules_refuses_non_names() -> None:
    """allow_modules() takes non-empty strings."""
    with pytest.raises(TypeError):
        allow_modules("")


def test_class_path_naming_a_non_routine_is_refused() -> None:
    """A class path naming something that is not a Routine is refused, not called."""
    with pytest.raises(SerializationError, match="does not name a subclass of Routine"):
        Flow.from_dict({"routines": {"r": {"class": "os:system"}}})


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    """YAML is read with safe_load: python object tags are an error."""
    path = tmp_path / "evil.yaml"
    path.write_text("routines: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SerializationError, match="not valid YAML"):
        Flow.load(path)


# -- bad files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"routines": {"r": {"class": "flowforge.testing:Nope"}}}, "flow.routines.r.class"),
        ({"routines": {"r": {"class": "no-colon"}}}, "flow.routines.r.class"),
        (
            {"routines": {"r": {"class": "flowforge.testing:Relay", "config": 3}}},
            "flow.routines.r.config",
        ),
        (
            {
                "routines": {"r": {"class": "flowforge.testing:Relay"}},
                "connections": ["r.out -> x.in"],
            },
            "flow.connections[0]",
        ),
        (
            {
                "routines": {"r": {"class": "flowforge.testing:Relay"}},
                "connections": ["r.out to r.in"],
            },
            "connections",
        ),
        (
            {
                "routines": {
                    "r": {"class": "flowforge.testing:Relay", "policy": {"max_concurrency": 0}}
                }
            },
            "flow.routines.r.policy",
        ),
        ({"routines": {}, "executor": {"kind": "rocket"}}, "flow.executor.kind"),
        ({"routines": {}, "format": "other"}, "flow.format"),
        ({"routines": {}, "version": 99}, "flow.version"),
        ({"routines": {}, "surprise": True}, "surprise"),
        ({"connections": []}, "routines"),
        ({"routines": {}, "retention": 0}, "flow.retention"),
        (
            {
                "routines": {"r": {"class": "flowforge.testing:Relay"}},
                "connections": [{"from": "r.out", "to": "r.in", "mapping": {"value": 1}}],
            },
            "flow.connections[0]",
        ),
    ],
)
def test_bad_flow_data_says_where(data: dict[str, Any], where: str) -> None:
    """Each kind of bad flow data raises SerializationError naming its place."""
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(data)
    assert re.search(at(where), str(info.value))


def at(path: str) -> str:
    """A regex for ``path`` written ``a.b.c`` or ``a['b'].c`` (either style says where)."""
    first, *rest = path.split(".")
    return re.escape(first) + "".join(
        rf"(\.{re.escape(part)}|\['{re.escape(part)}'\])" for part in rest
    )


def test_every_problem_is_reported_at_once() -> None:
    """Loading reports all problems of a file together."""
    data = {
        "routines": {
            "a": {"class": "flowforge.testing:Nope"},
            "b": {"class": "flowforge.testing:Relay", "policy": {"timeout": -1}},
        },
        "connections": ["b.out -> c.in"],
    }
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(data)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "flow.routines.a.class" in message
    assert "flow.routines.b.policy" in message
    assert "flow.connections[0]" in message


def test_a_failed_deserialize_leaves_the_flow_empty() -> None:
    """Nothing is half-loaded: a flow that fails to deserialize stays empty."""
    flow = Flow(flow_id="target")
    data = {
        "flow_id": "bad",
        "routines": {
            "ok": {"class": "flowforge.testing:Relay"},
            "bad": {"class": "flowforge.testing:Nope"},
        },
    }
    with pytest.raises(SerializationError):
        flow.deserialize(data)
    assert dict(flow.routines) == {}
    assert flow.flow_id == "target"
    flow.deserialize(rich_flow().serialize())
    assert flow.flow_id == "rich"


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("flow.json", "{not json", "not valid JSON"),
        ("flow.yaml", "routines: [unclosed", "not valid YAML"),
        ("flow.txt", "{}", "expected a name ending in .json, .yaml or .yml"),
        ("flow.json", "[1, 2]", "must be a mapping"),
    ],
)
def test_bad_files_raise_serialization_errors(
    tmp_path: Path, name: str, text: str, match: str
) -> None:
    """Unreadable, malformed or unknown-format files raise a clear SerializationError."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SerializationError, match=match):
        Flow.load(path)


def test_missing_file_is_a_serialization_error(tmp_path: Path) -> None:
    """Loading a file that does not exist says it cannot be read."""
    with pytest.raises(SerializationError, match="Cannot read"):
        Flow.load(tmp_path / "missing.json")


def test_unserializable_config_is_refused_on_save(tmp_path: Path) -> None:
    """A config value that is not plain data fails the save, and no file is left."""
    flow = Flow()
    relay = Relay()
    relay.set_config(callback=object())
    flow.add_routine(relay, "r")
    path = tmp_path / "flow.json"
    with pytest.raises(SerializationError, match="plain data"):
        flow.save(path)
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    """Saving over a file replaces it."""
    path = tmp_path / "flow.json"
    rich_flow().save(path)
    small = Flow(flow_id="small")
    small.add_routine(Relay(), "r")
    small.save(path)
    assert Flow.load(path).flow_id == "small"


# -- problems as data -------------------------------------------------------------


def test_problems_are_listed_with_place_message_and_hint() -> None:
    """SerializationError.problems has one Problem per cause, each with where, message, hint."""
    data = {
        "routines": {"r": {"class": "flowforge.testing:Relya"}},
        "retention": 0,
    }
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(data)
    problems = info.value.problems
    assert all(isinstance(p, Problem) and p.severity == "error" for p in problems)
    assert [p.where for p in problems] == ["flow.retention", "flow.routines.r.class"]
    assert problems[1].message == "module 'flowforge.testing' has no class 'Relya'."
    assert problems[1].hint == "Did you mean 'Relay'?"


def test_an_error_made_from_a_message_has_one_problem() -> None:
    """A SerializationError raised with only a message lists it as its one problem."""
    error = SerializationError("Cannot read x.json.", path="x.json")
    assert error.problems == [Problem("error", "x.json", "Cannot read x.json.", "")]


def test_file_level_problems_name_the_file(tmp_path: Path) -> None:
    """A file that is not valid YAML has one problem placed at the file."""
    path = tmp_path / "flow.yaml"
    path.write_text("routines: [unclosed")
    with pytest.raises(SerializationError) as info:
        Flow.load(path)
    assert [p.where for p in info.value.problems] == [str(path)]


# -- typos get the right message ----------------------------------------------------


def test_a_module_that_does_not_exist_is_not_called_not_allowed() -> None:
    """A misspelt module says it does not exist, with no hint to allow it."""
    with pytest.raises(SerializationError) as info:
        Flow.from_dict({"routines": {"r": {"class": "flowforgee.testing:Relay"}}})
    (problem,) = info.value.problems
    assert "module 'flowforgee.testing' does not exist" in problem.message
    assert "allow" not in problem.message + problem.hint
    assert "Check the spelling" in problem.hint


def test_a_missing_class_names_the_module_and_close_names() -> None:
    """A class missing from an allowed module says so, and suggests the near names."""
    with pytest.raises(SerializationError, match="has no class 'Sorce'") as info:
        Flow.from_dict({"routines": {"r": {"class": "flowforge.testing:Sorce"}}})
    assert "found None" not in str(info.value)
    assert info.value.problems[0].hint == "Did you mean 'Source'?"


def test_one_bad_class_is_reported_once_and_other_wires_still_checked() -> None:
    """Connections to a routine whose class is bad add no problem; other wires are checked."""
    data = {
        "routines": {
            "bad": {"class": "flowforge.testing:Nope"},
            "src": {"class": "flowforge.testing:Source"},
            "sink": {"class": "flowforge.testing:Collect"},
        },
        "connections": [
            "src.out -> bad.in",
            "bad.out -> sink.in",
            "src.out -> sink.inbox",
            "src.out -> gone.in",
        ],
    }
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(data)
    assert [(p.where, p.message[:30]) for p in info.value.problems] == [
        ("flow.routines.bad.class", "module 'flowforge.testing' has"),
        ("flow.connections[2]", "Cannot connect 'src' -> 'sink'"),
        ("flow.connections[3]", "unknown routine 'gone' (src.ou"),
    ]


def test_allowed_modules_given_as_one_string_is_one_module(plugin: str) -> None:
    """allowed_modules='name' allows that module, not each of its letters."""
    flow = Flow.from_dict(plugin_flow(plugin), allowed_modules=plugin)
    assert type(flow.get_routine("p")).__name__ == "Plugged"


def test_allowed_modules_of_another_type_is_refused() -> None:
    """allowed_modules must be a name or names."""
    with pytest.raises(TypeError, match="allowed_modules takes a module name"):
        Flow.from_dict({"routines": {}}, allowed_modules=[3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"routines": {"a\n": {"class": "flowforge.testing:Relay"}}}, "flow.routines.a\n"),
        ({"routines": {}, "flow_id": ""}, "flow.flow_id"),
        ({"routines": {}, "executor": {"max_workers": 0}}, "flow.executor.max_workers"),
        ({"routines": {}, "max_activations": 0}, "flow.max_activations"),
        (
            {"routines": {}, "error_handler": {"retry_delay": float("nan")}},
            "flow.error_handler",
        ),
        ({"routines": {}, "error_handler": {"retry_delay": float("inf")}}, "flow.error_handler"),
        ({"routines": {}, "error_handler": {"retry_backoff": 1e300}}, "flow.error_handler"),
        ({"routines": {}, "error_handler": {"max_retries": 1.5}}, "flow.error_handler.max_retries"),
        (
            {
                "routines": {
                    "r": {
                        "class": "flowforge.testing:Relay",
                        "policy": {"error_handler": {"retry_delay": -1}},
                    }
                }
            },
            "flow.routines.r.policy.error_handler",
        ),
        (
            {
                "routines": {
                    "r": {"class": "flowforge.testing:Relay", "policy": {"timeout": float("inf")}}
                }
            },
            "flow.routines.r.policy",
        ),
        (
            {
                "routines": {"s": {"class": "flowforge.testing:Source"}},
                "connections": [{"from": "s.out", "to": "s.in", "mapping": {"valeu": "v"}}],
            },
            "flow.connections[0]",
        ),
        (
            {
                "routines": {"s": {"class": "flowforge.testing:Source"}},
                "connections": ["s.out -> s.in", "s.out -> s.in"],
            },
            "flow.connections[1]",
        ),
        (
            {
                "routines": {"s": {"class": "flowforge.testing:Source"}},
                "entry": {"routine": "s", "slot": "nope"},
            },
            "flow.entry.slot",
        ),
    ],
)
def test_bad_values_are_refused_when_loading(data: dict[str, Any], where: str) -> None:
    """Names, numbers and wires the classes refuse are load problems at their place."""
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(data)
    assert where in [p.where for p in info.value.problems]


# -- files that would hang or crash the loader ------------------------------------------

ALIAS_BOMB = "\n".join(
    [
        "routines:",
        "  r:",
        "    class: flowforge.testing:Relay",
        "    config:",
        "      a0: &a0 [x, x, x, x, x, x, x, x, x]",
        *(f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)),
    ]
)


def test_nested_yaml_aliases_are_refused_naming_the_place(tmp_path: Path) -> None:
    """Nine levels of nine aliases in a config: SerializationError inside that config."""
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert path.stat().st_size < 1000
    with pytest.raises(SerializationError, match="once YAML aliases are expanded") as info:
        Flow.load(path)
    assert info.value.problems[0].where == "flow.routines.r.config.a8"


def test_a_yaml_alias_to_its_own_parent_is_refused(tmp_path: Path) -> None:
    """A self-containing value (&a [*a]) is refused instead of recursing forever."""
    path = tmp_path / "loop.yaml"
    path.write_text(
        "routines:\n  r:\n    class: flowforge.testing:Relay\n    config: &c {me: *c}\n"
    )
    with pytest.raises(SerializationError, match="contains itself"):
        Flow.load(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", '{"routines": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("deep.yaml", "routines: " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ],
)
def test_data_nested_beyond_the_parser_is_a_serialization_error(
    tmp_path: Path, name: str, text: str
) -> None:
    """A file nested thousands of levels deep raises SerializationError, not RecursionError."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SerializationError, match="too deeply"):
        Flow.load(path)


def test_data_nested_deeper_than_the_limit_is_refused() -> None:
    """from_dict refuses config nested deeper than MAX_DEPTH, naming where."""
    config: dict[str, Any] = {}
    inner = config
    for _ in range(ser.MAX_DEPTH + 5):
        inner["k"] = {}
        inner = inner["k"]
    with pytest.raises(SerializationError, match="levels deep") as info:
        Flow.from_dict({"routines": {"r": {"class": "flowforge.testing:Relay", "config": config}}})
    assert info.value.problems[0].where.startswith("flow.routines.r.config.k.k")


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    """load_file with max_bytes refuses a larger file before parsing it."""
    path = tmp_path / "big.json"
    path.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(SerializationError, match="larger than 50 bytes"):
        ser.load_file(path, max_bytes=50)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("routines: {}\n".encode("utf-16"), "UTF-16"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
        (b"routines: {caf\xe9: 1}\n", r"byte 0xe9 at offset 14"),
    ],
)
def test_a_file_that_is_not_utf8_says_what_it_is(tmp_path: Path, raw: bytes, match: str) -> None:
    """UTF-16 or binary files raise SerializationError saying what the file is."""
    path = tmp_path / "flow.yaml"
    path.write_bytes(raw)
    with pytest.raises(SerializationError, match=match) as info:
        Flow.load(path)
    assert "UTF-8" in info.value.problems[0].hint


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark (some Windows editors write one) is accepted."""
    path = tmp_path / "flow.yaml"
    path.write_bytes("routines: {r: {class: 'flowforge.testing:Relay'}}\n".encode("utf-8-sig"))
    assert list(Flow.load(path).routines) == ["r"]


# -- building from the checked data --------------------------------------------------


class Counted(Relay):
    """Counts how often it is built."""

    built = 0

    def __init__(self) -> None:
        super().__init__()
        Counted.built += 1


def test_no_routine_is_built_for_a_file_that_is_not_a_flow_file() -> None:
    """A wrong format or version, or too-deep data, stops loading before any __init__ runs."""
    Counted.built = 0
    routines = {"r": {"class": f"{__name__}:Counted"}}
    deep: list[Any] = []
    for _ in range(ser.MAX_DEPTH + 1):
        deep = [deep]
    for extra in ({"format": "other"}, {"version": 99, "surprise": 1}, {"entry": deep}):
        with pytest.raises(SerializationError):
            Flow.from_dict({"routines": routines, **extra})
    assert Counted.built == 0
    Flow.from_dict({"routines": routines})
    assert Counted.built == 1


def test_deserialize_fills_the_flow_itself() -> None:
    """deserialize() builds into this Flow: its own attributes stay, nothing is copied over them."""

    class Tagged(Flow):
        def __init__(self) -> None:
            super().__init__(flow_id="tagged")
            self.tag = object()

    flow = Tagged()
    tag = flow.tag
    flow.deserialize(rich_flow().serialize())
    assert flow.tag is tag
    assert describe(flow) == describe(rich_flow())
    assert all(r._flow is flow for r in flow.routines.values())


def test_join_source_order_survives_a_round_trip() -> None:
    """A join wired before its routines were added keeps its sources' order when reloaded."""
    left, right, join = Relay(), Relay(), Join()
    slot = join.get_slot("in")
    assert slot is not None
    Connection(right.get_event("out"), slot, {"x": "r"})  # type: ignore[arg-type]
    Connection(left.get_event("out"), slot, {"x": "l"})  # type: ignore[arg-type]
    flow = Flow()
    flow.add_routine(join, "join")
    flow.add_routine(left, "left")
    flow.add_routine(right, "right")
    loaded = Flow.from_dict(flow.serialize())
    assert loaded.get_routine("join").get_slot("in").source_keys() == slot.source_keys()  # type: ignore[union-attr]


def test_a_wire_with_a_bad_event_and_a_bad_slot_reports_both() -> None:
    """Both unknown ends of one connection are listed, each naming what exists."""
    data = {
        "routines": {
            "src": {"class": "flowforge.testing:Source"},
            "sink": {"class": "flowforge.testing:Collect"},
        },
        "connections": ["src.outt -> sink.inn"],
    }
    with pytest.raises(SerializationError) as info:
        Flow.from_dict(data)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 2
    assert "no event 'outt'" in messages[0] and "no slot 'inn'" in messages[1]


def test_problems_survive_pickling() -> None:
    """A SerializationError crossing a process boundary keeps its problems."""
    with pytest.raises(SerializationError) as info:
        Flow.from_dict({"routines": {"r": {"class": "flowforge.testing:Nope"}}})
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.problems == info.value.problems
    assert str(copy) == str(info.value)


def test_a_class_is_not_taken_from_a_module_another_thread_is_still_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolving waits for a module's import in another thread to finish."""
    (tmp_path / "slow_routines.py").write_text(
        "import time\n"
        "from flowforge.testing import Relay\n"
        "time.sleep(0.5)\n"
        "class Late(Relay):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_routines", raising=False)
    importer = threading.Thread(target=__import__, args=("slow_routines",))
    importer.start()
    while "slow_routines" not in sys.modules:
        pass
    try:
        found = ser.resolve("slow_routines:Late", Routine, "flow.routines.late.class")
    finally:
        importer.join()
    assert found.__name__ == "Late"
