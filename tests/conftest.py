"""Shared test constants."""

from projected_grpo.modes import MODES

# The flat grade columns the issue specifies for every graded row (grader.Grade.to_row).
GRADE_COLUMNS = {
    "mode",
    "variant",
    "format_ok",
    "passed",
    "oracle_correct",
    "exploited",
    "reward",
    "label",
    "timed_out",
    "error",
} | {f"attempted_{m}" for m in MODES}
