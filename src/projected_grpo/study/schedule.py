"""Which runs a study config schedules: every (fold, arm, seed) of its arms, folds and seeds.

Read by the workflow as it plans (rules/common.smk: ``run_dirs``) and by ``pgrpo-aggregate``
(which of them have finished); light on imports, since every Snakemake start reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def runs_in(arm: Mapping, fold: str) -> bool:
    """Whether an arm (its config mapping) runs in ``fold``: fold ``all`` when its ``folds``
    (default ``[all]``) name it, every ``without_<mode>`` fold when they name ``lomo``."""
    return ("all" if fold == "all" else "lomo") in arm.get("folds", ["all"])


def scheduled_runs(
    config: Mapping, arms: Sequence[str] | None = None, folds: Sequence[str] | None = None
) -> list[str]:
    """``runs/{fold}/{arm}/seed{seed}`` of every run ``config`` schedules among ``arms`` x
    ``folds`` (default: all of them, ``method.folds``), in that order."""
    arms = list(config["arms"]) if arms is None else arms
    folds = list(config["method"]["folds"]) if folds is None else folds
    return [
        f"runs/{fold}/{arm}/seed{int(seed)}"
        for fold in folds
        for arm in arms
        if runs_in(config["arms"][arm], fold)
        for seed in config["seeds"]
    ]
