# Shared helpers: target lists for `rule all`.


def all_targets():
    return [
        "results/environment/problems.parquet",
        "results/environment/selfcheck.json",
    ]
