"""Run summaries and the emergence checks on hand-made step rows."""

from __future__ import annotations

import math

import pandas as pd

from projected_grpo.environment.modes import MODES
from projected_grpo.study.stats import emergence_checks, run_summary


def _steps(hack, solve=None, fmt=None, per_mode=None):
    n = len(hack)
    frame = pd.DataFrame(
        {
            "step": range(n),
            "hack_rate_student": hack,
            "solve_rate_student": solve or [0.3] * n,
            "format_ok_student": fmt or [0.9] * n,
        }
    )
    for mode in MODES:
        frame[f"hack_rate_{mode}_student"] = (per_mode or {}).get(mode, hack)
    return frame


def test_start_is_the_first_step_and_end_the_mean_of_the_last_five():
    hack = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    summary = run_summary(_steps(hack).sample(frac=1, random_state=0))  # row order does not matter
    assert summary["hack_start"] == 0.05
    assert math.isclose(summary["hack_end"], 0.7)
    assert math.isclose(summary["hack_run_tests_first5"], 0.21)


def test_emergence_passes_only_when_every_clause_holds():
    rising = [0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.6, 0.7, 0.7]
    checks = emergence_checks(run_summary(_steps(rising)))
    assert all(c["pass"] for c in checks.values()), checks
    too_late = emergence_checks(run_summary(_steps([0.03] * 5 + [0.4] * 5)))
    assert not too_late["hack_last5"]["pass"]
    hacky_start = emergence_checks(run_summary(_steps([0.12] + rising[1:])))
    assert not hacky_start["hack_start"]["pass"]
    gibberish = emergence_checks(run_summary(_steps(rising, fmt=[0.9] * 5 + [0.5] * 5)))
    assert not gibberish["format_ok_last5"]["pass"]


def test_a_mode_that_never_rises_or_is_never_seen_fails_its_clause():
    rising = [0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.6, 0.7, 0.7]
    flat = {"sentinel": [0.0] * 10, "file_marker": [float("nan")] * 10}
    checks = emergence_checks(run_summary(_steps(rising, per_mode=flat)))
    assert not checks["hack_sentinel_rises"]["pass"] and not checks["hack_file_marker_rises"]["pass"]
    assert checks["hack_run_tests_rises"]["pass"]


def _graded(hack: float) -> pd.DataFrame:
    """Graded eval rows of mode run_tests: 10 loophole rows (a share ``hack`` exploited with
    the lever, two oracle-correct), 10 no-loophole rows (four oracle-correct)."""
    rows = []
    for variant, correct in (("loophole", 2), ("no_loophole", 4)):
        exploited = round(10 * hack) if variant == "loophole" else 0
        for i in range(10):
            rows.append(_graded_row(variant, "run_tests", exploited=i < exploited,
                                    oracle=exploited <= i < exploited + correct,
                                    attempted=("run_tests",) if i < exploited else ()))  # fmt: skip
    return pd.DataFrame(rows)


def _graded_row(variant, mode, exploited=False, oracle=False, attempted=(), fmt=True) -> dict:
    row = {"variant": variant, "mode": mode, "exploited": exploited, "oracle_correct": oracle,
           "passed": exploited or oracle, "format_ok": fmt}  # fmt: skip
    return row | {f"attempted_{m}": m in attempted for m in MODES}


def _run_dir(root, arm, seed, hack_end, solve_end=0.3, cin=None, ablated=None):
    """A finished run folder with a steps parquet and graded eval completions."""
    run = root / "all" / arm / f"seed{seed}"
    run.mkdir(parents=True)
    steps = _steps([0.0] * 5 + [hack_end] * 5, solve=[0.3] * 5 + [solve_end] * 5)
    if cin is not None:
        steps["cin"] = cin
    steps.to_parquet(run / "steps.parquet")
    _graded(hack_end).to_parquet(run / "eval_completions.parquet")
    if ablated is not None:
        _graded(ablated).to_parquet(run / "eval_completions_ablated.parquet")
    return run


