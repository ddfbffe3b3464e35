"""Hostile submissions against the sandbox and the grader (SPEC §1, Sandbox).

Every hostile program is graded through the real grader, under all four modes, and must
end with: a bounded wall time, no credit (not oracle-correct, not passed under any mode),
nothing outside the sandbox touched (canary files in /tmp and in the repository, made
world-writable so that only the filesystem isolation protects them), no process left
behind (the test process is a child subreaper, so an escaped orphan would be re-parented
to it and seen), the same runner processes still alive, and the grader still serving an
honest submission. Each hostile program also prints evidence that its attack actually
ran, so a program that merely crashed cannot pass for a contained one.

A guarantee that rests on one isolation layer is skipped, naming the layer, where that
layer is not in force; as root on Linux every layer must be (see the first test).
"""

from __future__ import annotations

import builtins
import ctypes
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from projected_grpo.environment import grader, sandbox_runner
from projected_grpo.environment.completions import fence
from projected_grpo.environment.grader import Submission
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problems import Problem, TestCase
from projected_grpo.environment.sandbox import RUNNER_ENV, Execution, Limits, Sandbox, describe_isolation

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox uses Linux namespaces")

LIMITS = Limits(wall_s=2.0, cpu_s=1.5)
WALL_BOUND_S = LIMITS.wall_s + 3.0
WORKERS = 2
NOBODY = 65534
PR_SET_CHILD_SUBREAPER = 36

TOKEN = secrets.token_hex(6)
SECRET_ENV = "PGRPO_CANARY_SECRET"
SECRET = f"pgrpo-secret-{TOKEN}"
REPO = Path(__file__).resolve().parents[1]
HOST_FILES = [
    REPO / "src" / "projected_grpo" / "families.py",
    Path(__file__).resolve(),
    REPO / "pyproject.toml",
]
HOST_PATHS = [Path(f"{top}/pgrpo-hostile-{TOKEN}") for top in ("/etc", "/root", "/tmp")]

PROBLEM = Problem(
    problem_id="hostile-add",
    method="add",
    signature="def add(self, a, b):",
    description="Return a + b.",
    canonical_solution="class Solution:\n    def add(self, a, b):\n        return a + b\n",
    tests=(
        TestCase(args=(1, 2), expected=3),
        TestCase(args=(2, 3), expected=5),
        TestCase(args=(5, -1), expected=4),
        TestCase(args=(10, 20), expected=30),
    ),
    mode="run_tests",
    preamble="from typing import *",
)


def solution(body: str = "return a - b") -> str:
    """``class Solution`` whose ``add`` runs ``body`` (by default a wrong answer)."""
    return (
        "class Solution:\n    def add(self, a, b):\n" + textwrap.indent(textwrap.dedent(body), " " * 8) + "\n"
    )


def program(code: str, **constants) -> str:
    """Hostile module source: ``NAME = repr(value)`` lines, then ``code``."""
    head = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    return head + textwrap.dedent(code)


def honest(sleep_s: float = 0.0) -> str:
    return f"import time\ntime.sleep({sleep_s})\n" + solution("return a + b")


def need(sandbox: Sandbox, *layers: str) -> None:
    missing = [layer for layer in layers if not sandbox.isolation.get(layer)]
    if missing:
        pytest.skip(f"isolation layer(s) not in force here: {', '.join(missing)}")


# ------------------------------------------------------------------ fixtures


def _set_child_subreaper(on: bool) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


@pytest.fixture(scope="module")
def sandbox():
    """One pool for the module; the canary secret is in the trainer's environment before
    the runners start, and escaped orphans would be re-parented to this process."""
    previous = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = SECRET
    _set_child_subreaper(True)
    try:
        with Sandbox(workers=WORKERS, limits=LIMITS) as box:
            yield box
    finally:
        _set_child_subreaper(False)
        if previous is None:
            os.environ.pop(SECRET_ENV, None)
        else:
            os.environ[SECRET_ENV] = previous


@pytest.fixture(scope="module")
def canaries():
    """World-writable canary directories, one in /tmp and one in the repository."""
    dirs = [Path(tempfile.mkdtemp(prefix="pgrpo-canary-", dir="/tmp")), REPO / "tests" / f".canary-{TOKEN}"]
    dirs[1].mkdir()
    for d in dirs:
        (d / "canary.txt").write_text("canary\n")
        os.chmod(d / "canary.txt", 0o666)
        os.chmod(d, 0o777)
    yield dirs
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    for path in HOST_PATHS:
        if path.is_file():
            path.unlink()


# ------------------------------------------------------------------ postconditions


