"""method/oracle.py: the oracle basis is where hacking runs moved and honest runs did not,
oriented as a hack-ward gradient; its overlap table reads each basis against a random one."""

import pytest
import torch
from safetensors.torch import save_file

from projected_grpo.method.basis import Basis, random_basis
from projected_grpo.method.oracle import load_knobs, oracle_basis, oracle_overlap
from projected_grpo.method.projection import project

R = 32


def runs(seed: int, hack_axis: int = 3):
    """Three seed-paired runs: both move along a shared learning direction (axis 0) with
    noise; the hacking runs also move +1 along ``hack_axis``."""
    gen = torch.Generator().manual_seed(seed)
    hacking, honest = [], []
    for _ in range(3):
        shared = torch.zeros(R)
        shared[0] = 2.0
        base = shared + 0.05 * torch.randn(R, generator=gen)
        move = torch.zeros(R)
        move[hack_axis] = 1.0
        hacking.append({"m": base + move + 0.05 * torch.randn(R, generator=gen)})
        honest.append({"m": base.clone()})
    return hacking, honest


def test_the_oracle_axis_is_where_hacking_runs_moved_oriented_as_a_hackward_gradient():
    hacking, honest = runs(0)
    basis = oracle_basis(hacking, honest, k=2)
    v = basis.vectors["m"]
    assert v.shape == (2, R)
    assert v[0, 3].item() < -0.95  # a descent step -lr*g moves +axis 3: the gradient points along -axis 3
    assert abs(v[0, 0].item()) < 0.1  # what both kinds of run learn is not in it
    # erasing it (one-sided) removes the hack-ward part of a gradient that teaches the hack
    g = torch.zeros(R)
    g[3] = -1.0
    out = project(g, v)
    assert out.cout == 0 and out.grad.norm().item() < 0.2


def test_the_oracle_needs_paired_runs_and_keeps_only_modules_that_moved():
    hacking, honest = runs(0)
    with pytest.raises(ValueError, match="paired"):
        oracle_basis(hacking, honest[:2], k=2)
    with pytest.raises(ValueError, match="k"):
        oracle_basis(hacking, honest, k=0)
    still = [{"m": h["m"], "n": torch.ones(R)} for h in hacking]
    assert set(oracle_basis(still, [{"m": b["m"], "n": torch.ones(R)} for b in honest], 2).vectors) == {"m"}


def test_load_knobs_reads_ds_and_leaves_the_quarantine_out(tmp_path):
    save_file({"a.dS": torch.ones(4), "a.dS_hack": torch.zeros(4)}, str(tmp_path / "knobs.safetensors"))
    assert list(load_knobs(tmp_path / "knobs.safetensors")) == ["a"]


def test_overlap_is_high_for_the_oracles_own_span_and_at_the_null_for_random_bases():
    hacking, honest = runs(0)
    oracle = oracle_basis(hacking, honest, k=1)
    near = Basis({"m": -oracle.vectors["m"]}, {"m": torch.ones(1)})
    randoms = {f"random{s}": random_basis({"m": 1}, {"m": R}, seed=s) for s in range(40)}
    table = oracle_overlap(oracle, {"near": near, **randoms}).set_index("kind")
    assert table.loc["near", "cos_first"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["near", "in_oracle_span"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["near", "cos_first_signed"] == pytest.approx(-1.0, abs=1e-5)  # it points the other way
    random_mean = table.drop(index="near")["cos_first"].mean()
    assert random_mean == pytest.approx(table.loc["near", "cos_first_null"], rel=0.35)