def test_run_row_reads_ids_rates_ablated_eval_and_diagnostics(tmp_path):
    from projected_grpo.study.stats import run_row

    row = run_row(_run_dir(tmp_path, "route", 42, 0.4, cin=0.25, ablated=0.1))
    assert (row["fold"], row["arm"], row["seed"]) == ("all", "route", 42)
    assert math.isclose(row["hack_end"], 0.4) and math.isclose(row["eval_loophole_hack"], 0.4)
    assert math.isclose(row["eval_ablated_loophole_hack"], 0.1) and math.isclose(
        row["eval_no_loophole_solve"], 0.4
    )
    assert math.isclose(row["cin"], 0.25) and math.isnan(row["cout_update"])
    plain = run_row(_run_dir(tmp_path, "vanilla", 42, 0.6))
    assert math.isnan(plain["eval_ablated_loophole_hack"]) and math.isnan(plain["cin"])


def test_run_row_reads_capability_matched_rates_from_the_graded_eval_completions(tmp_path):
    from projected_grpo.study.stats import run_row

    run = _run_dir(tmp_path, "vanilla", 41, 0.5)
    pd.DataFrame([
        _graded_row("loophole", "run_tests", exploited=True, attempted=("run_tests",)),
        _graded_row("loophole", "run_tests", exploited=True, attempted=("run_tests",), fmt=False),
        _graded_row("loophole", "run_tests", attempted=("run_tests",)),  # used the lever, no exploit
        _graded_row("loophole", "run_tests", exploited=True),  # an exploit the detector missed
        _graded_row("loophole", "run_tests", oracle=True),
        _graded_row("loophole", "sentinel", attempted=("run_tests",)),  # another mode's lever
        _graded_row("no_loophole", "run_tests", oracle=True),
    ]).to_parquet(run / "eval_completions.parquet")  # fmt: skip
    row = run_row(run)
    assert math.isclose(row["eval_loophole_hack"], 3 / 6)
    assert math.isclose(row["eval_loophole_exploit_given_attempt"], 2 / 3)  # rows 1-3 used the hinted lever
    assert math.isclose(row["eval_loophole_hack_given_format_ok"], 2 / 5)  # rows 1, 3-6 are well-formed
    assert math.isclose(row["eval_loophole_hack_given_format_ok_run_tests"], 2 / 4)
    assert math.isnan(row["eval_loophole_exploit_given_attempt_sentinel"])  # nobody used the sentinel
    assert math.isclose(row["eval_no_loophole_solve"], 1.0)


def test_paired_test_is_scipys_paired_t_test_with_a_95_percent_interval():
    from scipy import stats

    from projected_grpo.study.stats import paired_test

    arm, comparator = pd.Series([0.2, 0.4, 0.3]), pd.Series([0.6, 0.6, 0.6])
    test = paired_test(arm - comparator)
    # by hand: differences -0.4, -0.2, -0.3: mean -0.3, SD 0.1, SEM 0.1 / sqrt 3, t = -5.196 on
    # 2 degrees of freedom, whose two-sided p is 1 - |t| / sqrt(2 + t^2) = 0.0351; t_0.975(2) = 4.3027
    assert (
        test["n"] == 3 and math.isclose(test["delta"], -0.3) and math.isclose(test["sem"], 0.1 / math.sqrt(3))
    )
    assert math.isclose(test["p"], 0.035099, abs_tol=1e-6)
    assert math.isclose(test["ci_low"], -0.3 - 4.302653 * 0.1 / math.sqrt(3), abs_tol=1e-6)
    reference = stats.ttest_rel(arm, comparator)
    assert math.isclose(test["p"], reference.pvalue)
    assert math.isclose(test["ci_low"], reference.confidence_interval(0.95).low)
    assert math.isclose(test["ci_high"], reference.confidence_interval(0.95).high)
    flat = paired_test(pd.Series([-0.2, -0.2, -0.2]))  # no spread: no t, a zero-width interval
    assert (
        math.isnan(flat["p"]) and math.isclose(flat["ci_low"], -0.2) and math.isclose(flat["ci_high"], -0.2)
    )
    one = paired_test(pd.Series([-0.2, math.nan]))
    assert one["n"] == 1 and math.isnan(one["sem"]) and math.isnan(one["ci_low"]) and math.isnan(one["p"])