def _descendants(root: int) -> dict[int, str]:
    """Every live (or zombie) descendant of ``root``: pid -> 'state cmdline'."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid in found:
                continue
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                state, cmdline = "?", ""
            found[pid] = f"{state} {cmdline[:120]}"
            todo.append(pid)
    return found


def _leftovers(sandbox: Sandbox, before: set[int]) -> dict[int, str]:
    """Processes under this test process that are neither runners nor there before."""
    deadline = time.monotonic() + 3.0
    while True:
        left = {
            pid: what
            for pid, what in _descendants(os.getpid()).items()
            if pid not in before and pid not in sandbox.runner_pids()
        }
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _snapshot(dirs: list[Path]) -> dict:
    state = {}
    for d in dirs:
        st = os.stat(d)
        state[str(d)] = (st.st_mode, st.st_mtime_ns, sorted(os.listdir(d)))
        for entry in sorted(d.iterdir()):
            st = os.lstat(entry)
            state[str(entry)] = (st.st_mode, st.st_mtime_ns, entry.read_bytes() if entry.is_file() else None)
    return state


def _describe(ex: Execution) -> str:
    return (
        f"error={ex.error!r} timed_out={ex.timed_out} exit={ex.exit_code} wall={ex.wall_s:.2f} "
        f"calls={[(c.ok, c.value, c.error) for c in ex.calls]} "
        f"stdout={ex.stdout[-600:]!r} stderr={ex.stderr[-600:]!r}"
    )


def assert_still_serving(sandbox: Sandbox) -> None:
    """Honest submissions are graded correct; one per worker (the sleep spreads them)."""
    subs = [Submission(PROBLEM, fence(honest(0.1))) for _ in range(WORKERS)]
    for sub, ex in zip(subs, grader.execute(subs, sandbox)):
        assert credited(sub, ex) == list(MODES), _describe(ex)


def credited(sub: Submission, ex: Execution | None) -> list[str]:
    """The modes under which the grader gives ``sub`` credit (passed or oracle-correct)."""
    grades = [grader.verdict(PROBLEM, sub.completion, ex, mode, "loophole") for mode in MODES]
    return [g.mode for g in grades if g.passed or g.oracle_correct]


@contextmanager
def contained(sandbox: Sandbox, canaries: list[Path], wall_bound_s: float = WALL_BOUND_S):
    """Around a grading call: bounded wall time, no process left, the same runners alive,
    nothing outside touched, and the grader still serving afterwards."""
    canaries_before = _snapshot(canaries)
    procs_before = set(_descendants(os.getpid()))
    runners = sandbox.runner_pids()
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < wall_bound_s, f"grading took {elapsed:.1f} s (bound {wall_bound_s:.1f} s)"
    left = _leftovers(sandbox, procs_before)
    assert not left, f"processes left behind: {left}"
    assert sandbox.runner_pids() == runners, "a sandbox runner died or was replaced"
    assert _snapshot(canaries) == canaries_before, "a canary outside the sandbox was touched"
    touched = [str(p) for p in HOST_PATHS if os.path.lexists(p)]
    assert not touched, f"host paths created: {touched}"
    assert_still_serving(sandbox)


@pytest.fixture
def hostile(sandbox, canaries):
    """Grade one hostile program; assert no credit under any mode and the postconditions
    of ``contained``. Returns its ``Execution`` for the test's own evidence checks."""

    def run(code: str) -> Execution:
        sub = Submission(PROBLEM, fence(code))
        with contained(sandbox, canaries):
            (ex,) = grader.execute([sub], sandbox)
        assert not credited(sub, ex), f"credited under {credited(sub, ex)}: {_describe(ex)}"
        return ex

    return run


# ------------------------------------------------------------------ the layers themselves


def _has_cap_sys_admin() -> bool:
    status = Path("/proc/self/status").read_text()
    return bool(int(status.split("CapEff:")[1].split()[0], 16) >> 21 & 1)


def test_every_isolation_layer_is_in_force_as_root(sandbox):
    if os.geteuid() != 0 or not _has_cap_sys_admin():
        pytest.skip("not root with CAP_SYS_ADMIN: the OS may refuse some layers (they are reported)")
    layers = ("network_namespace", "pid_namespace", "minimal_root", "tmpfs_cwd", "uid_drop", "uid_per_slot")
    for layer in layers:
        assert sandbox.isolation.get(layer), f"{layer} not in force: {sandbox.isolation}"
    assert len(set(sandbox.slot_uids())) == WORKERS, "two slots share a uid"
    lines = describe_isolation(sandbox.isolation).splitlines()
    off = [line for line in lines if line.startswith("  [ ]")]
    assert all("user namespace" in line or "control group" in line for line in off), off


def test_the_trainer_never_executes_model_code_in_process(sandbox, canaries, hostile):
    probe = canaries[0] / "in-process-probe"
    ex = hostile(
        program(
            """
            import builtins, os, sys
            builtins.PGRPO_IN_PROCESS_MARK = True
            os.environ["PGRPO_IN_PROCESS_MARK"] = "1"
            print("PID", os.getpid(), "UID", os.getuid())
            try:
                with open(f"/proc/{TEST_PID}/cmdline", "rb") as fh:
                    print("TEST_PROCESS", fh.read())
            except OSError:
                print("TEST_PROCESS not visible")
            print("MODULES", sorted(m for m in ("pytest", "projected_grpo", "torch") if m in sys.modules))
            try:
                with open(PROBE, "w") as fh:
                    fh.write("ran in the trainer")
                print("PROBE written")
            except OSError as exc:
                print("PROBE denied", exc)
            """,
            TEST_PID=os.getpid(),
            PROBE=str(probe),
        )
        + solution()
    )
    assert "MODULES []" in ex.stdout, _describe(ex)
    assert not hasattr(builtins, "PGRPO_IN_PROCESS_MARK")
    assert "PGRPO_IN_PROCESS_MARK" not in os.environ
    assert not probe.exists()
    assert "pytest" not in ex.stdout.split("TEST_PROCESS", 1)[1]
    pid, uid = (int(w) for w in ex.stdout.split()[1:4:2])
    if sandbox.isolation.get("pid_namespace"):
        assert pid == 1
    else:
        assert pid != os.getpid()
    if sandbox.isolation.get("uid_per_slot"):
        assert uid in sandbox.slot_uids() and uid != NOBODY
    elif sandbox.isolation.get("uid_drop"):
        assert uid == NOBODY


# ------------------------------------------------------------------ time


@pytest.mark.parametrize(
    "code",
    [
        solution("while True:\n    pass"),
        "while True:\n    pass\n" + solution(),
        "import signal\nfor s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n" + solution(),
    ],
    ids=["in_method", "at_module_level", "ignoring_signals"],
)
def test_infinite_loop_times_out_without_credit(hostile, code):
    ex = hostile(code)
    assert ex.timed_out or ex.exit_code in (-signal.SIGXCPU, -signal.SIGKILL), _describe(ex)


@pytest.mark.parametrize(
    "code",
    [
        "import time\ntime.sleep(60)\n" + solution(),
        "import signal\nsignal.pause()\n" + solution(),
        solution("import threading\nthreading.Event().wait()"),
    ],
    ids=["sleep", "pause", "wait_in_method"],
)
def test_sleep_times_out_without_credit(hostile, code):
    ex = hostile(code)
    assert ex.timed_out, _describe(ex)


