"""The routines of the order-report example (``report_flow.yaml``).

The flow reads ``data/orders.csv`` (5,000 orders, a few of them broken),
and builds a sales report::

    read -> parse -> validate -> price -> aggregate -> write
              \\          \\                  ^
               +----------+--> rejects ------+

``read`` emits one message per line of the file and, last, how many there
were. ``parse`` turns a line into a typed record, ``validate`` checks it
against the business rules, and ``price`` works out what each order is
worth. Lines that cannot be parsed and records that break a rule go to
``rejects``: the reject branch keeps them, with the reason, instead of
dropping them. ``aggregate`` adds everything up in its slot's merge state
and, once every line is accounted for (as an order or a reject), hands the
totals to ``write``, which writes the report and the rejects file.

Everything a job needs to go on lives in the job (the pending messages and
``aggregate``'s running totals), so a job paused half-way resumes where it
stopped, in another process if need be.

The command line loads this module because it sits next to the flow file:
``flowforge run examples/report_flow.yaml``.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowforge import Routine

COLUMNS = ("order_id", "date", "customer", "region", "product", "quantity", "unit_price")
REGIONS = ("north", "south", "east", "west", "central")


class ReadOrders(Routine):
    """Entry: emits ``row(number, line)`` for each order in the CSV file at ``path``.

    When every row is out it emits ``end(total)``, the number of rows, so the
    aggregate knows when it has seen them all.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.read)
        self.define_event("row", ["number", "line"])
        self.define_event("end", ["total"])

    def read(self, path: str) -> None:
        """Emit each line after the header, numbered from 1."""
        with Path(path).open(encoding="utf-8") as handle:
            header = handle.readline().strip()
            if header != ",".join(COLUMNS):
                raise ValueError(
                    f"{path}: expected the header {','.join(COLUMNS)!r}, got {header!r}."
                )
            total = 0
            for total, line in enumerate(handle, start=1):
                self.emit("row", number=total, line=line.rstrip("\n"))
        self._stats["rows"] = total
        self.emit("end", total=total)


class ParseOrder(Routine):
    """Splits a CSV line into a typed record; emits ``parsed`` or ``bad``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.parse)
        self.define_event("parsed", ["number", "line", "record"])
        self.define_event("bad", ["number", "line", "reason"])

    def parse(self, number: int, line: str) -> None:
        """Parse one line; a line that does not parse goes out as ``bad``."""
        fields = next(csv.reader([line]), [])
        if len(fields) != len(COLUMNS):
            self.emit(
                "bad",
                number=number,
                line=line,
                reason=f"expected {len(COLUMNS)} fields, got {len(fields)}",
            )
            return
        record: dict[str, Any] = dict(zip(COLUMNS, fields, strict=True))
        try:
            record["quantity"] = int(record["quantity"])
        except ValueError:
            self.emit(
                "bad",
                number=number,
                line=line,
                reason=f"quantity {record['quantity']!r} is not a whole number",
            )
            return
        try:
            record["unit_cents"] = round(float(record.pop("unit_price")) * 100)
        except ValueError:
            self.emit("bad", number=number, line=line, reason="unit_price is not a number")
            return
        self.emit("parsed", number=number, line=line, record=record)


class ValidateOrder(Routine):
    """Checks the business rules; emits ``valid(record)`` or ``invalid(number, line, reason)``.

    Config:
        regions: The regions orders may come from (default: the five sales regions).
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.check)
        self.define_event("valid", ["record"])
        self.define_event("invalid", ["number", "line", "reason"])

    def check(self, number: int, line: str, record: dict[str, Any]) -> None:
        """Pass the record on, or say what is wrong with it."""
        reason = self.problem(record)
        if reason is None:
            self.emit("valid", record=record)
        else:
            self.emit("invalid", number=number, line=line, reason=reason)

    def problem(self, record: Mapping[str, Any]) -> str | None:
        """What is wrong with ``record``, or ``None``."""
        try:
            datetime.date.fromisoformat(record["date"])
        except ValueError:
            return f"date {record['date']!r} is not a date (YYYY-MM-DD)"
        regions = self.get_config("regions", list(REGIONS))
        if record["region"] not in regions:
            return f"region {record['region']!r} is not one of {', '.join(regions)}"
        if record["quantity"] <= 0:
            return f"quantity must be positive, got {record['quantity']}"
        if record["unit_cents"] <= 0:
            return "unit_price must be positive"
        return None


class PriceOrder(Routine):
    """The transform: adds the order's month and its value in cents."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.price)
        self.define_event("order", ["order"])

    def price(self, record: dict[str, Any]) -> None:
        """Emit the priced order."""
        order = {
            "order_id": record["order_id"],
            "month": record["date"][:7],
            "region": record["region"],
            "product": record["product"],
            "quantity": record["quantity"],
            "cents": record["quantity"] * record["unit_cents"],
        }
        self.emit("order", order=order)


class KeepRejects(Routine):
    """The reject branch: gives every bad line the same shape, counts them, passes them on."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.keep)
        self.define_event("rejected", ["reject"])

    def keep(self, number: int, line: str, reason: str) -> None:
        """Pass the reject on to be counted and written."""
        self._stats["rejected"] = self._stats.get("rejected", 0) + 1
        self.emit("rejected", reject={"number": number, "reason": reason, "line": line})