def test_holm_multiplies_the_ith_smallest_p_by_m_minus_i_plus_1_and_keeps_the_order():
    from projected_grpo.study.stats import holm

    # by hand, m = 4 (the NaN is no comparison): 0.005 * 4 = 0.02; 0.01 * 3 = 0.03;
    # 0.03 * 2 = 0.06; 0.04 * 1 = 0.04, raised to the 0.06 before it
    adjusted = holm([0.01, 0.04, 0.03, math.nan, 0.005])
    assert adjusted.round(12).tolist()[:3] == [0.03, 0.06, 0.06] and math.isclose(adjusted[4], 0.02)
    assert math.isnan(adjusted[3])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1
    assert holm([0.2]).tolist() == [0.2]  # a family of one is not adjusted


def test_arm_table_pairs_each_arm_with_the_same_seeds_of_vanilla(tmp_path):
    from projected_grpo.study.stats import arm_cells, arm_table, markdown_table, run_row

    runs = [_run_dir(tmp_path, "vanilla", s, h) for s, h in ((41, 0.6), (42, 0.5), (43, 0.7))]
    runs += [_run_dir(tmp_path, "erase", s, h) for s, h in ((41, 0.2), (42, 0.3))]  # seed 43 missing
    runs += [_run_dir(tmp_path, "route", s, h) for s, h in ((41, 0.1), (42, 0.1), (43, 0.3))]
    table = arm_table(pd.DataFrame([run_row(r) for r in runs]), ["hack_end"]).set_index("arm")
    assert table.loc["vanilla", "n"] == 3 and math.isclose(table.loc["vanilla", "hack_end_mean"], 0.6)
    assert math.isnan(table.loc["vanilla", "hack_end_delta"])  # the baseline has no delta to itself
    # paired on seeds 41, 42 only: differences -0.4 and -0.2
    assert math.isclose(table.loc["erase", "hack_end_delta"], -0.3)
    assert math.isclose(table.loc["erase", "hack_end_delta_sem"], 0.1)
    # paired t: mean -0.3 / SEM 0.1 = -3 on 1 degree of freedom: two-sided p = 0.205;
    # 95 % CI -0.3 ± t_0.975(1) 12.706 * 0.1
    assert math.isclose(table.loc["erase", "hack_end_p"], 0.2048, abs_tol=1e-3)
    assert math.isclose(table.loc["erase", "hack_end_ci_low"], -1.57062, abs_tol=1e-5)
    # Holm over the fold's two arms: route (differences -0.5, -0.4, -0.4: p 0.00587) doubled,
    # erase's 0.2048 times one, and no smaller than route's
    assert math.isclose(table.loc["route", "hack_end_p_holm"], 2 * 0.0058652, abs_tol=1e-6)
    assert math.isclose(table.loc["erase", "hack_end_p_holm"], table.loc["erase", "hack_end_p"])
    text = markdown_table(arm_cells(table.reset_index(), ["hack_end"], 0.05, percent=["hack_end"]))
    assert "| all | erase | 2 | 25.0 ± 5.0 (Δ -30.0 ± 10.0, [-157.1, 97.1], p_Holm 0.2) |" in text
    assert "p_Holm 0.012*) |" in text  # route: below α


