"""Add up the daily reports: revenue and orders per region over all the given days."""

import csv
import pathlib
import sys
from collections import defaultdict


def main() -> None:
    out, *reports = sys.argv[1:]
    orders: dict[str, int] = defaultdict(int)
    revenue: dict[str, float] = defaultdict(float)
    for path in reports:
        with open(path, newline="") as src:
            for row in csv.DictReader(src):
                orders[row["region"]] += int(row["orders"])
                revenue[row["region"]] += float(row["revenue"])
    target = pathlib.Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["region", "days", "orders", "revenue"])
        for region in sorted(orders):
            writer.writerow([region, len(reports), orders[region], f"{revenue[region]:.2f}"])


if __name__ == "__main__":
    main()
