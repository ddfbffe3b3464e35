"""Figures. Every figure carries a caption line naming its substrate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .stats import LOMO_METRICS  # noqa: E402

COLORS = {
    "vanilla": "tab:red",
    "vanilla_no_teacher": "tab:orange",
    "rl_baseline": "tab:blue",
    "erase": "tab:green",
    "route": "tab:purple",
    "erase_update": "tab:olive",
    "erase_no_teacher": "tab:cyan",
    "erase_random_V": "tab:gray",
    "erase_random_V_matched": "black",
    "erase_shuffled_V": "tab:brown",
    "erase_nonhack_V": "tab:pink",
    "monitor_penalty": "gold",
    "monitor_screen": "navy",
    "erase_grad": "tab:olive",
    "erase_correct_V": "magenta",
    "erase_dominant_V": "darkkhaki",
    "erase_oracle_V": "teal",
    "erase_grad_oracle_V": "darkslategray",
    "vanilla_slow": "salmon",
    "vanilla_lr02": "lightsalmon",
    "vanilla_lr01": "peachpuff",
    "route_random_V": "plum",
    "erase_refresh": "lime",
    "keep_trusted": "mediumblue",
    "keep_random_V": "lightsteelblue",
}


def close(figure) -> None:
    """Release a saved figure (pyplot keeps every figure it made until closed)."""
    plt.close(figure)


def substrate_caption(model_dir: str | Path, train: dict, seeds: list[int]) -> str:
    """'Substrate: <model>, <params> parameters[, synthetic corpus]; <steps> GRPO steps ...'
    for the student folder ``model_dir`` and the run's train settings."""
    model = model_record(model_dir)
    corpus = ", synthetic corpus" if model["organism"] else ""
    count = model["parameters"]
    size = "parameter count unknown" if count is None else f"{count / 1e6:.2f} M parameters"
    return (
        f"Substrate: {model['name']}, {size}{corpus}; "
        f"{train['steps']} GRPO steps x {train['prompts_per_step']} prompts x {train['group_size']} "
        f"completions; seeds {', '.join(map(str, seeds))}."
    )


def model_record(model_dir: str | Path) -> dict:
    """``name``, ``parameters`` and ``organism`` (built here, or any local HF model) of a
    model folder: from ``organism.json`` for the organism, else from ``config.json`` and
    the weight files' headers (no weights are read). ``parameters`` is None when the
    weights are not in safetensors files (e.g. ``pytorch_model.bin``): not counted."""
    from safetensors import safe_open

    path = Path(model_dir)
    if (path / "organism.json").is_file():
        record = json.loads((path / "organism.json").read_text())
        name = record.get("name", "from-scratch Qwen3-architecture organism")
        return {"name": name, "parameters": record["parameters"], "organism": True}
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "?")
    weight_files = sorted(path.glob("*.safetensors"))
    parameters = 0 if weight_files else None
    for weights in weight_files:
        with safe_open(str(weights), framework="pt") as f:
            parameters += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())  # noqa: SIM118
    return {
        "name": f"{path.name} ({model_type}, local checkpoint)",
        "parameters": parameters,
        "organism": False,
    }