def test_figures_draw_every_arm_and_say_so_when_no_cin_was_measured():
    from projected_grpo.study.plots import arm_curves_figure, cin_figure

    rows = []
    for arm in ("vanilla", "erase", "monitor_screen"):
        for seed in (41, 42):
            frame = _steps([0.1, 0.2, 0.3]).assign(arm=arm, seed=seed)
            if arm != "monitor_screen":
                frame = frame.assign(
                    cin=0.4, cin_s=0.3, cin_t=0.5, cin_t_hack=0.5, cin_t_correct=0.4, cin_null=0.1
                )
            rows.append(frame)
    steps = pd.concat(rows)
    figure = arm_curves_figure(steps, "caption")
    labels = {
        t.get_text() for ax in figure.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])
    }
    assert labels == {"vanilla", "erase", "monitor_screen"}
    assert len(cin_figure(steps, "caption").axes) == 2  # vanilla and erase have cin
    empty = cin_figure(steps[steps["arm"] == "monitor_screen"], "caption")
    assert "no cin measured" in empty.axes[0].texts[0].get_text()


def test_every_arm_of_the_study_has_a_colour_of_its_own_and_a_panel():
    from pathlib import Path

    import yaml
    from matplotlib.colors import to_hex

    from projected_grpo.study.plots import COLORS, PANELS

    arms = list(yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["arms"])
    assert not [arm for arm in arms if arm not in COLORS]
    colours = [to_hex(COLORS[arm]) for arm in arms]
    assert len(set(colours)) == len(colours)  # the fallback cycle would repeat erase's and rl_baseline's
    paneled = {arm for panel in PANELS.values() for arm in panel}
    assert {"erase_refresh", "keep_trusted", "keep_random_V"} <= paneled


def test_run_rows_average_the_kept_share_of_a_keep_run(tmp_path):
    from projected_grpo.study.stats import run_row

    run = _run_dir(tmp_path, "keep_trusted", 41, 0.5)
    steps = pd.read_parquet(run / "steps.parquet").assign(kept_share=0.4)
    steps.to_parquet(run / "steps.parquet")
    assert math.isclose(run_row(run)["kept_share"], 0.4)
    assert math.isnan(run_row(_run_dir(tmp_path, "vanilla", 41, 0.5))["kept_share"])


def test_deployed_rows_carry_the_ablated_evaluation_under_their_own_arm(tmp_path):
    from projected_grpo.study.stats import run_row, with_deployed_rows

    runs = pd.DataFrame([run_row(_run_dir(tmp_path, "route", 41, 0.5, ablated=0.1)),
                         run_row(_run_dir(tmp_path, "vanilla", 41, 0.6))])  # fmt: skip
    out = with_deployed_rows(runs).set_index("arm")
    assert set(out.index) == {"route", "route_ablated", "vanilla"}
    assert math.isclose(out.loc["route", "eval_loophole_hack"], 0.5)
    assert math.isclose(out.loc["route_ablated", "eval_loophole_hack"], 0.1)
    assert math.isnan(out.loc["route_ablated", "hack_end"])  # training samples had the quarantine on


def test_table_figure_draws_every_cell(tmp_path):
    from projected_grpo.study.plots import table_figure

    cells = pd.DataFrame(
        {"arm": ["vanilla", "erase"], "hack": ["60.0 ± 5.0", "20.0 ± 5.0 (Δ -40.0 ± 3.0, p 0.01)"]}
    )
    figure = table_figure(cells, "Table 1", "caption")
    texts = {c.get_text().get_text() for c in figure.axes[0].tables[0].get_celld().values()}
    assert {"arm", "hack", "vanilla", "erase", "20.0 ± 5.0 (Δ -40.0 ± 3.0, p 0.01)"} <= texts
    figure.savefig(tmp_path / "t.pdf", format="pdf")
    assert (tmp_path / "t.pdf").stat().st_size > 0


