"""Tasks and DAGs: a sales report from the shipped orders, as a DAG of tasks.

::

    extract -> clean -> by_region ----\\
                     -> top_products --+-> report

Each function is a task of ``flow``; a task's dependencies' results arrive
under their names, and job params (``path``, ``top``, ``out``) fill the
other parameters. The same functions are the tasks of ``etl_tasks.yaml``,
which imports this module::

    flowforge run examples/etl_tasks.yaml --param path=examples/data/orders.csv

Run the script with ``python examples/etl_tasks.py``. ``docs/guide/tasks.rst``
explains it.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from flowforge import Flow, JobState, Skip
from flowforge.runtime.executors import ProcessExecutor
from flowforge.store import MemoryStore

ORDERS = Path(__file__).resolve().parent / "data" / "orders.csv"
REGIONS = {"north", "south", "east", "west", "central"}

# [tasks]
flow = Flow(flow_id="etl")


@flow.task
def extract(path: str) -> list[dict[str, str]]:
    """Every line of the orders file, as a dict of strings."""
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@flow.task(depends_on=[extract], retries=3, retry_delay=0.1)
def clean(extract: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The orders that make sense, with numbers as numbers."""
    rows = []
    for row in extract:
        try:
            quantity, price = int(row["quantity"]), float(row["unit_price"])
        except (TypeError, ValueError):
            continue
        if quantity > 0 and row["region"] in REGIONS:
            rows.append({**row, "quantity": quantity, "amount": round(quantity * price, 2)})
    return rows


@flow.task(depends_on=[clean])
def by_region(clean: list[dict[str, Any]]) -> dict[str, float]:
    """Revenue per region."""
    totals: Counter[str] = Counter()
    for row in clean:
        totals[row["region"]] += row["amount"]
    return {region: round(total, 2) for region, total in sorted(totals.items())}


@flow.task(depends_on=[clean])
def top_products(clean: list[dict[str, Any]], top: int = 3) -> list[list[Any]]:
    """The ``top`` products by revenue, as ``[product, revenue]`` pairs."""
    totals: Counter[str] = Counter()
    for row in clean:
        totals[row["product"]] += row["amount"]
    return [[name, round(total, 2)] for name, total in totals.most_common(top)]


@flow.task(depends_on=[by_region, "top_products"])
def report(by_region: dict[str, float], top_products: list[list[Any]], out: str = "") -> str:
    """Write the report to ``out``; skipped when no ``out`` is given."""
    if not out:
        raise Skip("no output file given (param 'out')")
    lines = [f"{region}: {total:.2f}" for region, total in by_region.items()]
    lines += [f"top: {name} {total:.2f}" for name, total in top_products]
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


# [/tasks]


def first_run() -> None:
    # [run]
    job = flow.execute(entry_params={"path": str(ORDERS)})
    print(job.status)
    print(f"extracted {len(job.output('extract'))}, kept {len(job.output('clean'))}")
    print("by region:", job.output("by_region"))
    print("top products:", job.output("top_products"))
    print("report:", job.task_status("report"), "-", job.skipped[0].reason)
    # [/run]


def with_output() -> None:
    # [out]
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "report.txt")
        job = flow.execute(entry_params={"path": str(ORDERS), "out": out, "top": 1})
        print(sorted(job.outputs))
        print(Path(out).read_text(encoding="utf-8").splitlines()[-1])
    # [/out]


def failing() -> None:
    # [failure]
    job = flow.execute(entry_params={"path": "missing.csv"})
    print(job.status, {name: job.task_status(name) for name in flow.routines})
    try:
        job.output("clean")
    except KeyError as error:
        print(error.args[0])
    # [/failure]


def kept_in_a_store() -> None:
    # [store]
    store = MemoryStore()
    job = flow.execute(entry_params={"path": str(ORDERS)}, store=store)
    stored: JobState = store.load(job.job_id)
    print("stored:", stored.output("by_region") == job.output("by_region"))
    # [/store]


def on_processes() -> None:
    # [executors]
    flow.executor = ProcessExecutor(max_workers=2)
    try:
        job = flow.execute(entry_params={"path": str(ORDERS)})
    finally:
        flow.close()
    print("on processes:", job.status, job.output("top_products")[0][0])
    # [/executors]


if __name__ == "__main__":
    first_run()
    with_output()
    failing()
    kept_in_a_store()
    on_processes()
