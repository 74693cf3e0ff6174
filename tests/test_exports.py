"""The public API: every exported name resolves and is documented."""

from __future__ import annotations

import inspect

import pytest

import flowforge

#: Names the founding documents import from ``flowforge``.
CONTRACT = [
    "Routine",
    "Slot",
    "Event",
    "Connection",
    "Flow",
    "JobState",
    "ExecutionRecord",
    "ExecutionTracker",
    "ErrorHandler",
    "ErrorStrategy",
]


@pytest.mark.parametrize("name", flowforge.__all__)
def test_exported_name_resolves(name: str) -> None:
    """Every name in __all__ is an attribute of the package."""
    assert hasattr(flowforge, name)


def own_docstring(obj: object) -> str | None:
    """The docstring ``obj`` itself defines; a class's is not inherited from its bases."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return doc if isinstance(doc, str) and doc.strip() else None


@pytest.mark.parametrize("name", flowforge.__all__)
def test_exported_name_has_a_docstring(name: str) -> None:
    """Every name in __all__ has its own docstring."""
    assert own_docstring(getattr(flowforge, name)), name


def test_a_class_does_not_borrow_its_base_class_docstring() -> None:
    """A subclass without a docstring counts as undocumented (inspect.getdoc would inherit)."""

    class Undocumented(flowforge.FlowForgeError):
        pass

    assert inspect.getdoc(Undocumented)
    assert own_docstring(Undocumented) is None


@pytest.mark.parametrize("name", CONTRACT)
def test_contract_names_are_exported(name: str) -> None:
    """The names of the API contract are importable from flowforge and listed in __all__."""
    assert name in flowforge.__all__
    assert getattr(flowforge, name).__module__.startswith("flowforge")


def test_all_is_sorted_and_unique() -> None:
    """__all__ is sorted and lists each name once."""
    assert flowforge.__all__ == sorted(set(flowforge.__all__))


def test_public_methods_of_exported_classes_have_docstrings() -> None:
    """Each public method or property defined by an exported class is documented."""
    missing = []
    for name in flowforge.__all__:
        obj = getattr(flowforge, name)
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_") or not (
                inspect.isfunction(value) or isinstance(value, property | classmethod)
            ):
                continue
            if not inspect.getdoc(getattr(obj, attr)):
                missing.append(f"{name}.{attr}")
    assert missing == []


def test_version_is_a_string() -> None:
    """flowforge.__version__ is set."""
    assert isinstance(flowforge.__version__, str) and flowforge.__version__
