"""Rule arm_figures: hack / solve curves of every arm, and cin against its null (fold all)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.study.aggregate import ARM_FIGURE_OUTPUTS, write_arm_figures

write_arm_figures(
    snakemake.input.runs, snakemake.input.student, {key: snakemake.output[key] for key in ARM_FIGURE_OUTPUTS}
)
