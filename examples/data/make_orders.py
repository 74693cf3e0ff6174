"""Generate ``orders.csv``, the data file of the report example.

The file is committed; run this script only to regenerate it (the output is
the same every time)::

    python examples/data/make_orders.py

It writes 5,000 orders for 2024 and then spoils a handful of them on
purpose, so the example has something to reject: a missing field, a
quantity that is not a number, a negative quantity, an impossible date, an
unknown region and a price of zero.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ("order_id", "date", "customer", "region", "product", "quantity", "unit_price")
REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = {
    "widget": 4.50,
    "gadget": 12.00,
    "gizmo": 7.25,
    "sprocket": 1.80,
    "flange": 3.10,
    "doohickey": 25.00,
    "thingamajig": 15.75,
    "whatsit": 9.99,
}
COUNT = 5000
#: Line number (1 = first order) -> how to spoil that order.
SPOILED = {
    137: lambda row: row[:-1],  # a field is missing
    842: lambda row: [*row[:5], "three", row[6]],  # quantity is not a number
    1503: lambda row: [*row[:5], "-2", row[6]],  # negative quantity
    2291: lambda row: [row[0], "2024-02-30", *row[2:]],  # no such date
    3010: lambda row: [*row[:3], "atlantis", *row[4:]],  # unknown region
    3777: lambda row: [*row[:6], "0.00"],  # price of zero
    4420: lambda row: [*row[:5], "", row[6]],  # quantity is empty
    4999: lambda row: [row[0], "15/07/2024", *row[2:]],  # wrong date format
}


def make_rows(seed: int = 2024) -> list[list[str]]:
    """The orders as CSV rows (strings), spoiled ones included."""
    rng = random.Random(seed)
    rows = []
    for n in range(1, COUNT + 1):
        product = rng.choice(sorted(PRODUCTS))
        row = [
            f"A{n:05d}",
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"C{rng.randint(1, 400):04d}",
            rng.choice(REGIONS),
            product,
            str(rng.randint(1, 20)),
            f"{PRODUCTS[product] * rng.choice((0.9, 1.0, 1.0, 1.1)):.2f}",
        ]
        spoil = SPOILED.get(n)
        rows.append(spoil(row) if spoil else row)
    return rows


def main() -> None:
    """Write ``orders.csv`` next to this script."""
    with (HERE / "orders.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(make_rows())


if __name__ == "__main__":
    main()
