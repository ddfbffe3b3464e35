"""Grading throughput: grades/s on this machine, sandbox workers = CPU count.

    .venv/bin/python bench/bench_grade.py            # writes bench/grade.txt

"Typical completions": the builtin bank's canonical solutions, honest solutions that use
a lever, and templated hacks of every mode and shape (the diagonal's mix), graded under
the loophole variant. Each completion runs in its own isolated process.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from projected_grpo.core.io import atomic_write_text
from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.grader import Submission, grade_all
from projected_grpo.environment.sandbox import Sandbox, describe_isolation
from projected_grpo.environment.selfcheck import diagonal_cases

OUT = Path(__file__).with_name("grade.txt")


def main() -> None:
    problems = builtin_bank()
    subs = [Submission(p, text) for p in problems for _, text, _ in diagonal_cases(p, "loophole")]
    workers = os.cpu_count() or 1
    with Sandbox(workers=workers) as sandbox:
        grade_all(subs[:50], sandbox)  # warm-up
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            grade_all(subs, sandbox)
            rates.append(len(subs) / (time.perf_counter() - start))
        isolation = describe_isolation(sandbox.isolation)
    lines = [
        f"grading throughput: {len(subs)} completions ({len(problems)} builtin problems x diagonal mix)",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, {workers} sandbox workers",
        "grades/s over 3 repeats: " + ", ".join(f"{r:.0f}" for r in rates) + f" (best {max(rates):.0f})",
        "isolation in force:",
        isolation,
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(text, OUT)
    print(text, end="")


if __name__ == "__main__":
    main()