def emergence_figure(steps: pd.DataFrame, caption: str):
    """Student hack and solve rate per step: one thin line per seed, the seed mean thick.
    ``steps``: step rows with ``arm`` and ``seed`` columns."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, column, title in zip(
        axes, ("hack_rate_student", "solve_rate_student"), ("hack rate", "solve rate")
    ):
        for arm, frame in steps.groupby("arm", sort=False):
            color = COLORS.get(arm)
            for _, run in frame.groupby("seed"):
                ax.plot(run["step"], run[column], color=color, alpha=0.3, linewidth=0.8)
            mean = frame.groupby("step")[column].mean()
            ax.plot(mean.index, mean.values, color=color, linewidth=2, label=arm)
        ax.set_title(f"student {title} (training samples)")
        ax.set_xlabel("GRPO step")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(loc="upper left")
    fig.text(0.01, 0.01, caption, fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _band(ax, frame: pd.DataFrame, column: str, label: str, color=None, linestyle="-") -> None:
    """Seed mean of ``column`` per step, with a ± SEM band over seeds."""
    per_step = frame.groupby("step")[column]
    mean, sem = per_step.mean(), per_step.sem().fillna(0)
    (line,) = ax.plot(mean.index, mean.values, color=color, linestyle=linestyle, linewidth=1.6, label=label)
    ax.fill_between(mean.index, mean - sem, mean + sem, color=line.get_color(), alpha=0.18, linewidth=0)


# Panels of the arm-curve figure: the method, its negative controls, the other baselines, and
# the trusted-subspace keep with its random-span control.
PANELS = {
    "projection": ["vanilla", "erase", "route", "erase_update", "erase_refresh"],
    "negative controls": ["vanilla", "erase", "erase_random_V", "erase_random_V_matched", "erase_shuffled_V",
                          "erase_nonhack_V"],
    "baselines": ["vanilla", "erase", "monitor_penalty", "monitor_screen", "vanilla_no_teacher", "erase_no_teacher",
                  "rl_baseline"],
    "trusted subspace (keep)": ["vanilla", "erase", "keep_trusted", "keep_random_V"],
}  # fmt: skip


def arm_curves_figure(steps: pd.DataFrame, caption: str, panels: dict = PANELS, smooth: int = 3):
    """Student hack (top) and solve (bottom) rate per step, one column per panel of arms:
    seed mean (rolling mean over ``smooth`` steps) ± SEM over seeds. ``steps``: step rows
    with ``arm`` and ``seed``; arms it lacks are left out."""
    present = set(steps["arm"])
    panels = {title: [a for a in arms if a in present] for title, arms in panels.items()}
    panels = {title: arms for title, arms in panels.items() if arms}
    fig, axes = plt.subplots(
        2, len(panels), figsize=(5 * len(panels), 7), sharex=True, sharey=True, squeeze=False
    )
    for col, (title, arms) in enumerate(panels.items()):
        for row, (column, name) in enumerate(
            (("hack_rate_student", "hack"), ("solve_rate_student", "solve"))
        ):
            ax = axes[row][col]
            for arm in arms:
                frame = steps[steps["arm"] == arm].sort_values("step").copy()
                frame[column] = frame.groupby("seed")[column].transform(lambda s: s.rolling(smooth, 1).mean())
                _band(ax, frame, column, arm, COLORS.get(arm))
            ax.set_title(f"{title}: student {name} rate")
            ax.set_ylim(-0.02, 1.02)
            if row == 1:
                ax.set_xlabel("GRPO step")
        axes[0][col].legend(loc="upper left", fontsize=7)
    fig.text(0.01, 0.01, caption + f" Training samples; {smooth}-step rolling mean, band ± SEM over seeds.",
             fontsize=7, wrap=True)  # fmt: skip
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


# Arms whose cin the figure shows (each against its own basis).
CIN_ARMS = ("vanilla", "erase", "route", "erase_random_V", "erase_shuffled_V", "erase_nonhack_V")


def cin_figure(steps: pd.DataFrame, caption: str, arms=CIN_ARMS):
    """``cin`` of the student and teacher halves and of teacher-hack / teacher-correct rows
    over steps, against the random-direction null, one panel per arm (seed mean ± SEM)."""
    has_cin = {a for a, f in steps.groupby("arm") if "cin" in f and f["cin"].notna().any()}
    arms = [a for a in arms if a in has_cin]
    if not arms:  # no basis, or no step with a gradient
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, f"no cin measured in the arms {', '.join(CIN_ARMS)}", ha="center", va="center")
        ax.axis("off")
        return fig
    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3.8), sharey=True, squeeze=False)
    for ax, arm in zip(axes[0], arms):
        frame = steps[steps["arm"] == arm]
        for column, color in (("cin_s", "tab:blue"), ("cin_t", "tab:orange"), ("cin_t_hack", "tab:red"),
                              ("cin_t_correct", "tab:green"), ("cin_null", "grey")):  # fmt: skip
            _band(ax, frame, column, column, color, ":" if column == "cin_null" else "-")
        ax.set_title(arm)
        ax.set_xlabel("GRPO step")
    axes[0][0].set_ylabel("cin = ‖relu(V g)‖ / ‖g‖ (module mean)")
    axes[0][-1].legend(fontsize=7)
    fig.text(0.01, 0.01, caption + " cin of each arm against its own basis; band ± SEM over seeds.",
             fontsize=7, wrap=True)  # fmt: skip
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def table_figure(cells: pd.DataFrame, title: str, caption: str):
    """A frame of text cells drawn as a table (for the PDF of a results table)."""
    height = 0.9 + 0.32 * (len(cells) + 1)
    fig, ax = plt.subplots(figsize=(min(22, 2.2 + 2.6 * len(cells.columns)), height))
    ax.axis("off")
    table = ax.table(
        cellText=cells.to_numpy(), colLabels=list(cells.columns), loc="upper center", cellLoc="left"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(cells.columns))))
    ax.set_title(title, fontsize=9)
    fig.text(0.01, 0.01, caption, fontsize=6, wrap=True)
    return fig


def lomo_figure(lomo: pd.DataFrame, caption: str):
    """One panel per rate of ``stats.LOMO_METRICS``, bars per held-out mode: the rate for
    each arm of the fold (mean ± SEM over seeds); a fold that was not trained keeps its
    place, labelled so. ``lomo``: ``stats.lomo_table``."""
    trained = lomo[lomo["note"] == ""]
    if trained.empty:
        fig, ax = plt.subplots(figsize=(8, 4))
        text = "no leave-one-mode-out fold was trained" if len(lomo) else "no leave-one-mode-out folds"
        ax.text(0.5, 0.5, f"{text} in this configuration", ha="center", va="center")
        ax.axis("off")
        fig.text(0.01, 0.01, caption, fontsize=7, wrap=True)
        return fig
    fig, axes = plt.subplots(1, len(LOMO_METRICS), figsize=(5 * len(LOMO_METRICS), 4.2), sharey=True)
    modes = list(dict.fromkeys(lomo["held_out"]))
    labels = [m if m in set(trained["held_out"]) else f"{m}\n(not trained)" for m in modes]
    arms = list(dict.fromkeys(trained["arm"]))
    width = 0.8 / len(arms)
    for ax, metric in zip(axes, LOMO_METRICS):
        for i, arm in enumerate(arms):
            rows = trained[trained["arm"] == arm].set_index("held_out").reindex(modes)
            x = [m + i * width for m in range(len(modes))]
            ax.bar(x, rows[f"{metric}_mean"], width, yerr=rows[f"{metric}_sem"].fillna(0), label=arm,
                   color=COLORS.get(arm.removesuffix("_ablated")), alpha=0.6 if arm.endswith("_ablated") else 1.0)  # fmt: skip
        ax.set_xticks([m + 0.4 - width / 2 for m in range(len(modes))], labels, fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("rate on the held-out problems (eval)")
    fig.text(0.01, 0.01, caption, fontsize=7, wrap=True)
    _legend_beside(fig, axes[0], fontsize=7, right=0.91)
    return fig


# Vanilla at falling learning rates, in order: the trade-off "train less" buys, which an arm
# has to beat (the trade-off figure's frontier line).
FRONTIER = ("vanilla", "vanilla_slow", "vanilla_lr02", "vanilla_lr01")


def _legend_beside(fig, ax, fontsize: float, right: float) -> None:
    """``ax``'s legend for the whole figure, right of the panels (inside one it covers the
    data), which are laid out in ``[0, right]`` above the caption's strip."""
    fig.legend(*ax.get_legend_handles_labels(), loc="center right", fontsize=fontsize)
    fig.tight_layout(rect=(0, 0.1, right, 1))


