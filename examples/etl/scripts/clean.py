"""Keep the rows of one region with a positive quantity; add the line revenue."""

import argparse
import csv
import pathlib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--region", required=True)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.source, newline="") as src, out.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["order_id", "date", "product", "quantity", "revenue"])
        for row in csv.DictReader(src):
            if row["region"] != args.region or int(row["quantity"]) <= 0:
                continue
            revenue = int(row["quantity"]) * float(row["unit_price"])
            writer.writerow([row["order_id"], row["date"], row["product"], row["quantity"], f"{revenue:.2f}"])


if __name__ == "__main__":
    main()
