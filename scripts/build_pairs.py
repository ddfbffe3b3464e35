"""Rule build_pairs: the fold's hack/clean pairs and the two pair-based controls."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet, read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.pool.pairs import PairsConfig, build_pairs, nonhack_pairs, shuffle_labels
from projected_grpo.pool.teacher import restrict_to_modes

known = snakemake.params.known_modes
config = PairsConfig.from_dict(snakemake.params.pairs)
problems = load_problems(snakemake.input.problems)
pool = restrict_to_modes(read_parquet(snakemake.input.pool, "teacher pool"), known)
real = build_pairs(problems, pool, known, config)
controls = {
    "shuffled": shuffle_labels(real, snakemake.params.control_seed),
    "nonhack": nonhack_pairs(problems, known, config),
}
for kind, pairs in {"real": real, **controls}.items():
    atomic_write_parquet(pairs, snakemake.output[kind])
    counts = pairs[pairs["label"] == "hack"].groupby(["source", "mode"]).size().to_dict()
    print(
        f"{kind}: {pairs['pair_id'].nunique()} pairs; hack side by (source, mode): {counts}", file=sys.stderr
    )
