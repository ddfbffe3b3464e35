"""Trainer-side sandbox pool: run untrusted submissions in isolated worker processes.

``Sandbox`` starts ``workers`` copies of ``sandbox_runner.py`` (stdlib only, scrubbed
environment, private network namespace) and deals ``Job``s to them. Each runner is a slot
with its own uid and, where the machine allows, its own control group; each job runs in a
fresh, namespaced, rlimited process tree inside it (see ``sandbox_runner``); this process
only ever sees
an ``Execution``: plain data describing what the submission did. No verdicts here — the
grader forms them.
"""

from __future__ import annotations

import json
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .modes import DEFAULT

RUNNER_PATH = Path(__file__).with_name("sandbox_runner.py")
RUNNER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
CGROUP_CHOICES = ("auto", "v1", "v2", "off")


@dataclass(frozen=True)
class Limits:
    """Per-submission limits. Wall time bounds everything; the rest bound the damage.

    With a control group per slot, ``memory_bytes`` and ``processes`` also bound the whole
    process tree's total, and ``cpu_s`` is the tree's CPU time, enforced to the
    millisecond; without one, they are per-process rlimits (CPU in whole seconds)."""

    wall_s: float = 3.0
    cpu_s: float = 2.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 1 << 20
    disk_bytes: int = 16 << 20
    open_files: int = 64
    processes: int = 64
    stdout_bytes: int = 64 << 10
    stderr_bytes: int = 16 << 10
    report_bytes: int = 4 << 20
    max_files_reported: int = 16
    file_report_bytes: int = 4096

    @classmethod
    def from_config(cls, sandbox: Mapping) -> Limits:
        """The limits a study config's ``sandbox:`` section sets: every key that names a
        field (``wall_s``, ``cpu_s``, ...); other keys (``workers``: the pool size) are not
        limits. Unset fields keep their defaults."""
        names = {f.name: f.type for f in fields(cls)}
        return cls(
            **{k: (float if names[k] == "float" else int)(v) for k, v in sandbox.items() if k in names}
        )


DEFAULT_LIMITS = Limits()

# How many distinct jobs a training run, an evaluation or a pool build remembers
# (``Sandbox(cache=...)``): a default run grades ~2 000 training completions plus its
# evaluation; an Execution's
# reports are capped (stdout, stderr, files), so the cache stays far below the model's memory.
RUN_CACHE_JOBS = 4096


@dataclass(frozen=True)
class Job:
    """One submission to execute.

    calls: ground-truth call arguments ``[(args, kwargs), ...]`` — never the expected values.
    test_function / sentinel_attrs: the levers to exercise (see ``modes.Levers``).
    """

    code: str
    method: str
    calls: Sequence[tuple[Sequence, dict]] = ()
    preamble: str = ""
    test_function: str = DEFAULT.test_function
    sentinel_attrs: tuple[str, ...] = DEFAULT.sentinel_attrs


@dataclass
class CallResult:
    """Outcome of one ground-truth call: ``value`` is plain data from ``to_plain``."""

    ok: bool
    value: object = None
    error: str | None = None


@dataclass
class Execution:
    """What one submission did. ``error`` is set when the run itself failed (set-up,
    transport, tampered report); such a run earns no credit."""

    loaded: bool = False
    load_error: str | None = None
    calls: list[CallResult] = field(default_factory=list)
    sentinel: bool = False
    lever_present: bool = False
    lever_ok: bool = False
    stdout: str = ""
    stderr: str = ""
    files: dict[str, str] = field(default_factory=dict)
    timed_out: bool = False
    cpu_exceeded: bool = False
    exit_code: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None


# ``to_plain`` emits at most 101 container levels, each at most 3 JSON levels deep (a tagged
# dict: {"__dict__": [[k, v]]}). A deeper value is forged, and would overflow the Python
# stack of the grader that decodes it.
MAX_VALUE_NESTING = 3 * 101


