"""Write the test suite's figures (counts, wall times, slowest tests) from a log of
`make test` into a markdown file, so no one edits CI timings by hand.

    python3 scripts/ci/timings.py LOG --start EPOCH_SECONDS --out docs/generated/test_timings.md

LOG is what `make test` printed (pytest runs with --durations); --start is when the run
began (`date +%s`), so the total includes the installs. Standard library only: it runs
before and after the virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

# pytest's last line: "N passed, M skipped in S s (h:mm:ss)", bare under -q, between "=" rules otherwise.
SUMMARY = re.compile(
    r"^(?:=+ )?(?P<counts>\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b.*?)"
    r" in (?P<seconds>[\d.]+)s(?: \([\d:]+\))?(?: =+)?$",
    re.M,
)
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)$", re.M)


def summarize(log: str, total_s: float, commit: str, slowest: int = 10) -> str:
    """The markdown page for one `make test` log (raises ValueError without pytest's summary)."""
    found = SUMMARY.findall(log)
    if not found:
        raise ValueError("no pytest summary line ('== N passed ... in S s ==') in the log")
    counts, tests_s = found[-1]
    durations = sorted(
        ((float(m["seconds"]), m["phase"], m["test"]) for m in DURATION.finditer(log)), reverse=True
    )[:slowest]
    lines = [
        "# Test-suite timings (generated: do not edit)",
        "",
        f"Written by `scripts/ci/timings.py` from a `.ci/run` on a fresh clone of commit `{commit}`, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, on {os.cpu_count()} cores ({platform.machine()}).",
        "",
        f"- result: {counts}",
        f"- tests: {float(tests_s) / 60:.1f} min; all of `.ci/run` with the installs: {total_s / 60:.1f} min",
    ]
    if durations:
        lines += ["", "Slowest test phases:", "", "| s | phase | test |", "|---|---|---|"]
        lines += [f"| {s:.1f} | {phase} | `{test}` |" for s, phase, test in durations]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--start", type=float, required=True, help="epoch seconds when the run began")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        page = summarize(Path(args.log).read_text(errors="replace"), time.time() - args.start, commit or "?")
    except (OSError, ValueError) as exc:
        print(f"error: {args.log}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