def add_to_totals(totals: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Merge one delivery into the running totals (the ``tally`` slot's merge function).

    A delivery is an ``order``, a ``reject`` or the ``expected`` number of
    lines. ``totals`` is a shallow copy of the previous totals: nested tables
    are copied before they change, so a failed call leaves the old ones intact.
    """
    if "expected" in new:
        totals["expected"] = new["expected"]
        return totals
    totals["seen"] = totals.get("seen", 0) + 1
    if "reject" in new:
        totals["rejects"] = [*totals.get("rejects", []), new["reject"]]
        return totals
    order = new["order"]
    totals["orders"] = totals.get("orders", 0) + 1
    totals["units"] = totals.get("units", 0) + order["quantity"]
    totals["cents"] = totals.get("cents", 0) + order["cents"]
    for table in ("region", "month", "product"):
        totals[f"by_{table}"] = _bump(totals.get(f"by_{table}", {}), order[table], order)
    return totals


def _bump(table: dict[str, Any], key: str, order: Mapping[str, Any]) -> dict[str, Any]:
    row = table.get(key, {"orders": 0, "units": 0, "cents": 0})
    return {
        **table,
        key: {
            "orders": row["orders"] + 1,
            "units": row["units"] + order["quantity"],
            "cents": row["cents"] + order["cents"],
        },
    }


class Aggregate(Routine):
    """Adds up orders and rejects; emits ``totals`` once every line is accounted for.

    The ``tally`` slot folds each delivery into running totals with
    :func:`add_to_totals`. The totals are the slot's merge state, so they are
    part of the job and survive a pause. Lines arrive in any order (with a
    thread pool, too); the totals go out when ``seen`` reaches ``expected``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("tally", handler=self.check, merge_strategy=add_to_totals)
        self.define_event("totals", ["totals"])

    def check(self, **totals: Any) -> None:
        """Emit the totals when the count is complete."""
        if totals.get("seen", 0) == totals.get("expected"):
            self.emit("totals", totals=totals)


class WriteReport(Routine):
    """Writes the report and the rejects file.

    Config:
        path: The report, Markdown (``.md``) or JSON (``.json``); default
            ``out/report.md`` under the working directory.
        rejects_path: The rejected lines as CSV (``number,reason,line``);
            default ``out/rejects.csv``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.write)

    def write(self, totals: dict[str, Any]) -> None:
        """Write both files (creating their directory) and note where in the stats."""
        report = Path(self.get_config("path", "out/report.md"))
        rejects = Path(self.get_config("rejects_path", "out/rejects.csv"))
        summary = summarize(totals)
        report.parent.mkdir(parents=True, exist_ok=True)
        if report.suffix == ".json":
            report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        else:
            report.write_text(render_markdown(summary, rejects), encoding="utf-8")
        rejects.parent.mkdir(parents=True, exist_ok=True)
        with rejects.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("number", "reason", "line"))
            for reject in summary["rejects"]:
                writer.writerow((reject["number"], reject["reason"], reject["line"]))
        self._stats["report"] = str(report)
        self._stats["rejects"] = str(rejects)


def summarize(totals: Mapping[str, Any]) -> dict[str, Any]:
    """The report's content as plain data (what the JSON report holds)."""
    return {
        "lines": totals.get("expected", 0),
        "orders": totals.get("orders", 0),
        "rejected": len(totals.get("rejects", [])),
        "units": totals.get("units", 0),
        "revenue": _money(totals.get("cents", 0)),
        "by_region": _table(totals.get("by_region", {})),
        "by_month": _table(totals.get("by_month", {})),
        "by_product": _table(totals.get("by_product", {})),
        "rejects": sorted(totals.get("rejects", []), key=lambda r: r["number"]),
    }


def _table(rows: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, Any]]:
    return {
        key: {"orders": row["orders"], "units": row["units"], "revenue": _money(row["cents"])}
        for key, row in sorted(rows.items())
    }


def _money(cents: int) -> float:
    return round(cents / 100, 2)


def render_markdown(summary: Mapping[str, Any], rejects: Path) -> str:
    """The report as Markdown."""
    lines = [
        "# Order report",
        "",
        f"- Lines read: {summary['lines']:,}",
        f"- Orders: {summary['orders']:,}",
        f"- Rejected: {summary['rejected']:,} (see `{rejects}`)",
        f"- Units sold: {summary['units']:,}",
        f"- Revenue: {summary['revenue']:,.2f}",
    ]
    for title, key in (("Region", "by_region"), ("Month", "by_month"), ("Product", "by_product")):
        lines += [
            "",
            f"## By {title.lower()}",
            "",
            f"| {title} | Orders | Units | Revenue |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {row['orders']:,} | {row['units']:,} | {row['revenue']:,.2f} |"
            for name, row in summary[key].items()
        ]
    lines += ["", "## Rejected lines", "", "| Line | Reason |", "|---:|---|"]
    lines += [f"| {r['number']} | {r['reason']} |" for r in summary["rejects"]]
    return "\n".join(lines) + "\n"
