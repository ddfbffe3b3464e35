"""Figures. Every figure carries a caption line naming its substrate."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

COLORS = {"vanilla": "tab:red", "vanilla_no_teacher": "tab:orange", "rl_baseline": "tab:blue"}


def substrate_caption(organism: dict, train: dict, seeds: list[int]) -> str:
    """'<model> (<params> parameters), <steps> GRPO steps, seeds ...' from organism.json
    and the train settings."""
    model = organism.get("name", "from-scratch Qwen3-architecture organism")
    return (
        f"Substrate: {model}, {organism['parameters'] / 1e6:.2f} M parameters, synthetic corpus; "
        f"{train['steps']} GRPO steps x {train['prompts_per_step']} prompts x {train['group_size']} "
        f"completions; seeds {', '.join(map(str, seeds))}."
    )


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
