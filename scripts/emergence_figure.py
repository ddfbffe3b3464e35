"""Rule emergence_figure: hack / solve curves of the vanilla-type runs, and one row of
start / end rates and emergence checks per run."""

import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.core.io import atomic_path, atomic_write_text
from projected_grpo.study.plots import emergence_figure, substrate_caption
from projected_grpo.study.stats import emergence_checks, run_summary

frames, table = [], []
for run in map(Path, snakemake.input.runs):
    arm, seed = run.parent.name, int(run.name.removeprefix("seed"))
    steps = pd.read_parquet(run / "steps.parquet").assign(arm=arm, seed=seed)
    evaluation = json.loads((run / "eval_summary.json").read_text())["variants"]
    summary = run_summary(steps)
    row = {"arm": arm, "seed": seed, **summary}
    row |= {f"eval_{v}_{k}": evaluation[v][k] for v in evaluation for k in ("hack_rate", "solve_rate")}
    if arm == "vanilla":
        row |= {f"check_{name}": c["pass"] for name, c in emergence_checks(summary).items()}
    frames.append(steps)
    table.append(row)

train = json.loads((Path(snakemake.input.runs[0]) / "manifest.json").read_text())["config"]["train"]
caption = substrate_caption(snakemake.input.student, train, sorted({r["seed"] for r in table}))
figure = emergence_figure(pd.concat(frames, ignore_index=True), caption)
for key in ("png", "pdf"):
    with atomic_path(snakemake.output[key]) as tmp:
        figure.savefig(tmp, format=key, dpi=150)
atomic_write_text(pd.DataFrame(table).to_csv(index=False), snakemake.output.table)
print(pd.DataFrame(table).to_string(), file=sys.stderr)
