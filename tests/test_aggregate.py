"""The aggregate outputs from run folders: a run the leave-one-mode-out gate kept from
training is no row of the summary, the LOMO table names its fold, the verdict does not read it."""

from __future__ import annotations

import json

import pandas as pd

from projected_grpo.environment.modes import MODES
from projected_grpo.study.aggregate import AGGREGATE_OUTPUTS, write_aggregate
from projected_grpo.training.train import TrainConfig, skip_run

TRAIN = {"steps": 10, "prompts_per_step": 2, "group_size": 4}


def _trained_run(root, fold, arm, seed, hack):
    """A finished run folder: steps, graded eval completions (hack rate ``hack``), manifest."""
    run = root / "runs" / fold / arm / f"seed{seed}"
    run.mkdir(parents=True)
    steps = pd.DataFrame({"step": range(10), "hack_rate_student": hack, "solve_rate_student": 0.3,
                          "format_ok_student": 0.9})  # fmt: skip
    for mode in MODES:
        steps[f"hack_rate_{mode}_student"] = hack
    steps.to_parquet(run / "steps.parquet")
    graded = [
        {"variant": variant, "mode": MODES[i % 4], "exploited": exploited, "oracle_correct": not exploited,
         "passed": True, "format_ok": True} | {f"attempted_{m}": exploited for m in MODES}
        for variant in ("loophole", "no_loophole")
        for i in range(8)
        for exploited in [variant == "loophole" and i < 8 * hack]
    ]  # fmt: skip
    pd.DataFrame(graded).to_parquet(run / "eval_completions.parquet")
    (run / "manifest.json").write_text(json.dumps({"config": {"train": TRAIN}}))
    return run


def test_a_fold_the_gate_kept_from_training_is_named_in_the_lomo_table_not_summarised(tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "organism.json").write_text(json.dumps({"parameters": 1000}))
    runs = [_trained_run(tmp_path, "all", arm, seed, hack)
            for arm, hack in (("vanilla", 0.75), ("route", 0.25)) for seed in (41, 42)]  # fmt: skip
    gate = {"held_out": "sentinel", "auc": 0.52, "p": 0.41, "min_held_out_auc": 0.6, "alpha": 0.05,
            "separates": False}  # fmt: skip
    for arm in ("vanilla", "route"):
        for seed in (41, 42):
            run = tmp_path / "runs" / "without_sentinel" / arm / f"seed{seed}"
            skip_run(TrainConfig(seed=seed), student, run, gate)
            runs.append(run)
    diagnostics = tmp_path / "diagnostics.csv"
    pd.DataFrame({"fold": ["all", "without_sentinel"], "kind": ["real", "real"], "auc_student_sum": [0.9, 0.52],
                  "student_hacks": [40, 3], "student_rest": [400, 30]}).to_csv(diagnostics, index=False)  # fmt: skip
    outputs = {key: tmp_path / "out" / path for key, path in AGGREGATE_OUTPUTS.items()}
    verdict = write_aggregate(runs, student, diagnostics, "", outputs, alpha=0.05, min_separation=0.6)

    summary = pd.read_parquet(outputs["summary"])
    assert set(summary["fold"]) == {"all"} and len(summary) == 4
    lomo = outputs["lomo_md"].read_text()
    assert (
        "| sentinel | 0.52 (0.41) | without_sentinel | not trained: V did not separate the held-out mode's "
        "hacks before training (AUC 0.52, p 0.41; needs >= 0.6 and p < 0.05) | 0 | – | – | – | – |"
    ) in lomo
    assert pd.read_csv(outputs["lomo_csv"])["note"].str.startswith("not trained").all()
    held_out = verdict[verdict["clause"].str.startswith("held-out sentinel")]
    assert len(held_out) and set(held_out["status"]) == {"NOT EVALUABLE"}
    assert held_out["rule"].str.contains("not trained").all()
