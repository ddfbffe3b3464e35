"""Per-rule totals of the workflow's benchmark files, on hand-made TSVs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from projected_grpo.study.benchmarks import read_benchmarks, rule_totals

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, seconds, rss, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


def test_totals_sum_jobs_per_rule_and_overall(tmp_path):
    _bench(tmp_path / "train/all/vanilla/seed41.tsv", 60, 900, 100)
    _bench(tmp_path / "train/without_sentinel/route/seed41.tsv", 120, 1100, 200)
    _bench(tmp_path / "build_pool.tsv", 30, 500, 20)
    jobs = read_benchmarks(tmp_path)
    assert sorted(jobs["rule"]) == ["build_pool", "train", "train"]
    totals = rule_totals(jobs).set_index("rule")
    assert totals.index.tolist() == ["train", "build_pool", "total"]  # largest first
    assert totals.loc["train", "jobs"] == 2 and totals.loc["train", "total_min"] == pytest.approx(3.0)
    assert totals.loc["train", "max_s"] == 120 and totals.loc["train", "max_rss_mb"] == 1100
    assert totals.loc["total", "jobs"] == 3 and totals.loc["total", "total_min"] == pytest.approx(3.5)
    assert totals.loc["total", "cpu_min"] == pytest.approx(320 / 60)


def test_cli_names_a_folder_without_benchmarks_and_a_file_that_is_not_one(tmp_path):
    command = [sys.executable, "-m", "projected_grpo.study.benchmarks", str(tmp_path)]
    empty = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "no benchmark files" in empty.stderr
    for content in ("a\tb\n1\t2\n", ""):  # other columns; empty
        (tmp_path / "x.tsv").write_text(content)
        bad = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "x.tsv: not a Snakemake benchmark file" in bad.stderr