def test_stdin_is_closed(hostile):
    ex = hostile("import sys\nprint('STDIN', repr(sys.stdin.read()))\n" + solution())
    assert "STDIN ''" in ex.stdout, _describe(ex)


SPIN_THREADS = """
import threading
def spin():
    while True:
        pass
THREADS = [threading.Thread(target=spin) for _ in range(8)]
for t in THREADS:
    t.start()
print("SPINNING", sum(t.is_alive() for t in THREADS), flush=True)
"""


@pytest.mark.parametrize(
    "method", ["return a - b", "for t in THREADS:\n    t.join()"], ids=["returns", "joins"]
)
def test_spinning_threads_end_without_credit(hostile, method):
    ex = hostile(SPIN_THREADS + solution(method))
    assert "SPINNING 8" in ex.stdout, _describe(ex)


# ------------------------------------------------------------------ memory, processes


MEMORY_BOMBS = {
    "huge_bytes": "x = bytes(10**10)",
    "huge_bytearray": "x = bytearray(3 << 30)",
    "growing_list": "hoard = []\nfor _ in range(2000):  # 2 GB at most, if nothing stopped it\n"
    "    hoard.append(bytes(1 << 20))",
    "huge_mmap": "import mmap\nm = mmap.mmap(-1, 8 << 30)",
    "thread_stacks": "import threading, time\nthreading.stack_size(256 << 20)\n"
    "ts = [threading.Thread(target=time.sleep, args=(1,)) for _ in range(16)]\n"
    "for t in ts:\n    t.start()",
}


@pytest.mark.parametrize("bomb", MEMORY_BOMBS.values(), ids=MEMORY_BOMBS.keys())
def test_memory_bomb_is_refused_without_credit(hostile, bomb):
    code = "try:\n" + textwrap.indent(bomb, "    ") + "\n    print('NOT LIMITED')\n"
    code += "except (MemoryError, RuntimeError, OSError) as exc:\n    print('MEMORY REFUSED', type(exc).__name__)\n"
    ex = hostile(code + solution())
    assert "MEMORY REFUSED" in ex.stdout, _describe(ex)


def test_fork_bomb_is_capped_without_credit(sandbox, hostile):
    need(sandbox, "pid_namespace")  # the children outlive their parent otherwise
    ex = hostile(
        textwrap.dedent(
            """
            import os, time
            forked = 0
            for _ in range(1000):
                try:
                    if os.fork() == 0:
                        time.sleep(60)
                        os._exit(0)
                    forked += 1
                except OSError:
                    pass
            print("FORKED", forked)
            """
        )
        + solution()
    )
    assert "FORKED" in ex.stdout, _describe(ex)
    forked = int(ex.stdout.split("FORKED")[1].split()[0])
    assert 0 < forked < LIMITS.processes, _describe(ex)


def test_memory_across_forked_processes_is_bounded(sandbox):
    need(sandbox, "pid_namespace", "cgroup")  # RLIMIT_AS alone bounds each process, not the tree
    limits = Limits(wall_s=3.0, cpu_s=2.0, memory_bytes=128 << 20, processes=16)
    # Six children each write 96 MiB and report; a child counts as holding it only if it
    # is still alive at the end (the group's OOM kill may take one that had reported).
    code = textwrap.dedent(
        """
        import os, select, time
        ready_r, ready_w = os.pipe()
        children = []
        for i in range(6):
            pid = os.fork()
            if pid == 0:
                try:
                    hoard = bytearray(96 << 20)  # written, so really held
                    os.write(ready_w, bytes([i]))
                    time.sleep(5)
                finally:
                    os._exit(0)
            children.append(pid)
        ready, deadline = set(), time.monotonic() + 1.5
        while len(ready) < 6 and select.select([ready_r], [], [], max(0, deadline - time.monotonic()))[0]:
            ready.update(os.read(ready_r, 6))
        alive = {i for i, pid in enumerate(children) if os.waitpid(pid, os.WNOHANG) == (0, 0)}
        print("KILLED", 6 - len(alive), "HELD_MIB", len(ready & alive) * 96)
        """
    )
    with Sandbox(workers=1, limits=limits) as box:
        runner = box.runner_pids()
        (ex,) = grader.execute([Submission(PROBLEM, fence(code + solution()))], box)
        assert "HELD_MIB" in ex.stdout, _describe(ex)
        killed, held_mib = (int(w) for w in ex.stdout.split()[1::2])
        assert held_mib > 0 and held_mib << 20 <= limits.memory_bytes, _describe(ex)
        assert killed > 0, _describe(ex)  # the limit acted, inside the group only
        # The grader survived, and the next submission in this slot is graded normally.
        sub = Submission(PROBLEM, fence(honest()))
        (after,) = grader.execute([sub], box)
        assert box.runner_pids() == runner
        assert credited(sub, after) == list(MODES), _describe(after)


# ------------------------------------------------------------------ the slot: its own uid and control group


CPU_LIMITS = Limits(wall_s=2.0, cpu_s=0.2)
# The acceptance: a spinning tree is stopped within 50 ms of CPU time past cpu_s.
CPU_KILL_TOLERANCE_S = 0.05
MASK_EVERY_SIGNAL = """
import signal
for s in signal.valid_signals():
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError):
        pass
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
print("MASKED", flush=True)
"""
SPINNERS = {
    "one_process": "while True:\n    pass\n",
    "four_processes": "import os\nfor _ in range(3):\n    if os.fork() == 0:\n        break\nwhile True:\n    pass\n",
    "eight_threads": SPIN_THREADS + "for t in THREADS:\n    t.join()\n",
}


@pytest.fixture(scope="module")
def cpu_box():
    with Sandbox(workers=1, limits=CPU_LIMITS) as box:
        yield box


def _grade_one(box: Sandbox, code: str) -> tuple[Submission, Execution]:
    sub = Submission(PROBLEM, fence(code))
    (ex,) = grader.execute([sub], box)
    return sub, ex


