"""The benchmark scripts run (nothing else exercises them): one tiny step of each method
that needs no extra install, on the micro organism. Speeds are not asserted here."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run_bench(name: str, organism, tmp_path, monkeypatch, extra: list[str]):
    """Run ``bench/<name>.py`` for one step on ``organism`` without a pool, on one thread (the
    thread count restored after); returns (the module, the text it wrote)."""
    monkeypatch.setitem(sys.modules, name, None)  # restored (removed) after the test
    bench = _bench_module(name)
    out = tmp_path / f"{name}.txt"
    threads = torch.get_num_threads()
    try:
        bench.main(
            [
                "--model", str(organism), "--pool", str(tmp_path / "absent.parquet"), "--out", str(out),
                "--steps", "1", "--config", str(BENCH.parent / "config.yaml"), "--threads", "1", *extra,
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return bench, out.read_text()


def test_train_step_bench_times_ours_and_the_original_style_loop(micro_organism, tmp_path, monkeypatch):
    _, text = _run_bench(
        "bench_train_step", micro_organism, tmp_path, monkeypatch,
        ["--prompts", "2", "--group", "2", "--max-new-tokens", "8", "--skip", "trl"],
    )  # fmt: skip
    for method in ("ours mix=0.5", "ours mix=0", "original-style mix=0.5"):
        line = next(line for line in text.splitlines() if line.startswith(method))
        mean_s = float(line[len(method) :].split()[0])
        assert mean_s > 0, line
    assert "speed-up of ours mix=0.5 vs original-style mix=0.5" in text
    assert "TRL" not in text.split("\n\n")[1]  # skipped: no row


def test_bucket_bench_times_one_batch_and_length_buckets(micro_organism, tmp_path, monkeypatch):
    bench, text = _run_bench(
        "bench_buckets", micro_organism, tmp_path, monkeypatch,
        ["--prompts", "2", "--group", "4", "--max-new-tokens", "12"],
    )  # fmt: skip
    rows = {line[:36].strip(): line[36:].split() for line in text.split("\n\n")[1].splitlines()[1:]}
    assert set(rows) == {"one padded batch", *(f"length buckets, overhead {o}" for o in bench.OVERHEADS)}
    for name, (seconds, padded, batches) in rows.items():
        assert float(seconds) > 0 and float(batches) >= 1, name
        assert float(padded) <= float(rows["one padded batch"][1]), name  # buckets never pad more


def test_profile_bench_times_every_phase_of_an_old_and_a_new_run(micro_organism, tmp_path, monkeypatch):
    bench, text = _run_bench(
        "bench_profile", micro_organism, tmp_path, monkeypatch,
        ["--prompts", "2", "--group", "2", "--max-new-tokens", "8", "--eval-samples", "1"],
    )  # fmt: skip
    table = text.split("\n\n")[1].splitlines()[1:]
    rows = {line[:34].strip(): line[34:].split() for line in table}
    assert set(bench.PHASES) <= set(rows)
    for phase in ("load", "sampling", "evaluation"):  # the micro organism's groups rarely carry a loss
        cpu = [float(v) for v in rows[phase][:3]]  # old, new, shared
        assert min(cpu) > 0, phase
    assert "grade cache hits: old 0, new" in text


def test_profile_charges_a_nested_phase_to_itself_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "bench_profile", None)
    profile = _bench_module("bench_profile").Profile()
    with profile.phase("outer"):
        time.sleep(0.02)
        with profile.phase("inner"):
            time.sleep(0.3)
        time.sleep(0.02)
    assert profile.wall["inner"] >= 0.3
    assert 0.04 <= profile.wall["outer"] < 0.2  # 0.34 if the inner sleep were charged to it too


def test_compile_bench_prefill_section_reads_each_prompt_once_with_the_same_logits(
    micro_organism, tmp_path, monkeypatch
):
    """The prefill section only: the compile sections cost a minute of inductor per run."""
    _, text = _run_bench(
        "bench_compile", micro_organism, tmp_path, monkeypatch,
        ["--prompts", "2", "--max-new-tokens", "8", "--skip", "loss", "layers", "warm", "decode"],
    )  # fmt: skip
    lines = [line for line in text.splitlines() if "rows of" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["train step", "evaluation batch"]
    for line in lines:
        assert float(line.split("max |logit diff| ")[1].split(",")[0]) < 1e-5, line
    assert "1. loss" not in text and "2. decode" not in text
