"""Rule extract_v_hack: V of one kind on the student, from the fold's pairs (source pairs)
or from the student's own flagged samples (source policy; method/policy_source.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.core.io import atomic_write_parquet, read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.method import policy_source
from projected_grpo.method.basis import basis_table, model_hash
from projected_grpo.method.extraction import ExtractConfig, extract_basis, split_by_problem
from projected_grpo.policy.loading import load_model

torch.set_num_threads(snakemake.threads)
config = ExtractConfig(**snakemake.params.extraction)
kind, fold = snakemake.wildcards.kind, snakemake.wildcards.fold
meta = {"kind": kind, "fold": fold, "model_hash": model_hash(snakemake.input.model)}

if config.source == "policy":
    samples = read_parquet(snakemake.input.samples, "policy samples")
    grads = policy_source.load_gradients(snakemake.input.grads)
    policy_source.check_samples(samples, grads)
    flags = policy_source.flags_of(kind, samples, snakemake.params.known_modes, snakemake.params.control_seed)
    advantages = policy_source.group_advantages(flags, policy_source.group_codes(samples))
    meta |= {"settings": config.to_json(), "n_samples": str(len(samples)), "n_flagged": str(int(flags.sum()))}
    basis = policy_source.policy_basis(grads, advantages, policy_source.scales(grads, config.geometry), meta)
else:
    tokenizer, model = load_model(
        snakemake.input.model,
        **snakemake.params.compute,
        adapter_targets=snakemake.params.adapter_targets,
        svd_cache=snakemake.params.svd_cache,
    )
    pairs = read_parquet(snakemake.input.pairs, "pairs file")
    nuisance_file = snakemake.input.get("nuisance")
    nuisance = read_parquet(nuisance_file[0], "nuisance pairs file") if nuisance_file else None
    if nuisance is not None and kind == "nonhack":  # its own pairs are the nuisance: split
        pairs, nuisance = split_by_problem(pairs)
    problems = load_problems(snakemake.input.problems)
    basis = extract_basis(model, tokenizer, pairs, problems, config, meta, nuisance_pairs=nuisance)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)
print(
    f"V ({kind}, fold {fold}): {len(basis.vectors)} modules, {sum(basis.ranks.values())} axes",
    file=sys.stderr,
)
