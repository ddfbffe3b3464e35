# Shared helpers: target lists for `rule all`, per-organism and per-run settings, and the
# start-up checks of everything a user gives (config values, model folders, problem file).
import os
import sys

# Jobs import the package from this checkout's src/ (what the editable install in .venv
# points at too), so each envs/*.yaml holds only its rules' third-party packages
# (snakemake --sdm conda) instead of pyproject.toml's full list via `pip install -e`.
SRC = os.path.join(workflow.basedir, "src")
if os.path.isdir(SRC) and SRC not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    # set, not required: hence no `envvars:` (the linter reads os.environ[...] as a requirement)
    os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))
if SRC not in sys.path:  # and so does this process: start-up checks and the modes come from the package
    sys.path.insert(0, SRC)

from projected_grpo.environment.modes import MODES
from projected_grpo.study.schedule import runs_in as arm_runs_in, scheduled_runs

# The student and the teacher: a local HF model folder (config <role>.model) or, when
# that is null, an organism built by rule build_organism. Base rates are measured for the
# student always and for the teacher when it is built.
ROLES = ["student", "teacher"]
MEASURED = ["student"] + (["teacher"] if config["teacher"]["model"] is None else [])
COMPUTE = config["compute"]
# Snakemake resource of the rules that run a model: one GPU unless the study runs on the CPU.
GPUS = 0 if COMPUTE["device"] == "cpu" else 1
ARMS = list(config["arms"])
SEEDS = [int(s) for s in config["seeds"]]
FOLDS = list(config["method"]["folds"])
# Basis diagnostics (the basis_diagnostics jobs) - how many natural teacher-pool hacks and correct
# completions, and how many of the base model's own samples, each fold's bases are read on.
# A leave-one-mode-out fold tests transfer only when real V separated the held-out mode's hacks
# before training (auc_student_sum at least min_held_out_auc, p < verdict.alpha; method/lomo_gate.py);
# otherwise the verdict does not read the fold and, with untestable_folds: skip, its runs are not trained.
DIAGNOSTICS = {
    "n_natural": 128,
    "n_ordinary": 1024,
    "seed": 0,
    "min_held_out_auc": 0.6,
    "untestable_folds": "skip",
} | config["method"].get("diagnostics", {})
# The policy source of V (extraction.source policy): the base student's samples per train problem.
# A refreshing arm re-reads `refresh_rows` of them, a seeded subset (policy_source.refresh_rows).
POLICY = {"n_per_problem": 32, "seed": 0, "refresh_rows": 256} | config["method"].get("policy", {})
# The oracle basis (arms with basis: oracle): seed-paired dev runs of a hacking and an honest arm.
ORACLE = {"hacking": "vanilla", "honest": "rl_baseline", "seeds": [1, 2, 3], "k": 2} | config["method"].get(
    "oracle", {}
)
# The trusted basis (arms with basis: trusted, intervention keep): k directions per module.
TRUSTED = {"k": 16} | config["method"].get("trusted", {})
SOURCE = config["method"]["extraction"].get("source", "pairs")
# The basis kinds each source extracts (rule extract_v_hack); random, dominant, trusted and oracle
# have their own rules.
SOURCE_KINDS = {"pairs": ("real", "shuffled", "nonhack"), "policy": ("real", "shuffled", "correct")}
# Random bases (rule random_basis) and the basis whose k per module and geometry each matches.
RANDOM_MATCHES = {"random": "real", "random_trusted": "trusted"}
# Keys of an arm that are not TrainConfig fields: which basis files the run reads, and
# the folds it runs in ("all", "lomo" = every without_<mode> fold; default: ["all"]).
ARM_KEYS = ("basis", "match_basis", "folds")
# The arms the emergence figure shows (those of them the config defines).
EMERGENCE_ARMS = ("vanilla", "vanilla_no_teacher", "rl_baseline")


wildcard_constraints:
    organism="|".join(ROLES),
    arm="|".join(ARMS),
    seed=r"\d+",
    fold="|".join(FOLDS),
    kind="real|shuffled|nonhack|correct|random|dominant|oracle|trusted|random_trusted",


