"""Engine workloads: hop overhead, streaming, fan-out, threads, a huge chain.

Each workload returns rows whose FlowForge figure stands beside a
plain-Python baseline measured here, in the same process.
"""

from __future__ import annotations

import concurrent.futures
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from flowforge import Flow
from flowforge.testing import Sleep

from .harness import Row, Settings, Target, benchmark, best_of, per_call, rss_bytes
from .routines import (
    Emit,
    PlainGather,
    PlainRelay,
    PlainStep,
    chain_flow,
    fan_out_flow,
    joined_streams_flow,
    run_plain_chain,
    run_plain_fan_out,
    run_plain_joined,
    run_plain_stream,
    stream_flow,
)
from .skeleton import joins_of, run_skeleton, skeleton_chain, skeleton_fan_out, skeleton_stream

_US = 1e6
_MIB = 1024 * 1024


def _job(flow: Flow, entry: str, params: dict[str, Any]) -> Callable[[], None]:
    """A callable running one job, checking that it completed."""

    def run() -> None:
        job = flow.execute(entry, params)
        if job.status != "completed":
            raise RuntimeError(f"benchmark job ended {job.status}: {job.reason}")

    return run


@benchmark("hop", "per-hop overhead of a 10-routine chain (sequential executor)")
def hop_overhead(settings: Settings) -> list[Row]:
    """Per-hop overhead of a 10-routine chain, plus job setup and marginal hop cost."""
    hops, long_hops = 10, 40
    number, repeat = settings.pick((100, 15), (20, 2))
    job = per_call(_job(chain_flow(hops), "s0", {"value": 0}), number, repeat)
    one = per_call(_job(chain_flow(1), "s0", {"value": 0}), number, repeat)
    long = per_call(_job(chain_flow(long_hops), "s0", {"value": 0}), number // 4 or 1, repeat)
    steps = [PlainStep() for _ in range(hops)]
    plain = per_call(lambda: run_plain_chain(steps, 0), number * 100, repeat)
    routines, routes = skeleton_chain(hops)
    skeleton = per_call(lambda: run_skeleton(routines, routes), number, repeat)
    plain_hop = plain / hops
    marginal = (long - job) / (long_hops - hops)
    sizes = f"{hops} hops, best of {repeat} x {number} jobs"
    return [
        Row(
            "hop.per-hop",
            f"per-hop overhead, {hops}-routine chain",
            (job - plain) / hops * _US,
            "µs/hop",
            plain_hop * _US,
            "µs/call",
            ratio=job / plain,
            target=Target("<=", 30.0, of="ratio"),
            note=f"(job {job * _US:.1f} µs - plain chain {plain * _US:.2f} µs) / {hops}; "
            f"ratio = job / plain chain; {sizes}",
        ),
        Row(
            "hop.job",
            f"one job through the {hops}-routine chain",
            job * _US,
            "µs/job",
            plain * _US,
            ratio=job / plain,
            note=sizes,
        ),
        Row(
            "hop.marginal",
            "marginal cost of one more hop",
            marginal * _US,
            "µs/hop",
            plain_hop * _US,
            "µs/call",
            ratio=marginal / plain_hop,
            target=Target("<=", 30.0, of="ratio"),
            note=f"(job over {long_hops} hops - job over {hops} hops) / {long_hops - hops}; "
            "tracking on (every call and delivery recorded)",
        ),
        Row(
            "hop.skeleton",
            f"the least a hop can cost, {hops}-routine chain",
            (skeleton - plain) / hops * _US,
            "µs/hop",
            plain_hop * _US,
            "µs/call",
            ratio=skeleton / plain,
            note="benchmarks/skeleton.py: a bare loop doing only what every hop promises "
            "(queued record, call context, buffered checked emit, timing, counters, history, "
            "event flow); no job, plan, errors or setup. Ratio as hop.per-hop's",
        ),
        Row(
            "hop.job-setup",
            "one job through a 1-routine flow",
            one * _US,
            "µs/job",
            plain_hop * _US,
            "µs/call",
            ratio=one / plain_hop,
            note="fixed cost of a job: state, tracker, plan, signals",
        ),
    ]


@benchmark("stream", "one handler emits items through 3 relaying routines")
def stream(settings: Settings) -> list[Row]:
    """Messages per second when a source streams items through 3 relays."""
    relays = 3
    count, repeat = settings.pick((10_000, 5), (200, 2))
    messages = count * relays
    job = best_of(_job(stream_flow(relays), "source", {"count": count}), repeat)
    plain_relays = [PlainRelay() for _ in range(relays)]
    plain = best_of(lambda: run_plain_stream(plain_relays, count), repeat * 3)
    routines, routes = skeleton_stream(relays)
    skeleton = best_of(lambda: run_skeleton(routines, routes, count), repeat)
    return [
        Row(
            "stream.throughput",
            f"stream: {count:,} items through {relays} routines",
            messages / job,
            "msg/s",
            messages / plain,
            ratio=job / plain,
            target=Target("<=", 20.0, of="ratio"),
            note=f"{messages:,} deliveries (items x routines) in {job * 1e3:.1f} ms, "
            f"best of {repeat}; plain: {plain * 1e3:.2f} ms",
        ),
        Row(
            "stream.skeleton",
            f"the most a stream can carry, {relays} routines",
            messages / skeleton,
            "msg/s",
            messages / plain,
            ratio=skeleton / plain,
            note="benchmarks/skeleton.py, as hop.skeleton: the floor under stream.throughput",
        ),
        _joined_streams(settings),
    ]


def _joined_streams(settings: Settings) -> Row:
    """Two streams joined pair by pair: one source's items all wait while the
    other's arrive, so a round that copied the waiting queue would cost O(n)."""
    count, repeat = settings.pick((10_000, 3), (200, 2))
    job = best_of(_job(joined_streams_flow(), "start", {"value": count}), repeat)
    join = PlainGather()
    plain = best_of(lambda: run_plain_joined(join, count), repeat * 3)
    return Row(
        "stream.joined",
        f"two streams of {count:,} items joined pair by pair",
        count / job,
        "pairs/s",
        count / plain,
        ratio=job / plain,
        note=f"{count:,} pairs in {job * 1e3:.1f} ms, best of {repeat}; "
        "flat per pair however many items wait",
    )


@benchmark("fanout", "fan-out 1 -> 16 -> join")
def fan_out(settings: Settings) -> list[Row]:
    """Per-job time of a fan-out to 16 routines joined back into one."""
    width = 16
    number, repeat = settings.pick((100, 9), (10, 2))
    job = per_call(_job(fan_out_flow(width), "source", {"value": 1}), number, repeat)
    workers, join = [PlainStep() for _ in range(width)], PlainGather()
    plain = per_call(lambda: run_plain_fan_out(workers, join, 1), number * 100, repeat)
    routines, routes = skeleton_fan_out(width)
    joined = joins_of(routines)
    skeleton = per_call(lambda: run_skeleton(routines, routes, 1, joined), number, repeat)
    return [
        Row(
            "fanout.job",
            f"fan-out 1 -> {width} -> join, one job",
            job * _US,
            "µs/job",
            plain * _US,
            ratio=job / plain,
            target=Target("<=", 20.0, of="ratio"),
            note=f"{width + 2} activations per job; best of {repeat} x {number} jobs",
        ),
        Row(
            "fanout.skeleton",
            f"the least a fan-out 1 -> {width} -> join can cost",
            skeleton * _US,
            "µs/job",
            plain * _US,
            ratio=skeleton / plain,
            note="benchmarks/skeleton.py, as hop.skeleton, with a join that queues each "
            "source's values: the floor under fanout.job",
        ),
        _wide_fan_out(settings, job / (width + 2)),
    ]


def _wide_fan_out(settings: Settings, narrow: float) -> Row:
    """Per-branch cost of a fan-out 1000 wide: the same as 16 wide if a join
    delivery costs the same however many sources the join has."""
    width = settings.pick(1000, 100)
    repeat = settings.pick(5, 2)
    job = best_of(_job(fan_out_flow(width), "source", {"value": 1}), repeat)
    workers, join = [PlainStep() for _ in range(width)], PlainGather()
    plain = best_of(lambda: run_plain_fan_out(workers, join, 1), repeat * 3)
    per = job / (width + 2)
    return Row(
        "fanout.wide",
        f"fan-out 1 -> {width} -> join, per activation",
        per * _US,
        "µs/call",
        plain / (width + 2) * _US,
        "µs/call",
        ratio=job / plain,
        note=f"per activation 16 wide: {narrow * _US:.2f} µs; best of {repeat} jobs",
    )


@benchmark("threads", "sleeping calls on the thread executor", cpu_bound=False)
def threads(settings: Settings) -> list[Row]:
    """Speedup over serial of sleeping calls run by the thread executor."""
    items, seconds, workers, repeat = settings.pick((200, 0.01, 32, 5), (16, 0.002, 8, 1))
    flow = Flow(flow_id="threads", executor="thread", max_workers=workers)
    flow.add_routine(Emit(), "source")
    stage = Sleep()
    stage.set_config(seconds=seconds)
    stage.max_concurrency = workers
    flow.add_routine(stage, "sleep")
    flow.connect("source", "out", "sleep", "in")
    serial = _serial_sleeps(items, seconds)
    job = best_of(_job(flow, "source", {"count": items}), repeat)
    pool = best_of(lambda: _pool_sleeps(items, seconds, workers), repeat)
    ideal = serial / (-(-items // workers) * seconds)
    return [
        Row(
            "threads.speedup",
            f"{items} x {seconds * 1e3:g} ms sleeps, max_concurrency={workers}, {workers} threads",
            serial / job,
            "x",
            serial,
            "s serial",
            target=Target(">=", 24.0),
            note=f"job {job * 1e3:.1f} ms (best of {repeat}) vs serial {serial * 1e3:.0f} ms; "
            f"peak overlap {stage.peak}; plain ThreadPoolExecutor: {serial / pool:.1f}x; "
            f"ideal: {ideal:.1f}x",
        ),
    ]


def _serial_sleeps(items: int, seconds: float) -> float:
    start = time.perf_counter()
    for _ in range(items):
        time.sleep(seconds)
    return time.perf_counter() - start


def _pool_sleeps(items: int, seconds: float, workers: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(time.sleep, [seconds] * items))


@benchmark("big-chain", "a 10,000-routine chain: build, one job, memory")
def big_chain(settings: Settings) -> list[Row]:
    """Build time, one job's time and memory of a very long chain."""
    length, repeat = settings.pick((10_000, 3), (200, 1))
    build = best_of(lambda: chain_flow(length), repeat)
    flow = chain_flow(length)
    job = best_of(_job(flow, "s0", {"value": 0}), repeat)
    plain_build = best_of(lambda: [PlainStep() for _ in range(length)], repeat)
    steps = [PlainStep() for _ in range(length)]
    plain_job = best_of(lambda: run_plain_chain(steps, 0), repeat)
    del flow
    rss = _rss_delta(length)
    peak, kept = _traced(lambda: _build_and_run(length))
    plain_peak, _ = _traced(lambda: run_plain_chain([PlainStep() for _ in range(length)], 0))
    sizes = f"{length:,} routines, best of {repeat}"
    return [
        Row(
            "big-chain.build",
            f"build a {length:,}-routine chain",
            build,
            "s",
            plain_build,
            ratio=build / plain_build,
            target=Target("<=", 0.05),
            note=f"{sizes}: construct routines, add_routine, connect; plain: construct objects",
        ),
        Row(
            "big-chain.job",
            f"one job through the {length:,}-routine chain",
            job,
            "s",
            plain_job,
            ratio=job / plain_job,
            target=Target("<", 0.1),
            note=sizes,
        ),
        Row(
            "big-chain.memory",
            "tracemalloc peak, build + one job",
            peak / _MIB,
            "MiB",
            plain_peak / _MIB,
            ratio=peak / plain_peak if plain_peak else None,
            note=f"{kept / _MIB:.1f} MiB still held by the flow and its job afterwards; "
            f"{peak / length:.0f} bytes per routine at peak",
        ),
        Row(
            "big-chain.rss",
            "RSS growth, build + one job",
            (rss or 0) / _MIB,
            "MiB",
            note="current RSS after - before (from /proc; 0 where unavailable); "
            "freed memory reused from earlier workloads can hide some growth",
        ),
    ]


def _build_and_run(length: int) -> Any:
    flow = chain_flow(length)
    return flow, flow.execute("s0", {"value": 0})


def _rss_delta(length: int) -> int | None:
    gc.collect()
    before = rss_bytes()
    kept = _build_and_run(length)
    after = rss_bytes()
    del kept
    return None if before is None or after is None else after - before


def _traced(fn: Callable[[], Any]) -> tuple[int, int]:
    """``(peak, still held)`` bytes traced while ``fn`` ran and its result lived."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        current, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return peak, current
