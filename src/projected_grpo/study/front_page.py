"""The Snakemake report's front page: the workflow's description (``report/workflow.rst``)
with the verdict's overall rows and Table 1 after its first paragraph, the question. Rule
aggregate writes it once the runs exist; the Snakefile shows the plain description until
then."""

from __future__ import annotations

import re

import pandas as pd

from .verdict import p_value, percentage_points


def rst_text(text: str) -> str:
    """``text`` with the characters RST would read as markup escaped (``|x|`` is a
    substitution, ``*x*`` emphasis, a trailing ``_`` a reference)."""
    text = str(text).replace("\\", "\\\\")
    text = re.sub(r"([|*`])", r"\\\1", text)
    return re.sub(r"_(?=\s|$)", r"\\_", text)


def rst_table(cells: pd.DataFrame, title: str) -> str:
    """A frame of text cells as an RST list-table (header row: the columns)."""
    lines = [f".. list-table:: {rst_text(title)}", "   :header-rows: 1", ""]
    for row in [list(cells.columns), *cells.astype(str).itertuples(index=False)]:
        lines += [f"   * - {rst_text(row[0])}"] + [f"     - {rst_text(v)}" for v in row[1:]]
    return "\n".join(lines) + "\n"


def front_page(verdict: pd.DataFrame, table1_cells: pd.DataFrame, caption: str, description: str) -> str:
    """``description`` with, after its first paragraph, the rows of ``verdict``
    (``verdict.verdict_table``) whose clause is an overall one and Table 1
    (``stats.arm_cells``) with its ``caption``."""
    question, _, rest = description.partition("\n\n")
    overall = verdict[verdict["clause"].str.endswith(": overall")]

    verdict_cells = pd.DataFrame(
        {
            "clause": overall["clause"].str.removesuffix(": overall"),
            "status": overall["status"],
            "Δ ± SEM (pp)": [
                f"{percentage_points(d)} ± {percentage_points(s)}"
                for d, s in zip(overall["delta"], overall["sem"])
            ],
            "95 % CI (pp)": [
                f"[{percentage_points(low)}, {percentage_points(high)}]"
                for low, high in zip(overall["ci_low"], overall["ci_high"])
            ],
            "p_Holm": [p_value(p) for p in overall["p_holm"]],
            "n": overall["n"],
        }
    )
    return "\n".join(
        [
            question,
            "",
            rst_table(verdict_cells, "The verdict on H1, overall (every clause and the controls: Verdict)"),
            rst_table(table1_cells, "Table 1. " + caption),
            rest,
        ]
    )