def merged(base, changes):
    """`base` with `changes` applied key by key (nested mappings merged, not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def organism_config(name):
    """Settings of organism `name`: the student is config['organism'] as written; the
    teacher is the same with config['teacher']['organism'] applied."""
    if name == "teacher":
        return merged(config["organism"], config["teacher"]["organism"])
    return config["organism"]


def model_dir(role):
    """The folder of the student or the teacher: config[role]['model'] or its organism."""
    return config[role]["model"] or f"results/organism/{role}/model"


def student_model():
    return model_dir("student")


def teacher_model():
    return model_dir("teacher")


def known_modes(fold):
    """Modes the fold's weak detector knows: all of them, or all but the held-out one
    (fold `without_<mode>`)."""
    if fold == "all":
        return list(MODES)
    held_out = fold.removeprefix("without_")
    if not fold.startswith("without_") or held_out not in MODES:
        raise ValueError(f"config method.folds: {fold!r} is not 'all' or 'without_<mode>' (modes: {MODES})")
    return [m for m in MODES if m != held_out]


def extraction_settings():
    """ExtractConfig fields: config['method']['extraction'] with the live loss's
    temperature and max_new_tokens."""
    train = config["train"]
    return config["method"]["extraction"] | {
        "temperature": train["temperature"],
        "max_new_tokens": train["max_new_tokens"],
    }


def basis_kinds(fold):
    """The bases fold `fold` builds: real, and every basis or match_basis an arm running in
    the fold reads (their diagnostics are measured before any training)."""
    used = {
        arm_config(arm).get(key) for arm in ARMS if runs_in(arm, fold) for key in ("basis", "match_basis")
    }
    return ["real"] + sorted(kind for kind in used - {None, "real"})


def diagnosed_kinds(fold):
    """The bases of `fold` read by basis_diagnostics before any training - all but the
    oracle (which needs training runs; its overlap with each is the oracle_overlap table)."""
    return [kind for kind in basis_kinds(fold) if kind != "oracle"]


def extraction_inputs(wildcards):
    """Rule extract_v_hack's inputs: the fold's pairs of the kind (and, method gev, its
    clean-vs-clean pairs as the nuisance), or the policy samples and their gradients."""
    if SOURCE == "policy":
        return {
            "samples": "results/basis/policy_samples.parquet",
            "grads": "results/basis/policy_gradients.safetensors",
        }
    inputs = {"pairs": f"results/basis/{wildcards.fold}/pairs_{wildcards.kind}.parquet"}
    if config["method"]["extraction"].get("method", "svd") == "gev":
        inputs["nuisance"] = [f"results/basis/{wildcards.fold}/pairs_nonhack.parquet"]
    return inputs


def arm_config(arm):
    return config["arms"][arm]


def train_settings(arm, seed, fold):
    """The TrainConfig fields of run (fold, arm, seed)."""
    changes = {k: v for k, v in arm_config(arm).items() if k not in ARM_KEYS}
    run = {"seed": int(seed), "known_modes": known_modes(fold), **COMPUTE}
    return merged(config["train"], changes) | run


def gated(fold):
    """Whether fold's runs wait for its basis diagnostics and train only if real V separated the
    held-out mode's hacks (leave-one-mode-out folds under untestable_folds: skip)."""
    return fold != "all" and DIAGNOSTICS["untestable_folds"] == "skip"


def gate_diagnostics(wildcards):
    """Rule train's diagnostics input: the fold's basis diagnostics where the gate applies."""
    return [f"results/basis/{wildcards.fold}/diagnostics.csv"] if gated(wildcards.fold) else []


def gate_settings(wildcards):
    """Rule train's gate thresholds (lomo_gate.fold_gate), empty where the gate does not apply."""
    if not gated(wildcards.fold):
        return {}
    return {"min_separation": DIAGNOSTICS["min_held_out_auc"], "alpha": config["verdict"]["alpha"]}


def basis_file(arm, fold, key="basis"):
    """The basis file the arm names under `key` (list of 0 or 1 paths)."""
    kind = arm_config(arm).get(key)
    return [f"results/basis/{fold}/V_{kind}.safetensors"] if kind else []


def refreshes(arm):
    """Whether the arm re-extracts its basis during training (projection.refresh_every > 0)."""
    return bool(merged(config["train"], arm_config(arm)).get("projection", {}).get("refresh_every"))


def refresh_inputs(arm, fold):
    """The rows a refreshing arm re-extracts its basis from (check_arms: a kind extract_v_hack
    builds): the fold's pairs of that kind (source pairs) or the student's own samples
    (source policy, flagged by the fold's detector); none for an arm with a frozen basis."""
    if not refreshes(arm):
        return []
    if SOURCE == "policy":
        return ["results/basis/policy_samples.parquet"]
    return [f"results/basis/{fold}/pairs_{arm_config(arm)['basis']}.parquet"]


def refresh_settings(arm):
    """How a refreshing arm re-extracts its basis: the extraction settings and, source policy,
    the flags' kind and the fixed subset of samples (method.policy refresh_rows, seed);
    {} for an arm with a frozen basis."""
    if not refreshes(arm):
        return {}
    settings = {"extraction": extraction_settings()}
    if SOURCE == "policy":
        settings |= {
            "kind": arm_config(arm)["basis"],
            "rows": POLICY["refresh_rows"],
            "seed": POLICY["seed"],
            "control_seed": config["method"]["control_seed"],
        }
    return settings