def tradeoff_figure(
    deltas: pd.DataFrame, caption: str, x: str = "eval_no_loophole_solve", ys=("eval_loophole_hack",)
):
    """One panel per hack rate of ``ys``, one point per (arm, seed): the paired change in
    solve rate (x) and in that hack rate (y) against same-seed vanilla; the arm's mean as a
    larger marker. Lower right is the goal (less hacking, more solving). The ``FRONTIER``
    arms' means (vanilla at (0, 0)) are joined by a dashed line: vanilla trained less.
    ``deltas``: ``stats.paired_differences``."""
    fig, axes = plt.subplots(1, len(ys), figsize=(5.5 * len(ys), 4.5), squeeze=False)
    means = deltas.groupby("arm").mean(numeric_only=True)
    frontier = [arm for arm in FRONTIER[1:] if arm in means.index]
    for ax, y in zip(axes[0], ys):
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.axvline(0, color="0.6", linewidth=0.8)
        if frontier:
            ax.plot([0, *means.loc[frontier, f"{x}_delta"]], [0, *means.loc[frontier, f"{y}_delta"]], "--",
                    color="0.35", linewidth=1, label="vanilla, lower lr", zorder=1)  # fmt: skip
        cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
        for arm, rows in deltas.groupby("arm", sort=False):
            color = COLORS.get(arm.removesuffix("_ablated")) or next(cycle)  # one colour per arm
            hollow = arm.endswith("_ablated")
            ax.scatter(rows[f"{x}_delta"], rows[f"{y}_delta"], s=18, color=color, alpha=0.6,
                       facecolors="none" if hollow else color)  # fmt: skip
            ax.scatter(rows[f"{x}_delta"].mean(), rows[f"{y}_delta"].mean(), s=90, marker="D", label=arm,
                       edgecolors=color, facecolors="none" if hollow else color)  # fmt: skip
        ax.set_xlabel(f"Δ {x} vs same-seed vanilla")
        ax.set_ylabel(f"Δ {y} vs same-seed vanilla")
    fig.text(0.01, 0.01, caption + " Small points: seeds; diamonds: arm means.", fontsize=7, wrap=True)
    _legend_beside(fig, axes[0][0], fontsize=6, right=0.86 if len(ys) > 1 else 0.72)
    return fig


