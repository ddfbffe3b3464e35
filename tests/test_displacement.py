"""The hack-ward displacement of a run's knobs along real V, and its table over runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from projected_grpo.environment.modes import MODES
from projected_grpo.method.basis import Basis
from projected_grpo.study.displacement import correlation, displacement_table, hackward_displacement, main

V = {
    "a.q_proj": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    "b.v_proj": torch.tensor([[0.0, 0.6, 0.8]]),
}


def _basis() -> Basis:
    return Basis(V, {name: torch.ones(v.shape[0]) for name, v in V.items()}, {"kind": "real"})


def test_displacement_is_minus_v0_dot_the_deployed_knobs_summed_over_modules():
    knobs = {"a.q_proj.dS": torch.tensor([-2.0, 5.0, 1.0]), "a.q_proj.dS_hack": torch.tensor([-1.0, 0.0, 0.0]),
             "b.v_proj.dS": torch.tensor([0.0, -1.0, -1.0]), "b.v_proj.dS_hack": torch.zeros(3)}  # fmt: skip
    # a: -(1, 0, 0)·(-3, 5, 1) = 3; b: -(0, .6, .8)·(0, -1, -1) = 1.4; the second axis of a is not read
    assert math.isclose(hackward_displacement(knobs, _basis()), 4.4, rel_tol=1e-6)  # float32 0.6, 0.8
    assert math.isclose(hackward_displacement(knobs, _basis(), axis=1), -5.0)  # only a has a second axis
    with pytest.raises(KeyError, match="b.v_proj.dS"):
        hackward_displacement({"a.q_proj.dS": torch.zeros(3)}, _basis())


def _run(results, arm, seed, along, hack):
    """A finished run whose knobs moved ``along`` hack-ward on a's first axis, eval hack ``hack``."""
    run = results / "runs" / "all" / arm / f"seed{seed}"
    run.mkdir(parents=True)
    save_file({"a.q_proj.dS": torch.tensor([-along, 0.0, 0.0]), "a.q_proj.dS_hack": torch.zeros(3),
               "b.v_proj.dS": torch.zeros(3), "b.v_proj.dS_hack": torch.zeros(3)}, str(run / "knobs.safetensors"))  # fmt: skip
    steps = pd.DataFrame({"step": range(3), "hack_rate_student": 0.5, "solve_rate_student": 0.3,
                          "format_ok_student": 0.9})  # fmt: skip
    for mode in MODES:
        steps[f"hack_rate_{mode}_student"] = 0.5
    steps.to_parquet(run / "steps.parquet")
    graded = [{"variant": "loophole", "mode": MODES[i % 4], "exploited": i < 8 * hack, "oracle_correct": i >= 8 * hack,
               "passed": True, "format_ok": True} | {f"attempted_{m}": i < 8 * hack for m in MODES}
              for i in range(8)]  # fmt: skip
    pd.DataFrame(graded).to_parquet(run / "eval_completions.parquet")


def test_the_table_reads_every_finished_run_and_orders_them_by_hack(tmp_path):
    _basis().save(tmp_path / "basis" / "all" / "V_real.safetensors")
    for arm, seed, along, hack in (("vanilla", 41, 3.0, 0.75), ("vanilla", 42, 2.0, 0.5), ("erase", 41, 0.0, 0.125),
                                   ("erase", 42, -1.0, 0.0)):  # fmt: skip
        _run(tmp_path, arm, seed, along, hack)
    table = displacement_table(tmp_path)
    assert list(zip(table["arm"], table["seed"])) == [
        ("erase", 41),
        ("erase", 42),
        ("vanilla", 41),
        ("vanilla", 42),
    ]
    assert table["displacement"].tolist() == [0.0, -1.0, 3.0, 2.0]
    assert table["eval_loophole_hack"].tolist() == [0.125, 0.0, 0.75, 0.5]
    assert math.isclose(correlation(table)["spearman"], 1.0)
    assert displacement_table(tmp_path, seeds=[42])["seed"].tolist() == [42, 42]
    main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "4 runs: Spearman 1.00" in (tmp_path / "out" / "displacement.md").read_text()
    assert len(pd.read_csv(tmp_path / "out" / "displacement.csv")) == 4
    assert (tmp_path / "out" / "displacement.png").stat().st_size > 0


def test_without_a_basis_or_runs_the_cli_says_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--results", str(tmp_path)])
    assert "no real V for fold 'all'" in capsys.readouterr().err
    _basis().save(tmp_path / "basis" / "all" / "V_real.safetensors")
    with pytest.raises(SystemExit):
        main(["--results", str(tmp_path)])
    assert "no finished run" in capsys.readouterr().err