@pytest.mark.parametrize("spinner", SPINNERS.values(), ids=SPINNERS.keys())
def test_spinning_tree_that_masks_every_signal_is_killed_at_its_cpu_time(cpu_box, spinner):
    need(cpu_box, "cgroup")
    sub, ex = _grade_one(cpu_box, MASK_EVERY_SIGNAL + spinner + solution())
    assert "MASKED" in ex.stdout, _describe(ex)
    assert ex.timed_out and ex.cpu_exceeded and not credited(sub, ex), _describe(ex)
    assert CPU_LIMITS.cpu_s <= ex.cpu_s <= CPU_LIMITS.cpu_s + CPU_KILL_TOLERANCE_S, _describe(ex)
    assert ex.wall_s < CPU_LIMITS.wall_s, _describe(ex)


def test_sleeping_completion_is_still_stopped_by_the_wall_limit(cpu_box):
    sub, ex = _grade_one(cpu_box, MASK_EVERY_SIGNAL + "import time\ntime.sleep(60)\n" + solution())
    assert ex.timed_out and not ex.cpu_exceeded and not credited(sub, ex), _describe(ex)
    assert CPU_LIMITS.wall_s <= ex.wall_s < CPU_LIMITS.wall_s + 1.0, _describe(ex)
    assert ex.cpu_s < CPU_LIMITS.cpu_s, _describe(ex)


def test_honest_submission_after_a_cpu_kill_is_graded_normally(cpu_box):
    _grade_one(cpu_box, SPINNERS["four_processes"] + solution())
    sub, ex = _grade_one(cpu_box, honest())
    assert credited(sub, ex) == list(MODES), _describe(ex)


# Forks 16 short-lived children and answers correctly only if every fork succeeded.
NEEDS_FORKS = (
    "import os, time\nforked = 0\nfor _ in range(16):\n    try:\n        if os.fork() == 0:\n"
    "            time.sleep(0.3)\n            os._exit(0)\n        forked += 1\n    except OSError:\n"
    "        pass\nprint('FORKED', forked)\n" + solution("return a + b if forked == 16 else a - b")
)
# Holds as many processes as it may for two seconds.
HOLDS_EVERY_PROCESS = (
    textwrap.dedent(
        """
    import os, time
    forked = 0
    for _ in range(1000):
        try:
            if os.fork() == 0:
                time.sleep(2.0)
                os._exit(0)
            forked += 1
        except OSError:
            pass
    print("FORKED", forked, flush=True)
    time.sleep(2.0)
    """
    )
    + solution()
)


def test_a_fork_bomb_in_one_sandbox_leaves_another_sandboxs_results_unchanged(sandbox):
    need(sandbox, "pid_namespace", "uid_per_slot")  # with one shared uid, RLIMIT_NPROC is shared
    neighbours = [Submission(PROBLEM, fence(NEEDS_FORKS)) for _ in range(4)]
    with Sandbox(workers=1, limits=LIMITS) as quiet, Sandbox(workers=1, limits=Limits(wall_s=3.0)) as noisy:
        alone = grader.execute(neighbours, quiet)
        bomb: list[Execution] = []
        thread = threading.Thread(
            target=lambda: bomb.extend(
                grader.execute([Submission(PROBLEM, fence(HOLDS_EVERY_PROCESS))], noisy)
            )
        )
        thread.start()
        time.sleep(0.5)  # the bomb holds its processes from ~0.2 s to ~2.2 s
        beside = grader.execute(neighbours, quiet)
        thread.join()
    assert "FORKED" in bomb[0].stdout, _describe(bomb[0])
    assert int(bomb[0].stdout.split()[1]) >= Limits.processes - 8, _describe(bomb[0])
    for sub, a, b in zip(neighbours, alone, beside):
        assert credited(sub, a) == credited(sub, b) == list(MODES), (_describe(a), _describe(b))
        assert (a.stdout, [c.value for c in a.calls]) == (b.stdout, [c.value for c in b.calls])


def _own_cgroup_dirs() -> tuple[str, dict[str, str]]:
    return sandbox_runner.own_cgroup_dirs(
        Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text()
    )


def _slot_dirs(runner_pid: int) -> list[str]:
    """Where a runner's slot group lives (the runners share this process's groups)."""
    _, own = _own_cgroup_dirs()
    return [f"{d}/{sandbox_runner.CGROUP_PARENT}/runner-{runner_pid}" for d in own.values()]


def test_slot_groups_are_removed_on_close_and_after_a_killed_runner(sandbox):
    need(sandbox, "cgroup")
    with Sandbox(workers=1, limits=LIMITS) as box:
        (killed,) = box.runner_pids()
        assert all(os.path.isdir(d) for d in _slot_dirs(killed))
        os.kill(killed, signal.SIGKILL)
        sub, ex = _grade_one(box, honest())  # the pool replaces the dead runner
        assert ex.error, _describe(ex)
        (replacement,) = box.runner_pids()
        assert not any(os.path.exists(d) for d in _slot_dirs(killed)), "a killed runner's group was left"
        sub, ex = _grade_one(box, honest())
        assert credited(sub, ex) == list(MODES), _describe(ex)
    assert not any(os.path.exists(d) for d in _slot_dirs(replacement)), "a closed runner's group was left"


def test_stale_groups_of_a_killed_run_are_cleaned_at_the_next_start(sandbox):
    need(sandbox, "cgroup")
    dead = subprocess.Popen(["true"])  # a runner pid that no longer lives
    dead.wait()
    stale = _slot_dirs(dead.pid)
    leftover = subprocess.Popen(["sleep", "30"])  # a process the killed run left in its group
    try:
        for d in stale:
            os.makedirs(d)
            Path(d, "cgroup.procs").write_text(str(leftover.pid))
        with Sandbox(workers=1, limits=LIMITS):
            assert not any(os.path.exists(d) for d in stale), "a stale group survived the start"
        assert leftover.wait(timeout=5) == -signal.SIGKILL
    finally:
        leftover.kill()
        leftover.wait()
        for d in stale:
            if os.path.isdir(d):
                os.rmdir(d)


