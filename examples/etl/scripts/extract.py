"""Write one day's raw sales as CSV: a deterministic stand-in for a database export."""

import argparse
import csv
import pathlib
import random

REGIONS = ["eu", "us", "apac"]
PRODUCTS = ["widget", "gadget", "gizmo"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--date", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.date)  # the same date always gives the same rows
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "date", "region", "product", "quantity", "unit_price"])
        for order in range(200):
            quantity = rng.randint(-1, 5)  # a few invalid rows for `clean` to drop
            writer.writerow(
                [f"{args.date}-{order:04d}", args.date, rng.choice(REGIONS), rng.choice(PRODUCTS),
                 quantity, f"{rng.uniform(1, 50):.2f}"]
            )


if __name__ == "__main__":
    main()
