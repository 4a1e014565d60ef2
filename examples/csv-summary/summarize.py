"""Summarize CSV files: per-column statistics, one JSON file per input and a Markdown report.

    python summarize.py data/*.csv

Writes summary.md and stats/<name>.json to the current directory (under RGrid: the job's
/work, from where `rgrid run` downloads them). Standard library only.
"""
import csv
import json
import math
import os
import statistics
import sys
from collections import Counter


def parse_number(text):
    text = text.strip().replace(",", "")
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def summarize_column(values):
    present = [v for v in values if v.strip() != ""]
    numbers = [parse_number(v) for v in present]
    summary = {"count": len(values), "missing": len(values) - len(present)}
    if present and all(n is not None for n in numbers):
        nums = sorted(numbers)
        summary.update(
            type="number",
            min=nums[0],
            max=nums[-1],
            mean=round(statistics.fmean(nums), 4),
            median=statistics.median(nums),
            stdev=round(statistics.stdev(nums), 4) if len(nums) > 1 else 0.0,
            sum=round(math.fsum(nums), 4),
        )
    else:
        counts = Counter(v.strip() for v in present)
        top, top_count = counts.most_common(1)[0] if counts else ("", 0)
        summary.update(type="text", distinct=len(counts), top=top, top_count=top_count)
    return summary


def summarize_file(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise ValueError("no header row")
        columns = {name: [] for name in reader.fieldnames}
        rows = 0
        for row in reader:
            rows += 1
            for name in reader.fieldnames:
                columns[name].append(row.get(name) or "")
    return {
        "file": os.path.basename(path),
        "rows": rows,
        "columns": {name: summarize_column(values) for name, values in columns.items()},
    }


def fmt(value):
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def markdown(results):
    lines = ["# CSV summary", ""]
    for r in results:
        lines += [f"## {r['file']} ({r['rows']} rows)", "", "| column | type | missing | min | mean | max | distinct / top |", "|---|---|---|---|---|---|---|"]
        for name, c in r["columns"].items():
            if c["type"] == "number":
                lines.append(f"| {name} | number | {c['missing']} | {fmt(c['min'])} | {fmt(c['mean'])} | {fmt(c['max'])} | |")
            else:
                lines.append(f"| {name} | text | {c['missing']} | | | | {c['distinct']} / {c['top']} ({c['top_count']}) |")
        lines.append("")
    return "\n".join(lines)


def main(paths):
    if not paths:
        print("usage: summarize.py FILE.csv [FILE.csv ...]", file=sys.stderr)
        return 2
    os.makedirs("stats", exist_ok=True)
    results = []
    for path in paths:
        try:
            result = summarize_file(path)
        except (OSError, ValueError, csv.Error) as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            return 1
        print(f"summarized {result['file']}: {result['rows']} rows, {len(result['columns'])} columns", file=sys.stderr)
        stem = os.path.splitext(result["file"])[0]
        with open(os.path.join("stats", f"{stem}.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        results.append(result)

    with open("summary.md", "w", encoding="utf-8") as f:
        f.write(markdown(results))

    width = max(len(r["file"]) for r in results)
    print(f"{'file'.ljust(width)}  rows  numeric columns (mean)")
    for r in results:
        numeric = ", ".join(f"{n}={fmt(c['mean'])}" for n, c in r["columns"].items() if c["type"] == "number")
        print(f"{r['file'].ljust(width)}  {r['rows']:>4}  {numeric}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