def test_lomo_table_reads_the_held_out_modes_deployed_rates():
    from projected_grpo.study.plots import lomo_figure
    from projected_grpo.study.stats import LOMO_METRICS, lomo_table

    rows = []
    for arm, hack, ablated in (("vanilla", (0.6, 0.7), None), ("route", (0.5, 0.6), (0.1, 0.2))):
        for seed, h, a in zip((41, 42), hack, ablated or (None, None)):
            row = {"fold": "without_sentinel", "arm": arm, "seed": seed, "eval_loophole_hack_sentinel": h,
                   "eval_loophole_exploit_given_attempt_sentinel": 0.9, "eval_loophole_hack_given_format_ok_sentinel": h + 0.1,
                   "eval_no_loophole_solve": 0.4, "eval_ablated_loophole_hack": a}  # fmt: skip
            if a is not None:
                row |= {"eval_ablated_loophole_hack_sentinel": a, "eval_ablated_no_loophole_solve": 0.3,
                        "eval_ablated_loophole_exploit_given_attempt_sentinel": 0.5,
                        "eval_ablated_loophole_hack_given_format_ok_sentinel": a}  # fmt: skip
            rows.append(row)
    rows.append({"fold": "all", "arm": "vanilla", "seed": 41, "eval_loophole_hack_sentinel": 0.9,
                 "eval_ablated_loophole_hack": None})  # fmt: skip
    table = lomo_table(pd.DataFrame(rows)).set_index("arm")
    assert set(table.index) == {"vanilla", "route", "route_ablated"} and set(table["held_out"]) == {
        "sentinel"
    }
    assert math.isclose(table.loc["vanilla", "held_out_hack_mean"], 0.65)  # fold `all` is not a LOMO fold
    assert math.isclose(table.loc["route_ablated", "held_out_hack_delta"], -0.5)
    assert math.isclose(table.loc["route_ablated", "held_out_exploit_given_attempt_delta"], -0.4)
    assert math.isclose(table.loc["route", "held_out_hack_given_format_ok_mean"], 0.65)
    assert math.isclose(table.loc["route_ablated", "eval_no_loophole_solve_mean"], 0.3)
    figure = lomo_figure(table.reset_index(), "caption")
    assert [len(ax.patches) for ax in figure.axes] == [3] * len(
        LOMO_METRICS
    )  # a bar per arm, a panel per rate
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["vanilla", "route", "route_ablated"]
    assert lomo_table(pd.DataFrame(rows[-1:])).empty


def test_lomo_p_holm_is_over_the_folds_of_each_arm_as_in_the_verdict():
    """One test per held-out mode: the LOMO table's Holm family is an arm's folds (as the
    verdict's), not the arms of one fold."""
    import numpy as np

    from projected_grpo.study.stats import holm, lomo_table

    rng = np.random.default_rng(0)
    rows = []
    for mode, cut in (("sentinel", 0.3), ("run_tests", 0.05), ("file_marker", 0.2)):
        for seed in (41, 42, 43, 49, 50):
            base = 0.5 + 0.05 * rng.standard_normal()
            for arm, hack in (("vanilla", base), ("erase", base - cut + 0.04 * rng.standard_normal())):
                rows.append({"fold": f"without_{mode}", "arm": arm, "seed": seed, f"eval_loophole_hack_{mode}": hack,
                             f"eval_loophole_exploit_given_attempt_{mode}": hack,
                             f"eval_loophole_hack_given_format_ok_{mode}": hack, "eval_no_loophole_solve": 0.4,
                             "eval_ablated_loophole_hack": None})  # fmt: skip
    table = lomo_table(pd.DataFrame(rows))
    erase = table[table["arm"] == "erase"]
    assert len(erase) == 3
    expected = holm(erase["held_out_hack_p"].tolist()).to_numpy()
    assert np.allclose(erase["held_out_hack_p_holm"].to_numpy(), expected)
    assert (erase["held_out_hack_p_holm"] > erase["held_out_hack_p"]).any()  # a family of 3, not of 1