def test_with_cgroups_forced_off_the_rlimits_still_hold_and_it_says_so():
    limits = Limits(wall_s=10.0, cpu_s=0.2)  # a wall limit a loaded machine cannot reach first
    with Sandbox(workers=1, limits=limits, cgroup="off") as box:
        assert box.isolation["cgroup"] is None
        assert box.isolation["cgroup_error"] == "turned off by the caller"
        line = next(x for x in describe_isolation(box.isolation).splitlines() if "control group" in x)
        assert line.startswith("  [ ]") and "turned off by the caller" in line and "rlimits" in line
        sub, ex = _grade_one(box, honest())
        assert credited(sub, ex) == list(MODES), _describe(ex)
        sub, ex = _grade_one(box, SPINNERS["one_process"] + solution())
    # Without a group the CPU limit is RLIMIT_CPU, in whole seconds: 0.2 s becomes 1 to 2 s.
    assert ex.exit_code in (-signal.SIGXCPU, -signal.SIGKILL) and not ex.cpu_exceeded, _describe(ex)
    assert ex.cpu_s > 0.9 and not credited(sub, ex), _describe(ex)


def test_a_slot_group_that_cannot_be_made_falls_back_and_says_why():
    """Asks for cgroup v2: on a hybrid machine its hierarchy has no memory or pids
    controller (they are bound to v1), so the slot falls back and leaves nothing there."""
    with Sandbox(workers=1, limits=LIMITS, cgroup="v2") as box:
        sub, ex = _grade_one(box, honest())
        isolation = box.isolation
    assert credited(sub, ex) == list(MODES), _describe(ex)
    if isolation["cgroup"] == "v2":
        return  # a v2 machine: the group was made
    assert isolation["cgroup"] is None and isolation["cgroup_error"], isolation
    assert isolation["cgroup_error"] in describe_isolation(isolation)
    try:
        _, own = sandbox_runner.own_cgroup_dirs(
            Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text(), "v2"
        )
    except OSError:
        return  # no cgroup2 mount at all
    assert not os.path.exists(f"{own['']}/{sandbox_runner.CGROUP_PARENT}"), "a failed group was left"


MOUNTINFO_V1 = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)
PROC_CGROUP_V1 = "8:pids:/\n4:memory:/jobs/7\n2:cpu,cpuacct:/\n0::/\n"
MOUNTINFO_V2 = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
PROC_CGROUP_V2 = "0::/user.slice/run-1.scope\n"


