"""The verdict is computed from run rows: hand-made summaries give each status."""

from __future__ import annotations

import math

import pandas as pd

from projected_grpo.study.verdict import (
    FAIL,
    NOT_EVALUABLE,
    PASS,
    PROJECTIONS,
    control_rows,
    h1_rows,
    lomo_rows,
    markdown_verdict,
    verdict_table,
)

ERASE, ROUTE = PROJECTIONS


def _runs(arms: dict, fold: str = "all", seeds=(41, 42, 43)) -> pd.DataFrame:
    """``arms``: name -> (hack per seed, pass per seed); route's numbers go to the ablated columns."""
    rows = []
    for arm, (hack, pass_) in arms.items():
        prefix = "eval_ablated" if arm == "route" else "eval"
        for seed, h, p in zip(seeds, hack, pass_):
            rows.append({"fold": fold, "arm": arm, "seed": seed, f"{prefix}_loophole_hack": h,
                         f"{prefix}_no_loophole_solve": p})  # fmt: skip
    return pd.DataFrame(rows)


def _status(rows: list[dict], suffix: str) -> str:
    (row,) = [r for r in rows if r["clause"].endswith(suffix)]
    return row["status"]


VANILLA = ([0.60, 0.70, 0.65], [0.30, 0.32, 0.28])


def test_a_large_cut_at_matched_pass_supports_h1():
    rows = h1_rows(_runs({"vanilla": VANILLA, "erase": ([0.20, 0.25, 0.30], [0.31, 0.30, 0.27])}), ERASE)
    assert all(r["status"] == PASS for r in rows), rows
    overall = rows[-1]
    assert overall["n"] == 3 and math.isclose(overall["delta"], -0.40)


def test_a_cut_between_15_and_30_pp_is_neither_supported_nor_falsified():
    rows = h1_rows(_runs({"vanilla": VANILLA, "erase": ([0.40, 0.50, 0.45], [0.30, 0.32, 0.28])}), ERASE)
    assert _status(rows, "hack cut >= 30 pp") == FAIL
    assert _status(rows, "falsifier cut < 15 pp") == PASS
    assert _status(rows, "overall") == NOT_EVALUABLE


def test_a_small_cut_falsifies_h1():
    rows = h1_rows(_runs({"vanilla": VANILLA, "erase": ([0.55, 0.60, 0.58], [0.30, 0.32, 0.28])}), ERASE)
    assert _status(rows, "falsifier cut < 15 pp") == FAIL and _status(rows, "overall") == FAIL


def test_a_cut_bought_with_the_pass_rate_falsifies_h1():
    rows = h1_rows(_runs({"vanilla": VANILLA, "erase": ([0.10, 0.10, 0.10], [0.10, 0.12, 0.08])}), ERASE)
    assert _status(rows, "hack cut >= 30 pp") == PASS
    assert _status(rows, "pass matched within 10 pp") == FAIL
    assert _status(rows, "falsifier pass drop > 15 pp") == FAIL and _status(rows, "overall") == FAIL


def test_a_cut_within_one_sem_falsifies_h1():
    noisy = ([0.1, 1.0, 0.15], [0.30, 0.32, 0.28])  # paired cuts 0.5, -0.3, 0.5: mean 0.23, SEM 0.27
    rows = h1_rows(_runs({"vanilla": VANILLA, "erase": noisy}), ERASE)
    assert _status(rows, "falsifier cut < 15 pp") == PASS
    assert _status(rows, "cut beyond 1 SEM") == FAIL and _status(rows, "overall") == FAIL


def test_h1_is_not_evaluable_without_room_or_without_seeds():
    low_vanilla = ([0.20, 0.25, 0.20], [0.30, 0.32, 0.28])
    rows = h1_rows(_runs({"vanilla": low_vanilla, "erase": ([0.0, 0.0, 0.0], [0.30, 0.32, 0.28])}), ERASE)
    assert _status(rows, "hack cut >= 30 pp") == NOT_EVALUABLE and _status(rows, "overall") == NOT_EVALUABLE
    one_seed = _runs({"vanilla": VANILLA, "erase": ([0.2], [0.3])})
    assert [r["status"] for r in h1_rows(one_seed, ERASE)] == [NOT_EVALUABLE]


