"""study/front_page.py: the report opens on the question, the verdict's overall rows and
Table 1, in RST that docutils renders without a warning."""

import pandas as pd
from docutils.core import publish_parts

from projected_grpo.study.front_page import front_page, rst_table, rst_text

DESCRIPTION = "**The question?** One paragraph.\n\nThe DAG: build_problems, train.\n"
VERDICT = pd.DataFrame(
    {
        "clause": [
            "H1 erase vs vanilla: hack cut >= 30 pp",
            "H1 erase vs vanilla: overall",
            "control: erase below x",
        ],
        "status": ["PASS", "FAIL", "PASS"],
        "delta": [-0.389, -0.389, -0.05],
        "sem": [0.022, 0.022, 0.088],
        "ci_low": [-0.484, -0.484, -0.429],
        "ci_high": [-0.294, -0.294, 0.329],
        "p_holm": [None, 0.0062, 0.63],
        "n": [3, 3, 3],
    }
)
CELLS = pd.DataFrame(
    {"fold": ["all"], "arm": ["erase_random_V"], "n": ["3"], "hack": ["28.6 ± 1.8 (Δ -38.9 ± 2.2, p 0.0031)"]}
)


def render(rst: str) -> str:
    """HTML of ``rst``; raises on any docutils warning (a broken table, a stray reference)."""
    return publish_parts(rst, writer="html", settings_overrides={"halt_level": 2, "report_level": 2})[
        "html_body"
    ]


def test_the_page_opens_on_the_question_then_the_overall_verdict_and_table_1():
    page = front_page(VERDICT, CELLS, "Substrate: organism.", DESCRIPTION)
    html = render(page)
    assert page.startswith("**The question?** One paragraph.")
    assert html.index("The question?") < html.index("H1 erase vs vanilla") < html.index("erase_random_V")
    assert html.index("erase_random_V") < html.index("The DAG")
    assert "-38.9 ± 2.2" in html and "[-48.4, -29.4]" in html and "0.0062" in html and "FAIL" in html
    assert "hack cut" not in html and "control: erase" not in html  # only the overall rows


def test_markup_characters_in_cells_stay_text():
    cells = pd.DataFrame(
        {"rule": ["|mean paired difference| <= 0.10", "*starred* and trailing_", "back`tick"]}
    )
    html = render(rst_table(cells, "odd cells"))
    assert "|mean paired difference|" in html and "*starred*" in html and "trailing_" in html
    assert rst_text("a|b") == "a\\|b"