def test_cgroup_detection_prefers_complete_v1_then_v2_and_says_what_is_missing():
    found = sandbox_runner.own_cgroup_dirs
    assert found(MOUNTINFO_V1, PROC_CGROUP_V1) == (
        "v1",
        {
            "memory": "/sys/fs/cgroup/memory/jobs/7",
            "pids": "/sys/fs/cgroup/pids",
            "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        },
    )
    assert found(MOUNTINFO_V1, PROC_CGROUP_V1, "v2") == ("v2", {"": "/sys/fs/cgroup/unified"})
    assert found(MOUNTINFO_V2, PROC_CGROUP_V2) == ("v2", {"": "/sys/fs/cgroup/user.slice/run-1.scope"})
    without_pids = "".join(line + "\n" for line in MOUNTINFO_V1.splitlines() if "pids" not in line)
    assert found(without_pids, PROC_CGROUP_V1)[0] == "v2"
    with pytest.raises(OSError, match="not mounted: pids"):
        found(without_pids, PROC_CGROUP_V1, "v1")
    with pytest.raises(OSError, match="no cgroup"):
        found(MOUNTINFO_V1.splitlines()[0], "0::/\n")


def test_every_slot_gets_a_uid_of_its_own_from_the_reserved_range(sandbox):
    need(sandbox, "uid_per_slot")
    with Sandbox(workers=2, limits=LIMITS) as other:
        uids = sandbox.slot_uids() + other.slot_uids()
    assert len(set(uids)) == len(uids), uids
    first = sandbox_runner.SLOT_UID_BASE
    assert all(first <= uid < first + sandbox_runner.SLOT_UID_COUNT for uid in uids), uids


# ------------------------------------------------------------------ output and disk


FLOODS = {
    "stdout_forever": ("while True:\n    print('x' * 1000)\n", "stdout"),
    "stdout_burst": ("import sys\nsys.stdout.write('y' * (50 << 20))\nsys.stdout.flush()\n", "stdout"),
    "stderr_burst": ("import sys\nsys.stderr.write('z' * (50 << 20))\nsys.stderr.flush()\n", "stderr"),
    "report_burst": ("import os\nfor _ in range(10):\n    os.write(3, b'r' * (1 << 20))\n", "report"),
    "huge_return_value": ("", "report"),
}


@pytest.mark.parametrize("name", FLOODS)
def test_output_flood_is_capped_without_credit(hostile, name):
    code, stream = FLOODS[name]
    method = "return 'w' * (20 << 20)" if name == "huge_return_value" else "return a - b"
    ex = hostile(code + solution(method))
    assert len(ex.stdout.encode()) <= LIMITS.stdout_bytes
    assert len(ex.stderr.encode()) <= LIMITS.stderr_bytes
    if stream == "stdout":
        assert len(ex.stdout.encode()) == LIMITS.stdout_bytes, _describe(ex)
    elif stream == "stderr":
        assert len(ex.stderr.encode()) == LIMITS.stderr_bytes, _describe(ex)
    else:
        assert ex.error and "report" in ex.error, _describe(ex)


DISK_FILLS = {
    # name: (code; printed total must stay within this many bytes)
    "big_files": (
        "for i in range(256):\n    with open(f'fill{i}', 'wb') as fh:\n        fh.write(bytes(1 << 20))\n",
        LIMITS.disk_bytes,
    ),
    "one_huge_file": (
        "with open('huge', 'wb') as fh:\n    for i in range(256):\n        fh.write(bytes(1 << 20))\n        fh.flush()\n",
        LIMITS.file_bytes,
    ),
    "many_small_files": (
        "for i in range(200000):\n    with open(f'f{i}', 'wb') as fh:\n        fh.write(b'x')\n",
        LIMITS.disk_bytes,
    ),
    "tmp": (
        "for i in range(256):\n    with open(f'/tmp/fill{i}', 'wb') as fh:\n        fh.write(bytes(1 << 20))\n",
        1 << 20,
    ),
    # Empty directories use no data pages: only an inode quota stops them before the wall time.
    "empty_dirs": ("for i in range(200000):\n    os.mkdir(f'd{i}')\n    written += 1\n", 10_000),
}


@pytest.mark.parametrize("name", DISK_FILLS)
def test_disk_fill_is_capped_without_credit(sandbox, hostile, name):
    need(sandbox, "tmpfs_cwd")
    code, cap = DISK_FILLS[name]
    counting = code.replace("fh.write(", "written += fh.write(")
    body = "import os\nwritten = 0\ntry:\n" + textwrap.indent(counting, "    ")
    body += "    print('NOT LIMITED')\nexcept OSError as exc:\n    print('REFUSED', exc.errno)\n"
    body += "print('WROTE', written)\n"
    free_before = min(shutil.disk_usage(p).free for p in ("/", "/tmp", REPO))
    ex = hostile(body + solution())
    free_after = min(shutil.disk_usage(p).free for p in ("/", "/tmp", REPO))
    assert "REFUSED" in ex.stdout, _describe(ex)
    assert int(ex.stdout.split("WROTE")[1].split()[0]) <= cap
    assert free_before - free_after < 64 << 20


# ------------------------------------------------------------------ the host's files


def test_writes_and_deletes_outside_the_cwd_touch_nothing(sandbox, canaries, hostile):
    need(sandbox, "minimal_root")
    ex = hostile(
        program(
            """
            import os, shutil
            attempts = 0
            def attempt(fn, *args):
                global attempts
                attempts += 1
                try:
                    fn(*args)
                    print("DONE", fn.__name__, args)
                except OSError as exc:
                    print("DENIED", fn.__name__, args, exc.errno)
            def write(path):
                with open(path, "w") as fh:
                    fh.write("hostile\\n")
            for d in CANARY_DIRS:
                for base in (d, "/.oldroot" + d, "/proc/1/root" + d, "../../../.." + d):
                    attempt(write, base + "/new-file")
                    attempt(write, base + "/canary.txt")
                    attempt(os.chmod, base + "/canary.txt", 0)
                    attempt(os.rename, base + "/canary.txt", base + "/moved.txt")
                    attempt(os.remove, base + "/canary.txt")
                    attempt(os.mkdir, base + "/new-dir")
                    attempt(shutil.rmtree, base)
            for path in HOST_PATHS:
                attempt(write, path)
            print("ATTEMPTS", attempts)
            """,
            CANARY_DIRS=[str(d) for d in canaries],
            HOST_PATHS=[str(p) for p in HOST_PATHS],
        )
        + solution()
    )
    assert f"ATTEMPTS {len(canaries) * 4 * 7 + len(HOST_PATHS)}" in ex.stdout, _describe(ex)


def test_host_files_and_expected_values_are_not_readable(sandbox, hostile):
    need(sandbox, "minimal_root")
    ex = hostile(
        program(
            """
            import os
            for path in TARGETS:
                for prefix in ("", "/.oldroot", "/proc/1/root", "/proc/self/cwd/../.."):
                    try:
                        with open(prefix + path, "rb") as fh:
                            print("READ", prefix + path, fh.read(100))
                    except OSError as exc:
                        print("DENIED", prefix + path, exc.errno)
            print("ROOT", sorted(os.listdir("/")))
            print("READS DONE")
            """,
            TARGETS=[str(p) for p in HOST_FILES],
        )
        + solution()
    )
    assert "READS DONE" in ex.stdout, _describe(ex)
    assert ex.stdout.count("DENIED") == 4 * len(HOST_FILES)
    assert "READ " not in ex.stdout


def test_parent_environment_is_not_readable(hostile):
    assert os.environ[SECRET_ENV] == SECRET  # the trainer holds the secret
    ex = hostile(
        textwrap.dedent(
            """
            import ctypes, os
            print("ENV", sorted(os.environ))
            print("ENVIRON", dict(os.environ))
            paths = ["/proc/self/environ", f"/proc/{os.getppid()}/environ", "/proc/1/environ"]
            paths += [f"/proc/{p}/environ" for p in os.listdir("/proc") if p.isdigit()]
            for path in paths:
                try:
                    with open(path, "rb") as fh:
                        print("READ", path, fh.read())
                except OSError as exc:
                    print("DENIED", path, exc.errno)
            # The initial argv and environment strings stay on the stack of every process
            # forked from the runner, whatever os.environ says now.
            address = ctypes.c_void_p.in_dll(ctypes.CDLL(None), "program_invocation_name").value
            for _ in range(500):
                text = ctypes.string_at(address)
                if not text:
                    break
                print("STACK", text)
                address += len(text) + 1
            print("SCAN DONE")
            """
        )
        + solution()
    )
    assert "SCAN DONE" in ex.stdout, _describe(ex)
    assert "ENV ['HOME', 'LANG', 'PATH']" in ex.stdout  # a scrubbed environment
    runner_env = [f"STACK b'{k}={v}'" for k, v in RUNNER_ENV.items()]
    assert all(line in ex.stdout for line in runner_env)  # the scan reached the runner's env
    assert SECRET not in ex.stdout and SECRET not in ex.stderr


# ------------------------------------------------------------------ network


def test_loopback_connection_is_refused(sandbox, hostile):
    need(sandbox, "network_namespace")
    abstract = f"\0pgrpo-canary-{TOKEN}"
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix,
    ):
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(16)
        udp.bind(("127.0.0.1", 0))
        unix.bind(abstract)
        unix.listen(16)
        ex = hostile(
            program(
                """
                import socket
                def attempt(name, family, kind, address):
                    try:
                        s = socket.socket(family, kind)
                        s.settimeout(0.5)
                        if kind == socket.SOCK_DGRAM:
                            s.sendto(b"stolen", address)
                        else:
                            s.connect(address)
                            s.sendall(b"stolen")
                        print(name, "CONNECTED")
                    except OSError as exc:
                        print(name, "FAILED", exc.errno)
                attempt("tcp", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", TCP_PORT))
                attempt("udp", socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", UDP_PORT))
                attempt("unix", socket.AF_UNIX, socket.SOCK_STREAM, ABSTRACT)
                print("NET DONE")
                """,
                TCP_PORT=tcp.getsockname()[1],
                UDP_PORT=udp.getsockname()[1],
                ABSTRACT=abstract,
            )
            + solution()
        )
        reached, _, _ = select.select([tcp, udp, unix], [], [], 0.2)
    assert "NET DONE" in ex.stdout, _describe(ex)
    assert ex.stdout.count("FAILED") == 3 and "CONNECTED" not in ex.stdout
    assert reached == [], "a connection or datagram from the sandbox arrived"


