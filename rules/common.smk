# Shared helpers: target lists for `rule all`, per-organism and per-run settings.

ORGANISMS = ["student", "teacher"] if config["teacher"]["model"] is None else ["student"]
ARMS = list(config["arms"])
SEEDS = [int(s) for s in config["seeds"]]
# The arms the emergence figure shows (those of them the config defines).
EMERGENCE_ARMS = ("vanilla", "vanilla_no_teacher", "rl_baseline")


wildcard_constraints:
    organism="|".join(ORGANISMS),
    arm="|".join(ARMS),
    seed=r"\d+",


def merged(base, changes):
    """`base` with `changes` applied key by key (nested mappings merged, not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def organism_config(name):
    """Settings of organism `name`: the student is config['organism'] as written; the
    teacher is the same with config['teacher']['organism'] applied."""
    if name == "teacher":
        return merged(config["organism"], config["teacher"]["organism"])
    return config["organism"]


def teacher_model():
    return config["teacher"]["model"] or "results/organism/teacher/model"


def train_settings(arm, seed):
    """The TrainConfig fields of run (arm, seed)."""
    return merged(config["train"], config["arms"][arm]) | {"seed": int(seed)}


def run_dirs(arms=ARMS):
    return expand("results/runs/{arm}/seed{seed}", arm=arms, seed=SEEDS)


def all_targets():
    return [
        "results/environment/problems.parquet",
        "results/environment/selfcheck.json",
        *expand("results/organism/{organism}/base_rates.json", organism=ORGANISMS),
        *run_dirs(),
        "results/figures/emergence.png",
    ]