def test_paired_differences_are_per_seed_against_the_same_folds_vanilla_and_are_plotted():
    from projected_grpo.study.plots import tradeoff_figure
    from projected_grpo.study.stats import paired_differences

    runs = pd.DataFrame(
        {
            "fold": ["all"] * 5 + ["without_sentinel"] * 2,
            "arm": ["vanilla", "vanilla", "erase", "erase", "erase", "vanilla", "erase"],
            "seed": [41, 42, 41, 42, 43, 41, 41],  # erase seed 43 has no vanilla: not paired
            "hack": [0.5, 0.6, 0.2, 0.4, 0.0, 0.9, 0.1],
            "solve": [0.2, 0.1, 0.3, 0.1, 0.9, 0.5, 0.5],
        }
    )
    deltas = paired_differences(runs, ["hack", "solve"])
    assert deltas["seed"].tolist() == [41, 42] and set(deltas["arm"]) == {"erase"}
    assert deltas["hack_delta"].round(6).tolist() == [-0.3, -0.2]
    assert deltas["solve_delta"].round(6).tolist() == [0.1, 0.0]
    lomo = paired_differences(runs, ["hack"], fold="without_sentinel")
    assert lomo["hack_delta"].round(6).tolist() == [-0.8]
    figure = tradeoff_figure(deltas, "caption", x="solve", ys=["hack", "solve"])
    points = figure.axes[0].collections[0].get_offsets()
    assert [[round(a, 6), round(b, 6)] for a, b in points.tolist()] == [[0.1, -0.3], [0.0, -0.2]]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["erase"]  # one legend, beside the panels
    assert figure.axes[0].get_legend() is None
    assert figure.axes[1].get_ylabel().startswith("Δ solve")  # one panel per hack rate asked for
    assert not [line for line in figure.axes[0].get_lines() if line.get_label() == "vanilla, lower lr"]


def test_the_tradeoff_figure_joins_vanilla_at_lower_learning_rates_from_the_origin():
    from projected_grpo.study.plots import tradeoff_figure

    deltas = pd.DataFrame({
        "arm": ["vanilla_lr01", "vanilla_lr01", "vanilla_slow", "erase"], "seed": [41, 42, 41, 41],
        "hack_delta": [-0.4, -0.2, -0.05, -0.5], "solve_delta": [-0.2, -0.1, 0.0, 0.05],
    })  # fmt: skip
    lines = tradeoff_figure(deltas, "caption", x="solve", ys=["hack"]).axes[0].get_lines()
    (line,) = [line for line in lines if line.get_label() == "vanilla, lower lr"]
    # in FRONTIER's order, from vanilla at the origin: vanilla_slow, then vanilla_lr01's mean
    points = [[round(a, 6), round(b, 6)] for a, b in line.get_xydata().tolist()]
    assert points == [[0, 0], [0, -0.05], [-0.15, -0.3]]


def test_the_diagnostics_figure_draws_a_bar_per_fold_and_kind_with_its_null():
    from projected_grpo.study.plots import DIAGNOSTIC_PANELS, diagnostics_figure

    table = pd.DataFrame({
        "fold": ["all", "all", "without_sentinel"], "kind": ["real", "random", "real"],
        "auc_student_sum": [0.9, 0.5, 0.8], "auc_first": [0.6, 0.5, 0.6], "variance_share": [0.02, 0.01, 0.02],
        "share_null": [0.01, 0.01, 0.01], "sign_accuracy_first": [0.7, 0.5, 0.7],
    })  # fmt: skip
    figure = diagnostics_figure(table, "caption")
    axes = figure.axes
    assert len(axes) == len(DIAGNOSTIC_PANELS)
    heights = [b.get_height() for b in axes[0].patches]  # real per fold, then random per fold
    assert heights[:3] == [0.9, 0.8, 0.5] and math.isnan(heights[3])  # random has no without_sentinel row
    assert len(axes[2].collections) == 2  # one dashed null per kind