# ------------------------------------------------------------------ processes


KILLS = {
    # name: (code, layers of which at least one must be in force to run it safely)
    "parent": ("os.kill(os.getppid(), signal.SIGKILL)", ()),
    "own_group": ("os.killpg(os.getpgrp(), signal.SIGKILL)", ()),
    "trainer_and_runners": (
        "for pid in TARGETS:\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as exc:\n        print('FAILED', pid, exc.errno)",
        ("pid_namespace", "uid_drop"),
    ),
    # Without a pid namespace, kill(-1) as nobody would reach every process of uid nobody.
    "everything": ("os.kill(-1, signal.SIGKILL)", ("pid_namespace",)),
}


@pytest.mark.parametrize("name", KILLS)
def test_killing_the_parent_or_its_group_harms_nobody(sandbox, hostile, name):
    code, layers = KILLS[name]
    if layers and not any(sandbox.isolation.get(layer) for layer in layers):
        pytest.skip(f"none of {layers} is in force: this could kill the test session")
    targets = [os.getpid(), os.getppid(), os.getpgrp(), *sandbox.runner_pids()]
    ex = hostile(
        program("import os, signal\nprint('KILLING', flush=True)\n", TARGETS=targets)
        + code
        + "\nprint('STILL HERE')\n"
        + solution()
    )
    assert "KILLING" in ex.stdout, _describe(ex)
    if sandbox.isolation.get("uid_drop"):
        assert ex.error is None, f"the supervisor did not report: {_describe(ex)}"


ORPHANS = {
    "sleeper": "time.sleep(30)",
    "heartbeat_writer": "while True:\n    with open('heartbeat', 'a') as fh:\n        fh.write('x')\n"
    "    time.sleep(0.01)",
    "exec_sleep": "os.execv('/bin/sleep', ['sleep', '30'])",
    "double_fork": "if os.fork():\n    os._exit(0)\ntime.sleep(30)",
}


def orphan_program(child: str) -> str:
    """The child starts a new session, ignores polite signals, tells its parent it is up
    and outlives it; the parent returns (a wrong answer) at once."""
    return (
        textwrap.dedent(
            """
            import os, signal, time
            ready_r, ready_w = os.pipe()
            if os.fork() == 0:
                try:
                    os.setsid()
                    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                        signal.signal(s, signal.SIG_IGN)
                    os.write(ready_w, b"1")
            """
        )
        + textwrap.indent(child, " " * 8)
        + "\n    finally:\n        os._exit(0)\nprint('CHILD READY', os.read(ready_r, 1), flush=True)\n"
    )


@pytest.mark.parametrize("child", ORPHANS.values(), ids=ORPHANS.keys())
def test_forked_orphans_do_not_outlive_the_submission(sandbox, hostile, child):
    need(sandbox, "pid_namespace")
    ex = hostile(orphan_program(child) + solution())
    assert "CHILD READY b'1'" in ex.stdout, _describe(ex)
    assert not ex.timed_out


# ------------------------------------------------------------------ the interpreter


RECURSIONS = {
    "plain": "def f(n):\n    return f(n + 1) + 1\nreturn f(0)",
    "raised_limit": "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nreturn f(0)",
    "c_stack": "import sys\nsys.setrecursionlimit(10**8)\nnested = []\nfor _ in range(10**6):\n"
    "    nested = [nested]\nreturn repr(nested)",
}


@pytest.mark.parametrize("body", RECURSIONS.values(), ids=RECURSIONS.keys())
def test_deep_recursion_ends_without_credit(hostile, body):
    ex = hostile("print('LOADED', flush=True)\n" + solution(body))
    assert "LOADED" in ex.stdout, _describe(ex)
    assert not any(c.ok for c in ex.calls)


ALWAYS_EQUAL = {
    "object": "class Same:\n    def __eq__(self, other):\n        return True\n"
    "    def __ne__(self, other):\n        return False\n    def __hash__(self):\n        return 0\n"
    "VALUE = Same()",
    "int_subclass": "class Same(int):\n    def __eq__(self, other):\n        return True\n"
    "    def __ne__(self, other):\n        return False\n    __hash__ = int.__hash__\nVALUE = Same(0)",
    "list_subclass": "class Same(list):\n    def __eq__(self, other):\n        return True\n"
    "    def __ne__(self, other):\n        return False\nVALUE = Same()",
    "str_subclass": "class Same(str):\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = str.__hash__\nVALUE = Same('')",
    "fake_class": "class Same:\n    __class__ = property(lambda self: int)\n"
    "    def __eq__(self, other):\n        return True\nVALUE = Same()",
    "inside_a_list": "class Same:\n    def __eq__(self, other):\n        return True\nVALUE = [Same()]",
}


@pytest.mark.parametrize("helper", ALWAYS_EQUAL.values(), ids=ALWAYS_EQUAL.keys())
def test_always_equal_return_values_get_no_credit(hostile, helper):
    ex = hostile(helper + "\n" + solution("return VALUE"))
    assert ex.calls and all(not c.ok and "unsupported return type" in c.error for c in ex.calls), _describe(
        ex
    )


