"""``async def`` handlers, and running a job from asyncio code.

The flow is ``urls -> fetch -> sizes``. ``fetch`` has an ``async def``
handler that pretends to download a page; ``sizes`` is an ordinary handler.
The job is started with ``await flow.execute_async(...)``: the scheduler runs
in a worker thread, and async handlers run on the caller's event loop, so
they can share that loop's objects (here, an :class:`asyncio.Semaphore`).

``fetch`` has a timeout. One URL is too slow: its handler is cancelled at its
next ``await``, fails with :class:`~flowforge.HandlerTimeoutError`, and the
CONTINUE strategy lets the job go on.

Run it with ``python examples/async_handlers.py``.
"""

from __future__ import annotations

import asyncio

from flowforge import ErrorHandler, ErrorStrategy, Flow, Routine

URLS = ["https://example.org/a", "https://example.org/bb", "slow://example.org/c"]


# [routines]
class Urls(Routine):
    """Entry: emits ``url`` for each URL it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.start)
        self.define_event("url", ["url"])

    def start(self, urls: list[str]) -> None:
        for url in urls:
            self.emit("url", url=url)


class Fetch(Routine):
    """Downloads a page (pretend); ``limit`` is a semaphore on the application's loop."""

    def __init__(self) -> None:
        super().__init__()
        self.limit: asyncio.Semaphore | None = None
        self.define_slot("input", handler=self.fetch)
        self.define_event("page", ["url", "body"])

    async def fetch(self, url: str) -> None:
        assert self.limit is not None, "set fetch.limit before running"
        async with self.limit:
            await asyncio.sleep(5 if url.startswith("slow:") else 0.01)
        self._stats["fetched"] = self._stats.get("fetched", 0) + 1
        self.emit("page", url=url, body=f"<html>{url}</html>")


class Sizes(Routine):
    """A plain handler downstream of an async one."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.measure)
        self.define_event("size", ["url", "size"])

    def measure(self, url: str, body: str) -> None:
        self.emit("size", url=url, size=len(body))


# [/routines]


# [main]
async def main() -> None:
    flow = Flow(flow_id="crawl", executor="thread", max_workers=4)
    flow.add_routine(Urls(), "urls")
    flow.add_routine(Fetch(), "fetch")
    flow.add_routine(Sizes(), "sizes")
    flow.connect("urls", "url", "fetch", "input")
    flow.connect("fetch", "page", "sizes", "input")

    fetch = flow.get_routine("fetch")
    fetch.limit = asyncio.Semaphore(2)  # belongs to this event loop
    fetch.max_concurrency = 3
    fetch.timeout = 0.5
    fetch.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))

    job = await flow.execute_async("urls", {"urls": URLS})

    print(f"status: {job.status}")
    for size in sorted(record.data["size"] for record in job.get_execution_history("sizes")):
        print(f"page of {size} bytes")
    for error in job.errors:
        print(f"{error.routine_id} failed: {error.error_type}")
    print(f"fetched: {job.get_routine_state('fetch')['stats']['fetched']}")


# [/main]


if __name__ == "__main__":
    asyncio.run(main())
