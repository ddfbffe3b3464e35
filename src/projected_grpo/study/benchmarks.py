"""Per-rule totals of Snakemake's ``benchmark:`` files (one TSV per job).

``results/benchmarks/<rule>[/<wildcards>...].tsv`` -> one row per rule: jobs, total and
largest wall seconds, CPU seconds, peak resident memory. CLI:
``pgrpo-benchmarks results/benchmarks --out results/tables/benchmarks.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..core.io import atomic_write_text


def read_benchmarks(folder: str | Path) -> pd.DataFrame:
    """One row per benchmark file: ``rule`` (first path part, or the file stem at top
    level), ``job`` (the path below ``folder``) and its columns ``s, cpu_time, max_rss``."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.rglob("*.tsv")):
        relative = path.relative_to(folder)
        try:
            frame = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a Snakemake benchmark file ({exc})") from exc
        if frame.empty or "s" not in frame:
            raise ValueError(f"{path}: not a Snakemake benchmark file (expected a column 's')")
        last = frame.iloc[-1]  # a benchmark with repeats: the last repeat
        rows.append(
            {
                "rule": relative.parts[0] if len(relative.parts) > 1 else relative.stem,
                "job": relative.with_suffix("").as_posix(),
                "s": float(last["s"]),
                "cpu_time": float(last.get("cpu_time", float("nan"))),
                "max_rss": float(last.get("max_rss", float("nan"))),
            }
        )
    if not rows:
        raise ValueError(f"{folder}: no benchmark files (*.tsv); run the workflow first")
    return pd.DataFrame(rows)


def rule_totals(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: ``jobs``, ``total_min`` (summed wall minutes), ``max_s``, ``cpu_min`` and
    ``max_rss_mb``; rules by total time, largest first, and a ``total`` row."""
    totals = jobs.groupby("rule").agg(
        jobs=("job", "size"), total_s=("s", "sum"), max_s=("s", "max"), cpu_s=("cpu_time", "sum"),
        max_rss_mb=("max_rss", "max"),
    )  # fmt: skip
    totals = totals.sort_values("total_s", ascending=False)
    totals.loc["total"] = [totals["jobs"].sum(), totals["total_s"].sum(), totals["max_s"].max(),
                           totals["cpu_s"].sum(), totals["max_rss_mb"].max()]  # fmt: skip
    out = totals.reset_index()
    out["total_min"] = out.pop("total_s") / 60
    out["cpu_min"] = out.pop("cpu_s") / 60
    out["jobs"] = out["jobs"].astype(int)
    return out[["rule", "jobs", "total_min", "max_s", "cpu_min", "max_rss_mb"]]


def markdown(totals: pd.DataFrame) -> str:
    lines = [
        "| rule | jobs | wall min (sum) | longest job s | CPU min | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for row in totals.itertuples(index=False):
        lines.append(f"| {row.rule} | {row.jobs} | {row.total_min:.1f} | {row.max_s:.0f} | {row.cpu_min:.1f} "
                     f"| {row.max_rss_mb:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pgrpo-benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the workflow's benchmark folder (results/benchmarks)")
    parser.add_argument("--out", help="write the markdown table here as well")
    args = parser.parse_args(argv)
    try:
        table = markdown(rule_totals(read_benchmarks(args.folder)))
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(table, end="")
    if args.out:
        atomic_write_text(table, args.out)


if __name__ == "__main__":
    main()