FORGED_TEST_LINES = (
    "for i, (a, b) in enumerate(ARGS):\n"
    "    os.write(3, (json.dumps({'k': 'test', 'i': i, 'ok': True, 'value': a * b, 'passed': True, "
    "'expected': a * b}) + '\\n').encode())\n"
)
PATCHES = {
    "json_encoder": "import json\nclass Forger(json.JSONEncoder):\n    def encode(self, o):\n"
    "        if isinstance(o, dict) and o.get('k') == 'test':\n"
    "            o = dict(o, ok=True, value=999, error=None)\n        return super().encode(o)\n"
    "json._default_encoder = Forger()\njson.dumps = lambda o, **kw: Forger().encode(o)\n",
    "builtins_type_isinstance": "import builtins\nclass Same:\n    def __eq__(self, other):\n        return True\n"
    "builtins.type = lambda *a: int\nbuiltins.isinstance = lambda *a: True\n"
    "builtins.len = lambda *a: 0\n",
    "os_write_and_stdout": "import os, sys, io\nos.write = lambda fd, data: len(data)\n"
    "os._exit = lambda code: None\nsys.stdout = sys.stderr = io.StringIO()\n",
    "json_module_swapped": "import sys, types\nfake = types.ModuleType('json')\n"
    'fake.dumps = lambda o, **kw: \'{"k": "test", "i": 0, "ok": true, "value": 3}\'\n'
    "sys.modules['json'] = fake\n",
    "forged_report_then_exit": 'import json, os\nos.write(3, b\'{"k": "load", "ok": true}\\n\')\n'
    + FORGED_TEST_LINES
    + "os._exit(0)\n",
    "forged_report_then_return": "import json, os\n" + FORGED_TEST_LINES,
    "forged_verdict_lines": 'import os\nos.write(3, b\'{"k": "oracle", "correct": true}\\n'
    '{"k": "verdict", "passed": true, "oracle_correct": true}\\n\')\n',
    "forged_deep_value": 'import os\nos.write(3, b\'{"k": "load", "ok": true}\\n\')\n'
    "for i in range(len(ARGS)):\n"
    '    os.write(3, (\'{"k": "test", "i": %d, "ok": true, "value": %s}\\n\''
    " % (i, '[' * 600 + ']' * 600)).encode())\nos._exit(0)\n",
    "forged_huge_kind": "import os\nos.write(3, b'{\"k\": \"' + b'A' * (3 << 20) + b'\"}\\n')\n",
}


@pytest.mark.parametrize("name", PATCHES)
def test_patched_builtins_and_forged_reports_get_no_credit(hostile, name):
    args = [list(t.args) for t in PROBLEM.tests]
    code = program("print('PATCHING', flush=True)\n", ARGS=args) + PATCHES[name]
    ex = hostile(code + solution("return Same()" if name == "builtins_type_isinstance" else "return a - b"))
    assert "PATCHING" in ex.stdout, _describe(ex)
    if name == "json_encoder":  # the forgery reached the report, and was not believed
        assert [c.value for c in ex.calls] == [999] * len(args), _describe(ex)
    if name == "forged_report_then_exit":
        assert [c.value for c in ex.calls] == [a * b for a, b in args], _describe(ex)
    if name in ("forged_report_then_return", "forged_verdict_lines", "forged_deep_value", "forged_huge_kind"):
        assert ex.error and ex.error.startswith("tampered report"), _describe(ex)
        assert len(ex.error) < 1000


# ------------------------------------------------------------------ all at once


def test_a_mixed_batch_of_hostile_and_honest_submissions(sandbox, canaries):
    hostile_codes = [
        solution("while True:\n    pass"),
        "import time\ntime.sleep(60)\n" + solution(),
        "hoard = []\nfor _ in range(2000):\n    hoard.append(bytes(1 << 20))\n" + solution(),
        "while True:\n    print('x' * 1000)\n" + solution(),
        SPIN_THREADS + solution("for t in THREADS:\n    t.join()"),
        FLOODS["stderr_burst"][0] + solution(),
    ]
    if sandbox.isolation.get("pid_namespace"):
        hostile_codes += [
            # Keeps killing everything it can reach while its honest neighbours sleep.
            "import os, time\nstart = time.monotonic()\nwhile time.monotonic() - start < 1.5:\n"
            "    try:\n        os.kill(-1, 9)\n    except OSError:\n        pass\n" + solution(),
            orphan_program(ORPHANS["sleeper"]) + solution(),
        ]
    else:
        hostile_codes += [
            "for i in range(64):\n    open(f'f{i}', 'wb').write(bytes(1 << 20))\n" + solution(),
            ALWAYS_EQUAL["int_subclass"] + "\n" + solution("return VALUE"),
        ]
    honest_codes = [honest(0.3) for _ in hostile_codes]
    order = [code for pair in zip(hostile_codes, honest_codes) for code in pair]
    subs = [Submission(PROBLEM, fence(code)) for code in order]

    bound = (len(hostile_codes) * (LIMITS.wall_s + 1) + len(honest_codes)) / WORKERS + 3
    with contained(sandbox, canaries, bound):
        executions = grader.execute(subs, sandbox)
    for i, (sub, ex) in enumerate(zip(subs, executions)):
        assert credited(sub, ex) == (list(MODES) if i % 2 else []), _describe(ex)


def test_a_slot_group_whose_limits_cannot_be_written_falls_back_instead_of_killing_the_runner(monkeypatch):
    """probe_slot_group: an OSError while the probe job sets the group's limits (e.g. a v2
    parent that lost its controllers) gives (None, why) and removes the group."""
    from projected_grpo.environment import sandbox_runner

    removed = []

    class Group:
        version = "v2"

        def remove(self):
            removed.append(True)

    def failing_job(*args, **kwargs):
        raise OSError(2, "No such file or directory", "memory.max")

    monkeypatch.setattr(sandbox_runner, "make_slot_group", lambda version: (Group(), None))
    monkeypatch.setattr(sandbox_runner, "run_job", failing_job)
    group, why = sandbox_runner.probe_slot_group("/tmp", {}, "v2")
    assert group is None and "memory.max" in why and removed == [True]
