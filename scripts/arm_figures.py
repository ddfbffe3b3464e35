"""Rule arm_figures: hack / solve curves of every arm, and cin against its null (fold all)."""

import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.core.io import atomic_path
from projected_grpo.study.plots import arm_curves_figure, cin_figure, substrate_caption

runs = [Path(r) for r in snakemake.input.runs]
steps = pd.concat(
    pd.read_parquet(run / "steps.parquet").assign(
        arm=run.parent.name, seed=int(run.name.removeprefix("seed"))
    )
    for run in runs
)
train = json.loads((runs[0] / "manifest.json").read_text())["config"]["train"]
caption = (
    substrate_caption(snakemake.input.student, train, sorted(steps["seed"].unique().tolist())) + " Fold: all."
)
for figure, stem in ((arm_curves_figure(steps, caption), "curves"), (cin_figure(steps, caption), "cin")):
    for fmt in ("png", "pdf"):
        with atomic_path(snakemake.output[f"{stem}_{fmt}"]) as tmp:
            figure.savefig(tmp, format=fmt, dpi=150)