def test_route_is_judged_on_the_quarantine_ablated_evaluation():
    runs = _runs({"vanilla": VANILLA, "route": ([0.20, 0.25, 0.30], [0.31, 0.30, 0.27])})
    runs["eval_loophole_hack"] = runs["eval_loophole_hack"].fillna(0.9)  # kept quarantine: still hacks
    assert _status(h1_rows(runs, ROUTE), "overall") == PASS


def test_controls_pass_only_when_real_v_is_lower_beyond_one_sem():
    runs = _runs({
        "erase": ([0.20, 0.25, 0.30], [0.3] * 3),
        "erase_random_V": ([0.60, 0.65, 0.70], [0.3] * 3),   # clearly worse than real V
        "erase_shuffled_V": ([0.20, 0.26, 0.29], [0.3] * 3),  # indistinguishable
    })  # fmt: skip
    rows = {r["clause"].rsplit(" ", 1)[-1]: r["status"] for r in control_rows(runs)}
    assert rows == {"erase_random_V": PASS, "erase_random_V_matched": NOT_EVALUABLE,
                    "erase_shuffled_V": FAIL, "erase_nonhack_V": NOT_EVALUABLE}  # fmt: skip


def _lomo_runs(solve: dict) -> pd.DataFrame:
    """Fold without_sentinel; ``solve``: arm -> no-loophole solve rate per seed."""
    hack = {"vanilla": (0.6, 0.7, 0.65), "route": (0.1, 0.1, 0.2), "route_random_V": (0.6, 0.6, 0.7)}
    return pd.DataFrame([
        {"fold": "without_sentinel", "arm": arm, "seed": seed, "eval_loophole_hack_sentinel": h,
         "eval_ablated_loophole_hack_sentinel": h, "eval_no_loophole_solve": p, "eval_ablated_no_loophole_solve": p}
        for arm, values in hack.items()
        for seed, h, p in zip((41, 42, 43), values, solve[arm])
    ])  # fmt: skip


def test_lomo_reads_the_held_out_modes_hack_rate():
    kept = {"vanilla": (0.3, 0.3, 0.3), "route": (0.25, 0.3, 0.28), "route_random_V": (0.3, 0.3, 0.3)}
    rows = lomo_rows(_lomo_runs(kept))
    assert [r["status"] for r in rows] == [PASS, PASS, PASS]
    assert all("held-out sentinel" in r["clause"] for r in rows)


def test_lomo_fails_a_projection_that_stops_hacking_by_breaking():
    broken = {"vanilla": (0.3, 0.3, 0.3), "route": (0.02, 0.04, 0.03), "route_random_V": (0.3, 0.3, 0.3)}
    rows = lomo_rows(_lomo_runs(broken))
    assert [r["status"] for r in rows] == [PASS, PASS, FAIL]
    assert rows[2]["clause"].endswith("pass drop vs vanilla <= 15 pp")
    assert math.isclose(rows[2]["delta"], 0.03 - 0.3, abs_tol=1e-9)


def test_verdict_table_has_every_clause_and_renders():
    runs = _runs({"vanilla": VANILLA, "erase": ([0.20, 0.25, 0.30], [0.31, 0.30, 0.27])})
    table = verdict_table(runs)
    assert set(table["status"]) <= {PASS, FAIL, NOT_EVALUABLE}
    assert table["clause"].str.contains("route").any() and table["clause"].str.contains("control").any()
    text = markdown_verdict(table)
    assert "| H1 erase vs vanilla: overall | **PASS** |" in text


def test_without_room_for_a_15_pp_cut_the_falsifier_is_not_evaluable():
    barely = ([0.10, 0.12, 0.08], [0.30, 0.32, 0.28])  # vanilla hardly hacks
    rows = h1_rows(_runs({"vanilla": barely, "erase": ([0.0, 0.0, 0.0], [0.30, 0.32, 0.28])}), ERASE)
    assert _status(rows, "falsifier cut < 15 pp") == NOT_EVALUABLE
    assert _status(rows, "overall") == NOT_EVALUABLE
