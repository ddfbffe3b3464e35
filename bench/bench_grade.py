"""Grading throughput, and what a looping completion costs, on this machine.

    .venv/bin/python bench/bench_grade.py            # writes bench/grade.txt

"Typical completions": the builtin bank's canonical solutions, honest solutions that use
a lever, and templated hacks of every mode and shape (the diagonal's mix), graded under
the loophole variant with sandbox workers = CPU count. Each completion runs in its own
isolated process tree.

The CPU-time kill: completions that mask every signal they can and spin are stopped by
the supervisor at ``cpu_s`` (with a control group per slot; whole seconds of RLIMIT_CPU
without one). Reported: the CPU time each had used when stopped, and the wall time a
looping completion holds a worker under the study's limits (config.yaml) against the
same limits with a sub-second ``cpu_s``, with the CPU time the honest solutions of the
mix use, which a ``cpu_s`` must leave untouched.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml

from projected_grpo.core.io import atomic_write_text
from projected_grpo.environment.completions import fence
from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.grader import Submission, execute, grade_all
from projected_grpo.environment.sandbox import Limits, Sandbox, describe_isolation
from projected_grpo.environment.selfcheck import diagonal_cases

OUT = Path(__file__).with_name("grade.txt")
CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
SUB_SECOND_CPU_S = 0.2
MASKED_SPIN = """
import signal
for s in signal.valid_signals():
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError):
        pass
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
while True:
    pass
"""


def _ms(seconds: list[float]) -> str:
    q = statistics.quantiles(seconds, n=20, method="inclusive") if len(seconds) > 1 else seconds * 19
    return f"median {1000 * statistics.median(seconds):.0f} ms, p95 {1000 * q[-1]:.0f} ms, max {1000 * max(seconds):.0f} ms"


def main() -> None:
    load_start = os.getloadavg()[0]
    problems = builtin_bank()
    cases = [(p, text, hack) for p in problems for _, text, hack in diagonal_cases(p, "loophole")]
    subs = [Submission(p, text) for p, text, _ in cases]
    honest = [Submission(p, text) for p, text, hack in cases if hack is None]
    workers = os.cpu_count() or 1
    with Sandbox(workers=workers) as sandbox:
        grade_all(subs[:50], sandbox)  # warm-up
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            grade_all(subs, sandbox)
            rates.append(len(subs) / (time.perf_counter() - start))
        honest_cpu = [ex.cpu_s for ex in execute(honest, sandbox) if ex is not None]
        isolation = describe_isolation(sandbox.isolation)
        cgroup = sandbox.isolation.get("cgroup")

    study = Limits.from_config(yaml.safe_load(CONFIG.read_text())["sandbox"])
    sub_second = replace(study, cpu_s=SUB_SECOND_CPU_S)
    spin = Submission(problems[0], fence(MASKED_SPIN + problems[0].canonical_solution))
    looping = {}
    for name, limits, n in (("study", study, 6), ("sub_second", sub_second, 20)):
        with Sandbox(workers=1, limits=limits) as box:
            looping[name] = execute([spin] * n, box)

    killed = [ex for ex in looping["sub_second"] if ex.cpu_exceeded]
    over = [ex.cpu_s - SUB_SECOND_CPU_S for ex in killed]
    lines = [
        f"grading throughput: {len(subs)} completions ({len(problems)} builtin problems x diagonal mix)",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, {workers} sandbox workers",
        "grades/s over 3 repeats: " + ", ".join(f"{r:.0f}" for r in rates) + f" (best {max(rates):.0f})",
        f"CPU time of the {len(honest_cpu)} honest solutions of the mix: {_ms(honest_cpu)}; "
        f"{sum(c > SUB_SECOND_CPU_S for c in honest_cpu)} over {SUB_SECOND_CPU_S} s",
        "",
        f"a looping completion that masks every signal (cgroup: {cgroup or 'none, rlimits only'}):",
        f"  study limits (wall_s {study.wall_s}, cpu_s {study.cpu_s}): holds a worker "
        f"{_ms([ex.wall_s for ex in looping['study']])} of wall time "
        f"({sum(ex.cpu_exceeded for ex in looping['study'])}/{len(looping['study'])} stopped by the CPU kill)",
        f"  cpu_s {SUB_SECOND_CPU_S} (wall_s {study.wall_s}): holds a worker "
        f"{_ms([ex.wall_s for ex in looping['sub_second']])} of wall time; "
        f"{len(killed)}/{len(looping['sub_second'])} stopped by the CPU kill"
        + (f", CPU time past cpu_s when stopped: min {1000 * min(over):.1f} ms, {_ms(over)}" if over else ""),
        f"load average (1 min): {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end",
        "isolation in force:",
        isolation,
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(text, OUT)
    print(text, end="")


if __name__ == "__main__":
    main()
