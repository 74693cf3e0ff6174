"""Recipe: a bounded loop, guarded by its handler and capped by ``max_activations``.

A paginated listing is read one page at a time: ``pages`` fetches a page,
emits its items, and, while the service says there are more, emits ``next``
back into its own slot::

    pages --item--> collect
      ^   \\
      +----next

The handler's guard (stop when there are no more pages) ends the loop. As a
safety net against a guard that never fires, ``pages`` may run at most
``max_activations`` calls per job; the script then shows a loop whose guard
is broken being stopped by that cap.

Run it with ``python examples/recipe_loop.py``. ``docs/cookbook/loop.rst``
explains it.
"""

from __future__ import annotations

from typing import Any

from flowforge import Flow, Routine

ITEMS = [f"item-{n}" for n in range(23)]


def list_items(page: int, per_page: int) -> tuple[list[str], bool]:
    """A stand-in for a paginated web service: one page of items, and whether more follow."""
    start = (page - 1) * per_page
    return ITEMS[start : start + per_page], start + per_page < len(ITEMS)


# [routines]
class Pages(Routine):
    """Fetches page ``page``; emits each item, then ``next`` while more pages follow.

    Config:
        per_page: Items per page (default 5).
        ignore_end: Keep asking for pages when there are no more (a broken guard).
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.fetch)
        self.define_event("item", ["value"])
        self.define_event("next", ["page"])

    def fetch(self, page: int = 1) -> None:
        items, more = list_items(page, self.get_config("per_page", 5))
        for item in items:
            self.emit("item", value=item)
        if more or self.get_config("ignore_end", False):  # the guard
            self.emit("next", page=page + 1)


class Collect(Routine):
    """Counts what arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.collect)

    def collect(self, value: Any) -> None:
        self._stats["items"] = self._stats.get("items", 0) + 1


# [/routines]


# [build]
def build_flow() -> Flow:
    flow = Flow(flow_id="listing")
    flow.add_routine(Pages(), "pages")
    flow.add_routine(Collect(), "collect")
    flow.connect("pages", "item", "collect", "input")
    flow.connect("pages", "next", "pages", "input")  # the loop
    # No listing has more than 100 pages: past that, something is wrong.
    flow.get_routine("pages").max_activations = 100
    return flow


# [/build]


def main() -> None:
    # [run]
    flow = build_flow()
    job = flow.execute("pages", {"page": 1})
    pages = job.get_routine_state("pages")["activations"]
    print(f"{job.status}: {pages} page(s), {job.get_routine_state('collect')['stats']}")
    # [/run]

    # [broken]
    flow = build_flow()
    flow.get_routine("pages").set_config(ignore_end=True)
    job = flow.execute("pages", {"page": 1})
    print(f"{job.status}: {job.error.error_type}")
    print(job.error.message)
    print(f"calls: {job.get_routine_state('pages')['activations']}, pending: {len(job.pending)}")
    # [/broken]


if __name__ == "__main__":
    main()
