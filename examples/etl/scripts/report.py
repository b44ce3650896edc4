"""Sum revenue and orders per region for one day, from the cleaned per-region files."""

import argparse
import csv
import pathlib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("cleaned", nargs="+")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["region", "orders", "revenue"])
        for path in sorted(args.cleaned):
            region = pathlib.Path(path).parent.name
            with open(path, newline="") as src:
                rows = list(csv.DictReader(src))
            writer.writerow([region, len(rows), f"{sum(float(r['revenue']) for r in rows):.2f}"])


if __name__ == "__main__":
    main()
