# Shared helpers: target lists for `rule all`, per-organism settings.

ORGANISMS = ["student"]


wildcard_constraints:
    organism="|".join(ORGANISMS),


def organism_config(name):
    """Settings of organism `name` (the student is config['organism'] as written)."""
    return config["organism"]


def all_targets():
    return [
        "results/environment/problems.parquet",
        "results/environment/selfcheck.json",
        *expand("results/organism/{organism}/base_rates.json", organism=ORGANISMS),
    ]
