"""Rule basis_diagnostics_table: the folds' basis diagnostics in one table."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.core.io import atomic_path, atomic_write_text
from projected_grpo.study.plots import diagnostics_figure
from projected_grpo.study.stats import markdown_table

table = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
columns = ["fold", "kind"] + [c for c in table.columns if c not in ("fold", "kind")]
table = table[columns]
atomic_write_text(table.to_csv(index=False), snakemake.output.csv)
cells = table.drop(columns="settings", errors="ignore").map(
    lambda x: f"{x:.3f}" if isinstance(x, float) else str(x)
)
caption = (
    "Basis diagnostics, before any training (mean over modules). sign_accuracy: share of the fold's pair "
    "differences (in sample for real V) projecting hack-ward (null 0.5). energy_lever / energy_code: median "
    "share of a lever token gradient's / clean code gradient's energy in span(V); variance_share: share of the "
    "variance of the base model's own samples' gradients in span(V); share_null = k/r for all three. "
    "auc_first / auc_relu: AUC of the first-axis score / of |relu(Vg)| separating natural teacher-pool hacks "
    "(the held-out mode's in a leave-one-mode-out fold) from correct completions (null 0.5). "
    "length_correlation: first-axis score of a pair difference vs its length difference. auc_student_first / "
    "auc_student_sum: AUC of the first-axis score (mean over modules / summed over modules) separating the base "
    "student's own hacks on the eval problems (the held-out mode's in a leave-one-mode-out fold) from its other "
    "samples (null 0.5). A basis in AdamW's geometry reads every gradient in its coordinates. The CSV beside this "
    "table also records the extraction settings of each basis that has them (column settings, JSON)."
)
atomic_write_text(caption + "\n\n" + markdown_table(cells), snakemake.output.md)
figure_caption = (
    "Basis diagnostics before any training, per fold (without_<mode>: the held-out mode's hacks) and basis kind; "
    "dashed: each bar's null."
)
for fmt in ("png", "pdf"):
    with atomic_path(snakemake.output[fmt]) as tmp:
        diagnostics_figure(table, figure_caption).savefig(tmp, format=fmt, dpi=150)
print(table.to_string(), file=sys.stderr)
