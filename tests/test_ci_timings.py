"""scripts/ci/timings.py: the test suite's figures come from the log of a run, not from a hand."""

import importlib.util

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("timings", REPO / "scripts" / "ci" / "timings.py")
timings = importlib.util.module_from_spec(spec)
spec.loader.exec_module(timings)

# What `make test` prints (pytest -q --durations=15): the summary line is bare.
LOG = """\
........................................ [100%]
============================= slowest 15 durations =============================
203.41s call     tests/test_workflow.py::test_two_runs_of_the_tiny_dag_write_identical_parquet_files
95.02s setup    tests/test_workflow.py::test_tiny_config_runs_the_whole_dag_and_a_rerun_schedules_nothing
0.50s call     tests/test_io.py::test_atomic_write
=========================== short test summary info ============================
XFAIL tests/test_sandbox.py::test_memory_across_forked_processes_is_bounded
840 passed, 1 xfailed in 716.52s (0:11:56)
"""


def test_the_page_carries_the_counts_times_and_slowest_tests_of_the_log():
    page = timings.summarize(LOG, total_s=767.0, commit="abc1234", slowest=2)
    assert "840 passed, 1 xfailed" in page
    assert "tests: 11.9 min" in page and "installs: 12.8 min" in page
    assert "`abc1234`" in page
    assert (
        "| 203.4 | call | `tests/test_workflow.py::test_two_runs_of_the_tiny_dag_write_identical_parquet_files` |"
        in page
    )
    assert "test_io.py" not in page  # only the two slowest


def test_the_summary_between_rules_is_read_too():
    log = LOG.replace(
        "840 passed, 1 xfailed in 716.52s (0:11:56)", "===== 3 passed, 2 skipped in 9.10s ====="
    )
    assert "3 passed, 2 skipped" in timings.summarize(log, total_s=20.0, commit="x")


def test_a_log_without_pytests_summary_is_refused():
    with pytest.raises(ValueError, match="no pytest summary"):
        timings.summarize("make: *** [Makefile:25: test] Error 1\n", total_s=1.0, commit="x")