def check_arms():
    """Arm settings that cannot work fail here, at parse time, naming the arm."""
    if "all" not in FOLDS:
        raise ValueError(f"config method.folds: must contain 'all' (got {FOLDS})")
    for arm, settings in config["arms"].items():
        projection = merged(config["train"], settings).get("projection", {})
        where = f"config arms.{arm}"
        if projection.get("intervention", "none") != "none" and not settings.get("basis"):
            raise ValueError(
                f"{where}: projection.intervention {projection['intervention']!r} needs a basis: (real, random, shuffled, "
                "nonhack, correct, dominant, oracle, trusted, random_trusted)"
            )
        kind = settings.get("basis")
        if kind in ("real", "shuffled", "nonhack", "correct") and kind not in SOURCE_KINDS[SOURCE]:
            raise ValueError(
                f"{where}: basis {kind!r} is not built by extraction.source {SOURCE} (it builds {SOURCE_KINDS[SOURCE]}, "
                "random, dominant and oracle)"
            )
        if kind == "oracle" and settings.get("folds", ["all"]) != ["all"]:
            raise ValueError(
                f"{where}: the oracle basis comes from fold-all runs; the arm runs in folds [all] only"
            )
        if kind == "oracle" and not {ORACLE["hacking"], ORACLE["honest"]} <= set(ARMS):
            raise ValueError(
                f"{where}: the oracle basis needs arms {ORACLE['hacking']!r} and {ORACLE['honest']!r} "
                "(method.oracle.hacking / honest) in config arms"
            )
        if projection.get("refresh_every") and kind not in SOURCE_KINDS[SOURCE]:
            raise ValueError(
                f"{where}: projection.refresh_every re-extracts a basis extract_v_hack builds "
                f"({', '.join(SOURCE_KINDS[SOURCE])} for extraction.source {SOURCE}); basis {kind!r} cannot be refreshed"
            )
        if projection.get("refresh_every") and config["method"]["extraction"].get("method") == "gev":
            raise ValueError(
                f"{where}: projection.refresh_every re-extracts V with method svd only (method gev is not wired "
                "into refresh)"
            )
        if bool(projection.get("match_removed")) != bool(settings.get("match_basis")):
            raise ValueError(
                f"{where}: projection.match_removed and match_basis go together (one is set without the other)"
            )


check_arms()


def runs_in(arm, fold):
    """Whether `arm` runs in `fold` (its `folds`: "all" and/or "lomo")."""
    return arm_runs_in(arm_config(arm), fold)


def check_inputs():
    """What the user gave, checked before any job: the model folders, the problem file and
    the settings the jobs will build (organism, pairs, extraction, every run's TrainConfig),
    each error naming its config key."""
    from projected_grpo.environment.problem_set import load_problem_set
    from projected_grpo.method.extraction import ExtractConfig
    from projected_grpo.organism.pretrain import OrganismConfig
    from projected_grpo.policy.loading import check_model_folder
    from projected_grpo.pool.pairs import PairsConfig
    from projected_grpo.training.train import TrainConfig

    for role in ROLES:
        if config[role]["model"] is not None:
            check_model_folder(config[role]["model"], f"config {role}.model")
        else:
            build(
                OrganismConfig.from_dict,
                organism_config(role),
                "organism" if role == "student" else "teacher.organism",
            )
    problems = build(lambda spec: load_problem_set(spec, config["bank"]), config["problems"], "problems")
    n_train = sum(p.split == "train" for p in problems)
    build(PairsConfig.from_dict, config["method"]["pairs"], "method.pairs")
    build(
        lambda raw: ExtractConfig(**raw),
        extraction_settings(),
        "method.extraction",
    )

    def check_run(settings, key):
        train = build(TrainConfig.from_dict, settings, key)
        if train.n_teacher > config["teacher"]["n_per_problem"]:
            raise ValueError(
                f"config {key}: a group draws {train.n_teacher} teacher rows per prompt (mix {train.mix} x "
                f"group_size {train.group_size}) but teacher.n_per_problem is {config['teacher']['n_per_problem']}"
            )
        if train.prompts_per_step > n_train:
            raise ValueError(
                f"config {key}: prompts_per_step {train.prompts_per_step} exceeds the {n_train} train "
                f"problems of {config['problems']}"
            )

    # `train` first, so a bad base setting is reported under its own key, not an arm's
    check_run(config["train"] | {"seed": SEEDS[0], "known_modes": list(MODES), **COMPUTE}, "train")
    for fold in FOLDS:
        for arm in ARMS:
            if runs_in(arm, fold):
                check_run(train_settings(arm, SEEDS[0], fold), f"arms.{arm}")


def build(make, settings, key):
    """make(settings), its TypeError / ValueError re-raised naming the config key."""
    try:
        return make(settings)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config {key}: {exc}") from None


# Once, in the snakemake that plans the DAG: a job it sends elsewhere (a SLURM job re-reads
# the workflow to run one rule) would repeat the same checks for ~2 s each.
if workflow.is_main_process:
    check_inputs()


def run_dirs(arms=ARMS, folds=FOLDS):
    """Run folders of every (fold, arm, seed) the config schedules among `arms` x `folds`."""
    return [f"results/{run}" for run in scheduled_runs(config, arms, folds)]


def all_targets():
    return [
        "results/environment/problems.parquet",
        "results/environment/selfcheck.json",
        *expand("results/organism/{organism}/base_rates.json", organism=MEASURED),
        *expand("results/basis/{fold}/capture_real.csv", fold=FOLDS),
        "results/tables/basis_diagnostics.md",
        *(["results/tables/oracle_overlap.md"] if "oracle" in basis_kinds("all") else []),
        *run_dirs(),
        "results/table1.md",
        "results/tables/lomo.md",
        "results/figures/arms.png",
        "results/figures/tradeoff.png",
        "results/figures/emergence.png",
    ]