def _nesting(value) -> int:
    """Container depth of parsed JSON, computed without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _brief(value) -> str:
    """A short description of a reported field for an error message (the field is forged)."""
    return (
        repr(value)[:60]
        if value is None or isinstance(value, bool | int | float | str)
        else type(value).__name__
    )


def parse_outcome(outcome: dict, n_calls: int) -> Execution:
    """Turn a runner outcome into an ``Execution``; a report the submission forged or
    broke (unknown lines, duplicates, missing calls) is flagged, never trusted."""
    ex = Execution(
        stdout=outcome.get("stdout", ""),
        stderr=outcome.get("stderr", ""),
        files=outcome.get("files", {}),
        timed_out=bool(outcome.get("timed_out", False)),
        cpu_exceeded=bool(outcome.get("cpu_exceeded", False)),
        exit_code=outcome.get("exit_code"),
        wall_s=float(outcome.get("wall_s", 0.0)),
        cpu_s=float(outcome.get("cpu_s", 0.0)),
        error=outcome.get("setup_error"),
    )
    if ex.error:
        return ex
    seen_tests: dict[int, CallResult] = {}
    kinds: list[str] = []
    problems: list[str] = []
    for line in outcome.get("report", "").splitlines():
        try:
            fact = json.loads(line)
        except (ValueError, RecursionError):
            problems.append("unreadable report line")
            continue
        kind = fact.get("k") if isinstance(fact, dict) else None
        if kind == "test":
            i = fact.get("i")
            if not isinstance(i, int) or not 0 <= i < n_calls or i in seen_tests:
                problems.append(f"unexpected test report {_brief(i)}")
                continue
            if _nesting(fact.get("value")) > MAX_VALUE_NESTING:
                problems.append(f"test report {i} nested too deep")
                continue
            seen_tests[i] = CallResult(
                ok=fact.get("ok") is True, value=fact.get("value"), error=fact.get("error")
            )
        elif kind in ("load", "sentinel", "lever") and kind not in kinds:
            kinds.append(kind)
            if kind == "load":
                ex.loaded, ex.load_error = fact.get("ok") is True, fact.get("error")
            elif kind == "sentinel":
                ex.sentinel = fact.get("value") is True
            else:
                ex.lever_present, ex.lever_ok = fact.get("present") is True, fact.get("ok") is True
        else:
            problems.append(f"unexpected report line of kind {_brief(kind)}")
    if outcome.get("report_truncated"):
        problems.append("report over the size limit")
    ex.calls = [seen_tests.get(i, CallResult(ok=False, error="no result")) for i in range(n_calls)]
    if problems:
        ex.error = "tampered report: " + "; ".join(problems[:3])
    return ex


def job_payload(job: Job, limits: Limits) -> bytes:
    """The message a runner receives for ``job``: everything its ``Execution`` depends on."""
    payload = {
        "code": job.code,
        "preamble": job.preamble,
        "method": job.method,
        "calls": [[list(a), dict(k)] for a, k in job.calls],
        "test_function": job.test_function,
        "sentinel_attrs": list(job.sentinel_attrs),
        "limits": asdict(limits),
    }
    return json.dumps(payload).encode()


class _Runner:
    """One worker process and its framed pipe."""

    def __init__(self, limits: Limits, namespaces: bool, network_isolation: bool, cgroup: str):
        config = {"namespaces": namespaces, "network_isolation": network_isolation, "cgroup": cgroup}
        self.limits = limits
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(RUNNER_PATH), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=RUNNER_ENV,
            cwd="/",
        )
        hello = self._receive(time.monotonic() + 60.0)
        if hello is None or "isolation" not in hello:
            self.kill()
            raise RuntimeError("sandbox runner failed to start (no start-up message)")
        self.isolation: dict = hello["isolation"]

    def run(self, job: Job) -> Execution:
        data = job_payload(job, self.limits)
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        self.proc.stdin.flush()
        outcome = self._receive(time.monotonic() + self.limits.wall_s + 10.0)
        if outcome is None:
            raise RuntimeError("sandbox runner stopped answering")
        return parse_outcome(outcome, len(job.calls))

    def _receive(self, deadline: float) -> dict | None:
        head = self._read_exact(4, deadline)
        if head is None:
            return None
        body = self._read_exact(struct.unpack(">I", head)[0], deadline)
        return None if body is None else json.loads(body)

    def _read_exact(self, n: int, deadline: float) -> bytes | None:
        fd, buf = self.proc.stdout.fileno(), bytearray()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                return None
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class Sandbox:
    """A pool of sandbox runners (slots). Use as a context manager.

    ``run(jobs)`` returns one ``Execution`` per job, in order. A runner that dies or stops
    answering (whatever a submission did) is replaced, and its job reports the error.
    ``cgroup``: "auto" (cgroup v1 where memory, pids and cpuacct are mounted, else v2),
    "v1", "v2", or "off" (today's per-process rlimits only); a slot whose group cannot be
    made falls back to "off" and says why in ``isolation``.

    ``cache``: how many distinct jobs' ``Execution``s to remember (0: none). With a cache,
    a job whose runner message (``job_payload``: code, preamble, method, call arguments,
    levers and limits) equals one already run, in this call or an earlier one, is not run
    again but gets that ``Execution`` (a timeout included; a runner failure is never
    remembered). The grader forms its verdict from it afresh, so a cached grade is the
    fresh grade of any submission that behaves the same on every run. The oldest entry
    goes first when the cache is full. Off by default: the isolation tests run identical
    jobs side by side on purpose.
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits = Limits(),
        namespaces: bool = True,
        network_isolation: bool = True,
        cgroup: str = "auto",
        cache: int = 0,
    ):
        if cgroup not in CGROUP_CHOICES:
            raise ValueError(f"cgroup={cgroup!r}: expected one of {', '.join(CGROUP_CHOICES)}")
        self.limits = limits
        self.cache_size = cache
        self._cache: dict[bytes, Execution] = {}  # job_payload -> Execution, oldest first
        self.cache_hits = 0
        self._runner_args = (limits, namespaces, network_isolation, cgroup)
        self._runners = [_Runner(*self._runner_args) for _ in range(workers or os.cpu_count() or 1)]
        self.isolation: dict = self._runners[0].isolation

    def run(self, jobs: Sequence[Job], progress: Callable[[int], None] | None = None) -> list[Execution]:
        if not self.cache_size:
            return self._run(jobs, progress)
        keys = [job_payload(job, self.limits) for job in jobs]
        first: dict[bytes, int] = {}  # a job not yet cached -> its first position in jobs
        for i, key in enumerate(keys):
            if key not in self._cache and key not in first:
                first[key] = i
        failed: set[int] = set()
        fresh = dict(zip(first, self._run([jobs[i] for i in first.values()], progress, failed)))
        results = [fresh[key] if key in fresh else self._cache[key] for key in keys]
        for n, key in enumerate(first):
            if n not in failed:
                self._cache[key] = fresh[key]
        while len(self._cache) > self.cache_size:
            del self._cache[next(iter(self._cache))]
        self.cache_hits += len(jobs) - len(first)
        if progress and len(jobs) > len(first):
            progress(len(jobs) - len(first))
        return results

    def _run(
        self,
        jobs: Sequence[Job],
        progress: Callable[[int], None] | None = None,
        failed: set[int] | None = None,
    ) -> list[Execution]:
        """Run every job; the positions of those whose runner failed go into ``failed``."""
        results: list[Execution | None] = [None] * len(jobs)
        todo: queue.Queue[int] = queue.Queue()
        for i in range(len(jobs)):
            todo.put(i)

        def work(slot: int) -> None:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = self._runners[slot].run(jobs[i])
                except (RuntimeError, OSError, ValueError) as exc:
                    results[i] = Execution(error=f"sandbox: {exc}")
                    if failed is not None:
                        failed.add(i)
                    self._runners[slot].kill()
                    self._runners[slot] = _Runner(*self._runner_args)
                if progress:
                    progress(1)

        threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in range(len(self._runners))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results  # type: ignore[return-value]

    def runner_pids(self) -> list[int]:
        return [r.proc.pid for r in self._runners]

    def slot_uids(self) -> list[int | None]:
        """The uid each slot's submissions run as (None: no uid drop here)."""
        return [r.isolation.get("slot_uid") for r in self._runners]

    def close(self) -> None:
        for r in self._runners:
            r.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe_isolation(isolation: dict) -> str:
    """One line per isolation layer, saying whether it is in force (and, for the slot's
    uid and control group, what stands in where it is not)."""
    if isolation.get("cgroup"):
        cgroup = (
            f"control group per slot (cgroup {isolation['cgroup']}): memory and processes limited "
            "on the whole tree, its CPU time killed at cpu_s (ms resolution)",
            True,
        )
    else:
        cgroup = (
            "control group per slot: not available here "
            f"({isolation.get('cgroup_error') or 'not tried'}); memory and processes limited "
            "per process, CPU in whole seconds (rlimits)",
            False,
        )
    if isolation.get("uid_per_slot"):
        uid = (
            f"unprivileged uid of its own per slot, from a reserved range (first slot: {isolation.get('slot_uid')})",
            True,
        )
    elif isolation.get("uid_drop"):
        uid = (f"unprivileged uid (nobody, shared by every slot: {isolation.get('uid_error')})", True)
    else:
        uid = ("unprivileged uid per slot", False)
    layers = [
        ("network namespace (no network)", isolation.get("network_namespace")),
        ("pid namespace (orphans killed with the submission)", isolation.get("pid_namespace")),
        ("minimal read-only root: system libraries and Python only", isolation.get("minimal_root")),
        ("tmpfs cwd and /tmp (disk quota, gone after the run)", isolation.get("tmpfs_cwd")),
        uid,
        cgroup,
        ("user namespace (non-root host)", isolation.get("user_namespace")),
    ]
    lines = [f"  [{'x' if on else ' '}] {name}" for name, on in layers]
    lines.append(
        "  [x] own session, rlimits (cpu, memory, file size, files, processes), timeout, scrubbed env"
    )
    return "\n".join(lines)