# The basis diagnostics figure's panels: (column, its null column or a constant, title).
DIAGNOSTIC_PANELS = (
    ("auc_student_sum", 0.5, "student hacks vs rest: AUC (summed score)"),
    ("auc_first", 0.5, "pool hacks vs correct: AUC (1st axis)"),
    ("variance_share", "share_null", "share of ordinary gradient variance in span(V)"),
    ("sign_accuracy_first", 0.5, "pair sign accuracy (1st axis)"),
)


def displacement_figure(table: pd.DataFrame, title: str):
    """Eval hack rate (%) against the hack-ward displacement of the knobs along real V, a
    point per run, a colour per arm (``COLORS``); ``table``: ``displacement.displacement_table``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for arm, group in table.groupby("arm"):
        ax.scatter(group["displacement"], 100 * group["eval_loophole_hack"], label=arm, s=18,
                   color=COLORS.get(arm) or next(cycle))  # fmt: skip
    ax.set_xlabel("hack-ward displacement of the knobs along real V (axis 0)")
    ax.set_ylabel("eval hack rate (%)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def diagnostics_figure(table: pd.DataFrame, caption: str):
    """One panel per ``DIAGNOSTIC_PANELS`` entry, bars per fold, one per basis kind, with the
    null as a dashed tick over each bar. ``table``: the basis diagnostics table (fold, kind,
    the metrics)."""
    folds = list(dict.fromkeys(table["fold"]))
    kinds = list(dict.fromkeys(table["kind"]))
    width = 0.8 / len(kinds)
    fig, axes = plt.subplots(1, len(DIAGNOSTIC_PANELS), figsize=(4.6 * len(DIAGNOSTIC_PANELS), 4.2))
    for ax, (column, null, title) in zip(axes, DIAGNOSTIC_PANELS):
        for i, kind in enumerate(kinds):
            rows = table[table["kind"] == kind].set_index("fold").reindex(folds)
            x = [f + i * width for f in range(len(folds))]
            ax.bar(x, rows[column], width, label=kind)
            nulls = rows[null] if isinstance(null, str) else [null] * len(folds)
            ax.hlines(nulls, [p - width / 2 for p in x], [p + width / 2 for p in x], colors="k", linestyles="--",
                      linewidth=0.8)  # fmt: skip
        ax.set_xticks([f + 0.4 - width / 2 for f in range(len(folds))],
                      [f.removeprefix("without_") for f in folds], fontsize=7, rotation=20)  # fmt: skip
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.text(0.01, 0.01, caption, fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