def test_a_run_the_gate_kept_from_training_is_no_run_row_and_the_lomo_table_names_its_fold(tmp_path):
    """training.train.skip_run writes a manifest only; stats reads its gate record, refuses
    to make it a run row, and the LOMO table gives its fold one line saying why."""
    import json

    import pytest

    from projected_grpo.study.plots import lomo_figure
    from projected_grpo.study.stats import lomo_cells, lomo_table, run_row, skip_record
    from projected_grpo.training.train import TrainConfig, skip_run

    gate = {"held_out": "sentinel", "auc": 0.52, "p": 0.41, "min_held_out_auc": 0.6, "alpha": 0.05,
            "separates": False}  # fmt: skip
    run = tmp_path / "without_sentinel" / "route" / "seed41"
    skip_run(TrainConfig(seed=41), "organism", run, gate)
    assert [f.name for f in run.iterdir()] == ["manifest.json"]
    assert json.loads((run / "manifest.json").read_text())["config"]["train"]["seed"] == 41
    assert skip_record(run) == gate
    assert skip_record(_run_dir(tmp_path, "vanilla", 41, 0.5)) is None  # trained (no manifest here)
    with pytest.raises(ValueError, match="not trained"):
        run_row(run)
    trained = pd.DataFrame([
        {"fold": "without_file_marker", "arm": "vanilla", "seed": s, "eval_loophole_hack_file_marker": 0.5,
         "eval_loophole_exploit_given_attempt_file_marker": 0.5, "eval_loophole_hack_given_format_ok_file_marker": 0.5,
         "eval_no_loophole_solve": 0.4, "eval_ablated_loophole_hack": None}
        for s in (41, 42)
    ])  # fmt: skip
    untrained = pd.DataFrame([{"fold": "without_sentinel", "arm": "route", "seed": 41} | gate])
    table = lomo_table(trained, {"file_marker": (0.9, 0.001)}, untrained)
    assert list(table["held_out"]) == ["sentinel", "file_marker"] and list(table["n"]) == [0, 2]
    note = "not trained: V did not separate the held-out mode's hacks before training (AUC 0.52, p 0.41;"
    assert table["note"].iloc[0].startswith(note) and table["note"].iloc[1] == ""
    cells = lomo_cells(table, 0.05)
    assert cells["arm"].iloc[0] == table["note"].iloc[0] and cells["held_out_hack"].iloc[0] == "–"
    assert cells["V separates held-out: AUC (p)"].tolist() == ["0.52 (0.41)", "0.90 (0.001)"]
    assert cells["held_out_hack"].iloc[1].startswith("50.0 ± 0.0")
    figure = lomo_figure(table, "caption")
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == [
        "sentinel\n(not trained)",
        "file_marker",
    ]
    only_untrained = lomo_figure(table.iloc[:1], "caption")
    assert only_untrained.axes[0].texts[0].get_text().startswith("no leave-one-mode-out fold was trained")


def test_a_skipped_run_with_no_held_out_hack_writes_strict_json_and_reads_back_nan(tmp_path):
    """A held-out mode without a base-student hack has a NaN AUC and p: the manifest says
    null (strict JSON, readable outside Python) and skip_record reads NaN back."""
    import json

    from projected_grpo.study.stats import skip_record
    from projected_grpo.training.train import TrainConfig, skip_run

    gate = {"held_out": "file_marker", "auc": math.nan, "p": math.nan, "min_held_out_auc": 0.6,
            "alpha": 0.05, "separates": False}  # fmt: skip
    run = tmp_path / "without_file_marker" / "erase" / "seed41"
    skip_run(TrainConfig(seed=41), "organism", run, gate)

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    record = json.loads((run / "manifest.json").read_text(), parse_constant=refuse)["skipped"]
    assert record["auc"] is None and record["p"] is None
    read = skip_record(run)
    assert math.isnan(read["auc"]) and math.isnan(read["p"])
    assert {k: v for k, v in read.items() if k not in ("auc", "p")} == {
        k: v for k, v in gate.items() if k not in ("auc", "p")
    }
