"""The projection arms inside training steps (SPEC §4) on the micro organism.

Measuring changes nothing; the mechanism columns read the step's and the knobs' place
along V; route moves ``dS`` exactly as erase does and quarantines exactly the removed part
(on the gradient: AdamW then moves the quarantine out of span V; on the update: it stays
in span V and ``dS + dS_hack`` is vanilla's ``dS``); projecting the update closes the Adam
leak that projecting the gradient leaves open; weight decay never touches the quarantine;
refreshing an unchanged model finds the same basis; purging Adam's momentum leaves none of
it in span V; matched removal removes what the reference basis would, up to the whole
component, and never reverses or grows a coordinate of V g; keep with a full basis trains
as vanilla, and keep and the ungated erase split vanilla's step between them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from projected_grpo.core.schedule import warmup_cosine
from projected_grpo.environment.completions import hack_completion, honest_completion
from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problems import train_problems
from projected_grpo.environment.sandbox import Sandbox
from projected_grpo.method.basis import Basis, BasisError, basis_overlap, random_basis
from projected_grpo.method.extraction import ExtractConfig, completion_gradients, extract_basis
from projected_grpo.method.intervention import ProjectionConfig, Projector
from projected_grpo.method.projection import hackward_share, project, purge_span
from projected_grpo.policy.adapter import attach_knobs, knob_modules, quarantine_ablated
from projected_grpo.policy.evaluate import grade_rows
from projected_grpo.policy.loading import load_model
from projected_grpo.pool.pairs import PairsConfig, build_pairs
from projected_grpo.training.train import TrainConfig, Trainer, refresher

PROBLEMS = builtin_bank(per_family=2, eval_every=2)
TRAIN = train_problems(PROBLEMS)
SETTINGS = {
    "steps": 3, "prompts_per_step": 2, "group_size": 4, "mix": 0.5, "max_new_tokens": 16,
    "warmup_steps": 1, "threads": 1, "eval": {"n_samples": 1, "max_new_tokens": 16},
}  # fmt: skip
NO_CLIP = 1e9  # route clips dS and dS_hack together: compare arms without clipping
EXTRACT = ExtractConfig(k=2, max_new_tokens=48)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=1) as box:
        yield box


@pytest.fixture(scope="module")
def pool(sandbox):
    """A teacher pool whose two rows per train problem (honest, hack) are drawn into every
    group: every group has reward variance against the untrained student, so every step
    has a gradient."""
    rows = [
        {"problem_id": p.problem_id, "variant": "loophole", "completion": make(p)}
        for p in TRAIN
        for make in (honest_completion, lambda p: hack_completion(p, p.mode))
    ]
    return grade_rows(rows, TRAIN, sandbox)


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    return tmp_path_factory.mktemp("svd")


@pytest.fixture(scope="module")
def pairs():
    frame = build_pairs(PROBLEMS, None, MODES, PairsConfig(templated_per_problem=1, pool_per_problem=0))
    return frame[frame["pair_id"] < 6].reset_index(drop=True)


@pytest.fixture(scope="module")
def real_basis(micro_organism, svd, pairs):
    """V of the untrained micro organism (zero knobs), two axes per module."""
    torch.set_num_threads(1)
    tokenizer, model = load_model(micro_organism)
    attach_knobs(model, svd_cache=svd)
    return extract_basis(model, tokenizer, pairs, PROBLEMS, EXTRACT)


def _trainer(micro_organism, svd, basis=None, reference=None, refresh=None, projection=None, **changes):
    config = TrainConfig.from_dict({**SETTINGS, "projection": projection or {}, **changes})
    return Trainer.create(config, micro_organism, svd, basis, reference, refresh)


def _steps(trainer: Trainer, n: int, pool, sandbox) -> list[dict]:
    """``n`` steps as ``train.train`` runs them."""
    config = trainer.config
    return [
        trainer.step(i, trainer.rng.sample(TRAIN, config.prompts_per_step), pool, sandbox) for i in range(n)
    ]


def _knobs(trainer: Trainer, attr: str = "dS") -> dict[str, torch.Tensor]:
    return {name: getattr(m, attr).detach().clone() for name, m in trainer.modules.items()}


def _spy_projection(trainer: Trainer) -> list[dict]:
    """Record, at every step, each module's gradient before the projection and ``dS.grad``
    / ``dS_hack.grad`` after it."""
    records: list[dict] = []
    original = trainer.projector.project_grads

    def spy(modules):
        before = {n: modules[n].dS.grad.clone() for n in trainer.projector.basis.vectors}
        out = original(modules)
        records.append(
            {n: (g, modules[n].dS.grad.clone(), _clone(modules[n].dS_hack.grad)) for n, g in before.items()}
        )
        return out

    trainer.projector.project_grads = spy
    return records


def _clone(t):
    return None if t is None else t.clone()


IDS = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(0))


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


# ------------------------------------------------------------------ measure only


def test_measuring_a_basis_changes_nothing(micro_organism, svd, pool, sandbox, real_basis):
    vanilla = _trainer(micro_organism, svd)
    vanilla_rows = _steps(vanilla, 3, pool, sandbox)
    measured = _trainer(micro_organism, svd, basis=real_basis)
    measured_rows = _steps(measured, 3, pool, sandbox)
    dS = _knobs(measured)
    assert any(float(t.norm()) > 0 for t in dS.values())  # it trained
    for name, t in _knobs(vanilla).items():
        assert torch.equal(dS[name], t), name
        assert torch.equal(measured.modules[name].dS_hack, torch.zeros_like(t))
    for plain, row in zip(vanilla_rows, measured_rows):
        for key in ("loss", "grad_norm", "reward_student", "dS_norm"):
            assert row[key] == plain[key]
        measured = ("cin", "cin_null", "overlap", "overlap_null", "cout_update", "cin_s", "cin_t")
        mechanism = ("step_in_span", "drift_in_span", "drift_hackward_0", "drift_hackward_1")
        for key in (*measured, *mechanism):
            assert key in row and row[key] == row[key], key  # present and not NaN
            assert key not in plain
        assert 0 < row["cin"] <= 1 and 0 < row["cout_update"] <= 1 and 0 < row["step_in_span"] <= 1
        assert "cout" not in row and "fired_frac" not in row  # nothing projected
        assert "quarantine_in_span" not in row and "match_ratio" not in row


# ------------------------------------------------------------------ erase and route


def test_route_quarantines_exactly_the_removed_part(micro_organism, svd, pool, sandbox, real_basis):
    erase = _trainer(micro_organism, svd, real_basis, projection={"intervention": "erase"}, grad_clip=NO_CLIP)
    erase_rows = _steps(erase, 1, pool, sandbox)
    route = _trainer(micro_organism, svd, real_basis, projection={"intervention": "route"}, grad_clip=NO_CLIP)
    records = _spy_projection(route)
    route_rows = _steps(route, 1, pool, sandbox)
    (record,) = records
    for name, (g, grad, hack_grad) in record.items():
        v = real_basis.vectors[name]
        out = project(g, v)
        assert torch.equal(hack_grad, out.removed) and torch.equal(grad, out.grad)
        torch.testing.assert_close(grad + hack_grad, g, rtol=0, atol=1e-7 * float(g.abs().max()))
    assert route_rows[0]["fired_frac"] > 0 and route_rows[0]["removed_norm"] > 0
    assert route_rows[0]["removed_norm"] == erase_rows[0]["removed_norm"]
    # AdamW rescales each coordinate of the routed part: the quarantine leaves span V
    assert route_rows[0]["quarantine_in_span"] < 0.99 and "quarantine_in_span" not in erase_rows[0]
    for name, t in _knobs(erase).items():
        assert torch.equal(_knobs(route)[name], t), name  # dS moves as under erase
        assert torch.equal(erase.modules[name].dS_hack, torch.zeros_like(t))
    assert any(float(t.norm()) > 0 for t in _knobs(route, "dS_hack").values())
    assert "hack_rate_deployed" in route_rows[0] and "hack_rate_deployed" not in erase_rows[0]
    # the deployed route model (quarantine ablated) is the erase model
    assert not torch.equal(_logits(route.model), _logits(erase.model))
    with quarantine_ablated(route.model):
        assert torch.equal(_logits(route.model), _logits(erase.model))


def test_route_on_the_update_splits_the_vanilla_change_between_ds_and_quarantine(
    micro_organism, svd, pool, sandbox, real_basis
):
    vanilla = _trainer(micro_organism, svd)
    _steps(vanilla, 1, pool, sandbox)
    route = _trainer(
        micro_organism, svd, real_basis, projection={"intervention": "route", "project_target": "update"}
    )
    rows = _steps(route, 1, pool, sandbox)
    assert rows[0]["fired_frac"] > 0
    assert rows[0]["quarantine_in_span"] == pytest.approx(1, abs=1e-6)
    hack = _knobs(route, "dS_hack")
    for name, t in _knobs(vanilla).items():
        total = route.modules[name].dS.detach() + hack[name]
        torch.testing.assert_close(total, t, rtol=0, atol=1e-7 * float(t.abs().max()))
        v = real_basis.vectors[name]
        assert float(purge_span(hack[name], v).norm()) <= 1e-6 * max(float(hack[name].norm()), 1e-12)
        assert hackward_share(-route.modules[name].dS.detach(), v) < 1e-6


def test_route_on_the_update_trains_as_vanilla_with_a_small_quarantine_in_span_v(
    micro_organism, svd, pool, sandbox, real_basis
):
    """The forward pass sees ``dS + dS_hack``, which moves as vanilla's ``dS``: training is
    vanilla's, the quarantine holds the hack-ward part of every step at its own size (in
    span V), where routing the gradient lets AdamW blow it up to full-size steps."""
    vanilla_rows = _steps(_trainer(micro_organism, svd), 3, pool, sandbox)
    routes = {  # no deployed-model samples: they would draw from the run's RNGs
        target: _trainer(
            micro_organism,
            svd,
            real_basis,
            projection={"intervention": "route", "project_target": target, "deploy_eval_every": 0},
        )
        for target in ("grad", "update")
    }
    rows = {target: _steps(run, 3, pool, sandbox) for target, run in routes.items()}
    for plain, row in zip(vanilla_rows, rows["update"]):
        assert row["reward_student"] == plain["reward_student"]  # the same samples
        assert row["loss"] == pytest.approx(plain["loss"], rel=1e-4, abs=1e-7)
        assert row["quarantine_in_span"] == pytest.approx(1, abs=1e-5)
    assert rows["grad"][-1]["quarantine_in_span"] < 0.99
    assert rows["update"][-1]["dS_hack_norm"] < 0.5 * rows["grad"][-1]["dS_hack_norm"]


# ------------------------------------------------------------------ keep (a trusted basis)


def _full_basis(trainer: Trainer) -> Basis:
    """``k = r`` random orthonormal rows for every module: a span that holds everything."""
    widths = {name: m.rank for name, m in trainer.modules.items()}
    return random_basis(widths, widths, seed=0)


@pytest.mark.parametrize("target", ["grad", "update"])
def test_keep_with_a_full_basis_trains_as_vanilla(micro_organism, svd, pool, sandbox, target):
    vanilla = _trainer(micro_organism, svd)
    vanilla_rows = _steps(vanilla, 2, pool, sandbox)
    basis = _full_basis(vanilla)
    keep = _trainer(micro_organism, svd, basis, projection={"intervention": "keep", "project_target": target})
    rows = _steps(keep, 2, pool, sandbox)
    for plain, row in zip(vanilla_rows, rows):
        assert row["reward_student"] == plain["reward_student"]  # the same samples
        assert row["kept_share"] == pytest.approx(1, abs=1e-5)
    for name, t in _knobs(vanilla).items():
        torch.testing.assert_close(keep.modules[name].dS.detach(), t, rtol=1e-4, atol=1e-6)


def test_keep_and_the_ungated_erase_split_vanillas_step(micro_organism, svd, pool, sandbox, real_basis):
    """One AdamW step from zero knobs: keep moves ``dS`` by the step's part in span V, the
    ungated erase by the rest, and the two add up to vanilla's step."""
    vanilla = _trainer(micro_organism, svd)
    _steps(vanilla, 1, pool, sandbox)
    runs = {
        intervention: _trainer(
            micro_organism, svd, real_basis,
            projection={"intervention": intervention, "gate": "no_gate", "project_target": "update"},
        )
        for intervention in ("keep", "erase")
    }  # fmt: skip
    rows = {intervention: _steps(run, 1, pool, sandbox)[0] for intervention, run in runs.items()}
    assert 0 < rows["keep"]["kept_share"] < 1 and "kept_share" not in rows["erase"]
    for name, t in _knobs(vanilla).items():
        kept, erased = runs["keep"].modules[name].dS.detach(), runs["erase"].modules[name].dS.detach()
        torch.testing.assert_close(kept + erased, t, rtol=0, atol=1e-6 * float(t.abs().max()))
        if name in real_basis.vectors:
            assert float(purge_span(kept, real_basis.vectors[name]).norm()) <= 1e-6 * float(t.norm())
        else:  # no axes for the module: left as vanilla moved it
            assert torch.equal(kept, t)


def test_projecting_the_update_closes_the_adam_leak(micro_organism, svd, pool, sandbox, real_basis):
    on_grad = _trainer(micro_organism, svd, real_basis, projection={"intervention": "erase"})
    grad_rows = _steps(on_grad, 3, pool, sandbox)
    on_update = _trainer(
        micro_organism, svd, real_basis, projection={"intervention": "erase", "project_target": "update"}
    )
    update_rows = _steps(on_update, 3, pool, sandbox)
    assert all(row["cout"] < 1e-6 for row in grad_rows)  # the projected gradient is clean...
    assert max(row["cout_update"] for row in grad_rows) > 1e-3  # ...the update AdamW makes is not
    assert all(row["fired_frac"] > 0 for row in update_rows)
    assert all(row["cout_update"] < 1e-6 for row in update_rows)


def test_weight_decay_never_acts_on_the_quarantine(micro_organism, svd, pool, sandbox, real_basis):
    decay = 10.0  # x0.9 per step at lr 1e-2: visible in three steps
    route = _trainer(
        micro_organism,
        svd,
        real_basis,
        projection={"intervention": "route"},
        grad_clip=NO_CLIP,
        weight_decay=decay,
    )
    decay_of = {
        id(p): group["weight_decay"] for group in route.optimizer.param_groups for p in group["params"]
    }
    assert all(decay_of[id(m.dS)] == decay and decay_of[id(m.dS_hack)] == 0 for m in route.modules.values())
    records = _spy_projection(route)
    _steps(route, 3, pool, sandbox)
    assert len(records) == 3
    config = route.config

    def replay(weight_decay: float) -> dict[str, torch.Tensor]:
        """AdamW with the run's schedule on a zero quarantine fed the routed parts."""
        out = {}
        for name in real_basis.vectors:
            p = torch.zeros_like(route.modules[name].dS_hack)
            opt = torch.optim.AdamW([p], lr=config.lr, eps=config.adam_eps, weight_decay=weight_decay)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                opt, warmup_cosine(config.warmup_steps, config.steps, config.lr_floor)
            )
            for record in records:
                p.grad = record[name][2]
                opt.step()
                schedule.step()
            out[name] = p
        return out

    plain, decayed = replay(0.0), replay(decay)
    hack = _knobs(route, "dS_hack")
    for name in real_basis.vectors:
        torch.testing.assert_close(hack[name], plain[name], rtol=1e-5, atol=1e-8)
        assert not torch.allclose(hack[name], decayed[name], rtol=1e-3, atol=0)  # decay would show


# ------------------------------------------------------------------ refresh


def test_refresh_of_an_unchanged_model_finds_the_same_basis(micro_organism, svd, pairs, real_basis):
    tokenizer, model = load_model(micro_organism)
    attach_knobs(model, svd_cache=svd)
    refresh = refresher(pairs, PROBLEMS, EXTRACT)
    first, second = refresh(model, tokenizer), refresh(model, tokenizer)
    assert first.meta["refreshed"] == "1"
    assert basis_overlap(first, second) == pytest.approx(1.0, abs=1e-6)
    assert basis_overlap(real_basis, first) == pytest.approx(1.0, abs=1e-6)
    widths = {name: m.rank for name, m in knob_modules(model).items()}
    assert basis_overlap(random_basis(first.ranks, widths, seed=0), first) < 0.5  # not vacuous


def test_a_refreshing_run_logs_the_overlap_and_swaps_the_basis(
    micro_organism, svd, pool, sandbox, pairs, real_basis
):
    refresh = refresher(pairs, PROBLEMS, EXTRACT)
    run = _trainer(
        micro_organism,
        svd,
        real_basis,
        refresh=refresh,
        projection={"intervention": "route", "refresh_every": 2},
    )
    rows = _steps(run, 2, pool, sandbox)
    assert "basis_overlap" not in rows[0]
    assert 0 < rows[1]["basis_overlap"] <= 1 + 1e-6
    assert run.projector.basis is not real_basis and run.projector.basis.meta["refreshed"] == "1"
    with pytest.raises(ValueError, match="refresh_every"):
        _trainer(micro_organism, svd, real_basis, projection={"intervention": "erase", "refresh_every": 2})
    with pytest.raises(ValueError, match="needs a basis to refresh"):
        _trainer(micro_organism, svd, None, refresh=refresh, projection={"refresh_every": 2})


def test_a_run_refreshing_a_policy_basis_swaps_in_one_with_the_frozen_scale(
    micro_organism, svd, pool, sandbox, pairs
):
    """Source policy: the pairs' completions as the student's samples, the hacks flagged, a
    prompt group per problem; V in Adam's geometry, re-read on the trained model every step."""
    from projected_grpo.method import policy_source

    samples = pairs.assign(
        attempted_sentinel=pairs["label"] == "hack", oracle_correct=pairs["label"] == "clean"
    )
    flags, groups = policy_source.detector_flags(samples, ["sentinel"]), policy_source.group_codes(samples)
    tokenizer, model = load_model(micro_organism)
    attach_knobs(model, svd_cache=svd)
    extract = ExtractConfig(max_new_tokens=48, source="policy", geometry="adam")
    grads = completion_gradients(model, tokenizer, samples, PROBLEMS, extract)
    scale = policy_source.scales(grads, "adam")
    basis = policy_source.policy_basis(grads, policy_source.group_advantages(flags, groups), scale)
    refresh = policy_source.policy_refresher(
        samples, flags, PROBLEMS, extract, basis.scale, 8, 0, {"kind": "real"}
    )
    run = _trainer(
        micro_organism, svd, basis, refresh=refresh,
        projection={"intervention": "erase", "project_target": "update", "refresh_every": 1},
    )  # fmt: skip
    rows = _steps(run, 2, pool, sandbox)
    assert all(0 < row["basis_overlap"] <= 1 + 1e-6 for row in rows)
    fresh = run.projector.basis
    assert fresh is not basis and fresh.meta == {"refreshed": "1", "n_samples": "8", "kind": "real"}
    assert fresh.ranks == basis.ranks and all(
        torch.equal(fresh.scale[n], basis.scale[n]) for n in basis.scale
    )


# ------------------------------------------------------------------ Adam state


def test_purging_adams_momentum_leaves_none_of_it_in_span_v(micro_organism, svd, pool, sandbox, real_basis):
    def momentum_in_span(adam_state: str) -> float:
        run = _trainer(
            micro_organism, svd, real_basis, projection={"intervention": "erase", "adam_state": adam_state}
        )
        _steps(run, 2, pool, sandbox)
        shares = []
        for name, v in real_basis.vectors.items():
            exp_avg = run.optimizer.state[run.modules[name].dS]["exp_avg"]
            shares.append(float((v @ exp_avg).norm() / exp_avg.norm()))
        return max(shares)

    assert momentum_in_span("keep") > 1e-3  # one-sided erase keeps anti-hack momentum in span V
    assert momentum_in_span("purge_span_v") < 1e-6


# ------------------------------------------------------------------ matched removal


def test_matched_removal_removes_the_norm_the_reference_basis_would(
    micro_organism, svd, pool, sandbox, real_basis
):
    widths = {n: v.shape[1] for n, v in real_basis.vectors.items()}
    random_v = random_basis(real_basis.ranks, widths, seed=1)

    def removed_norms(match: bool) -> list[dict]:
        """Per step, per module: (norm the run removed, norm real V removes from that g,
        ``‖V g‖``)."""
        projection = {"intervention": "erase", "match_removed": match}
        run = _trainer(micro_organism, svd, random_v, reference=real_basis, projection=projection)
        records = _spy_projection(run)
        _steps(run, 2, pool, sandbox)
        return [
            {
                name: (
                    float((g - grad).norm()),
                    float(project(g, real_basis.vectors[name]).removed.norm()),
                    float((random_v.vectors[name] @ g).norm()),  # all of g's component in span V
                )
                for name, (g, grad, _) in record.items()
            }
            for record in records
        ]

    for record in removed_norms(match=True):
        for name, (removed, reference, whole) in record.items():
            assert removed == pytest.approx(min(reference, whole), rel=1e-4, abs=1e-12), name
    unmatched = removed_norms(match=False)[0]
    assert any(abs(removed - reference) > 0.1 * reference for removed, reference, _ in unmatched.values())


def _fake_modules(grads: dict[str, torch.Tensor]) -> dict:
    modules = {}
    for name, g in grads.items():
        dS = torch.nn.Parameter(torch.zeros_like(g))
        dS.grad = g.clone()
        modules[name] = SimpleNamespace(
            dS=dS, dS_hack=torch.nn.Parameter(torch.zeros_like(g), requires_grad=False)
        )
    return modules


def test_matched_removal_rescales_per_module_and_skips_modules_the_reference_lacks():
    gen = torch.Generator().manual_seed(3)
    grads = {"a": torch.randn(16, generator=gen), "b": torch.randn(8, generator=gen)}
    basis = random_basis({"a": 4, "b": 1}, {"a": 16, "b": 8}, seed=1)
    reference = random_basis({"a": 1}, {"a": 16}, seed=2)
    modules = _fake_modules(grads)
    config = ProjectionConfig(intervention="erase", gate="no_gate", match_removed=True)
    row = Projector(basis, config, reference).project_grads(modules)
    target = float(project(grads["a"], reference.vectors["a"], "no_gate").removed.norm())
    assert target < float((basis.vectors["a"] @ grads["a"]).norm())  # reachable: matched exactly
    removed_a = grads["a"] - modules["a"].dS.grad
    assert float(removed_a.norm()) == pytest.approx(target, rel=1e-5)
    assert row["match_ratio"] == pytest.approx(1, rel=1e-5)
    assert float(purge_span(removed_a, basis.vectors["a"]).norm()) < 1e-5  # still along the run's V
    assert torch.equal(modules["b"].dS.grad, grads["b"])  # the reference removes nothing there
    with pytest.raises(ValueError, match="match_removed needs a reference"):
        Projector(basis, config)


@pytest.mark.parametrize("gate", ["one_sided", "no_gate", "reverse"])
@pytest.mark.parametrize("reference_k", [1, 4, 12])
def test_matched_removal_never_reverses_or_grows_a_coordinate_of_v_g(gate, reference_k):
    """A random basis holds little of g, so real V's removal often exceeds g's whole
    component in it: the removal stops there (coordinates shrink toward 0, none flips)
    and ``match_ratio`` says how far short it fell."""
    basis = random_basis({"a": 4}, {"a": 32}, seed=6)
    reference = random_basis({"a": reference_k}, {"a": 32}, seed=7)
    v = basis.vectors["a"]
    ratios = []
    for seed in range(20):
        g = torch.randn(32, generator=torch.Generator().manual_seed(seed))
        modules = _fake_modules({"a": g})
        config = ProjectionConfig(intervention="erase", gate=gate, match_removed=True)
        row = Projector(basis, config, reference).project_grads(modules)
        before, after = v @ g, v @ modules["a"].dS.grad
        assert torch.all(after * before.sign() >= -1e-6), seed  # no coordinate changes sign
        assert torch.all(after.abs() <= before.abs() + 1e-6), seed  # none grows
        target = float(project(g, reference.vectors["a"], gate).removed.norm())
        removed = float((g - modules["a"].dS.grad).norm())
        assert removed == pytest.approx(min(target, float(before.norm())), rel=1e-4, abs=1e-7)
        if target > 0:
            assert row["match_ratio"] == pytest.approx(removed / target, rel=1e-5)
            ratios.append(row["match_ratio"])
        else:  # the reference's gate removes nothing: neither does the run, no ratio
            assert removed == 0 and math.isnan(row["match_ratio"])
    assert max(ratios) == pytest.approx(1, rel=1e-5) or reference_k == 12  # matched where reachable
    assert min(ratios) < 0.99 or reference_k == 1  # and short, never beyond, where not


def test_mechanism_reads_the_step_share_and_the_drift_along_v():
    """Hand-made knobs: a step inside span V has share 1, one orthogonal to it 0; the drift
    columns are the hand-computed ones (``projection.hackward_drift`` for the signed one)."""
    v_a, v_b = torch.eye(2, 4), torch.eye(4)[2:3]
    basis = Basis({"a": v_a, "b": v_b}, {"a": torch.ones(2), "b": torch.ones(1)})
    before = {"a": torch.tensor([1.0, 0.0, 0.0, 0.0]), "b": torch.tensor([0.0, 0.0, 0.0, 2.0])}
    after = {"a": torch.tensor([-2.0, 4.0, 0.0, 0.0]), "b": torch.tensor([0.0, 0.0, 0.0, 5.0])}
    modules = _fake_modules({name: torch.zeros(4) for name in after})
    for name, knob in after.items():
        modules[name].dS.data.copy_(knob)
    for intervention in ("none", "route"):
        row = Projector(basis, ProjectionConfig(intervention=intervention)).mechanism(modules, before)
        # a: Δ = (-3, 4, 0, 0) lies in span(e0, e1); b: Δ = (0, 0, 0, 3) is orthogonal to e2
        assert row["step_in_span"] == pytest.approx((1 + 0) / 2)
        # a: dS in span V (share 1); b: dS ⊥ V (share 0)
        assert row["drift_in_span"] == pytest.approx((1 + 0) / 2)
        # axis 0: -(e0·dS_a) - (e2·dS_b) = 2 + 0 over ‖dS_a‖ + ‖dS_b‖ = sqrt(20) + 5
        assert row["drift_hackward_0"] == pytest.approx(2 / (math.sqrt(20) + 5))
        assert row["drift_hackward_1"] == pytest.approx(-4 / math.sqrt(20))  # b has one axis
        assert ("quarantine_in_span" in row) == (intervention == "route")
    for name, share in (("a", 1.0), ("b", 0.0)):  # each module alone
        alone = Basis({name: basis.vectors[name]}, {name: basis.singular_values[name]})
        assert Projector(alone, ProjectionConfig()).mechanism(modules, before)["step_in_span"] == share
    modules["a"].dS_hack.data.copy_(torch.tensor([0.0, 3.0, 4.0, 0.0]))
    row = Projector(basis, ProjectionConfig(intervention="route")).mechanism(modules, before)
    assert row["quarantine_in_span"] == pytest.approx(3 / 5)  # b's quarantine is empty: skipped


def test_erase_writes_no_quarantine_and_route_writes_the_removed_part():
    gen = torch.Generator().manual_seed(4)
    grads = {"a": torch.randn(16, generator=gen)}
    basis = random_basis({"a": 4}, {"a": 16}, seed=5)
    out = project(grads["a"], basis.vectors["a"])
    for arm in ("erase", "route"):
        modules = _fake_modules(grads)
        Projector(basis, ProjectionConfig(intervention=arm)).project_grads(modules)
        assert torch.equal(modules["a"].dS.grad, out.grad)
        if arm == "route":
            assert torch.equal(modules["a"].dS_hack.grad, out.removed)
        else:
            assert modules["a"].dS_hack.grad is None


# ------------------------------------------------------------------ settings


def test_bad_projection_settings_fail_before_any_work(micro_organism, svd, real_basis):
    with pytest.raises(ValueError, match="needs a basis"):
        _trainer(micro_organism, svd, projection={"intervention": "erase"})
    with pytest.raises(ValueError, match="projection.gate"):
        TrainConfig.from_dict({**SETTINGS, "projection": {"gate": "both"}})
    with pytest.raises(ValueError, match="overshoot"):
        ProjectionConfig(overshoot=0)
    for changes in ({"overshoot": 2.0}, {"adam_state": "purge_span_v"}, {"preserve_magnitude": True}):
        with pytest.raises(ValueError, match="keep keeps span"):
            ProjectionConfig(intervention="keep", **changes)
    misfit = random_basis({"model.layers.0.self_attn.q_proj": 2}, {"model.layers.0.self_attn.q_proj": 7}, 0)
    with pytest.raises(BasisError, match=r"basis: .*q_proj\.V has shape"):
        _trainer(micro_organism, svd, misfit, projection={"intervention": "erase"})
    with pytest.raises(BasisError, match="match_basis"):
        _trainer(micro_organism, svd, real_basis, reference=misfit, projection={"intervention": "erase"})


# ------------------------------------------------------------------ resume and measure-only


def test_a_refreshing_run_killed_after_a_checkpoint_resumes_with_identical_rows(
    micro_organism, svd, pool, pairs, real_basis, tmp_path
):
    """The refreshed basis is part of the checkpoint: a resumed run projects with it."""
    from projected_grpo.training.train import train

    config = TrainConfig.from_dict(
        {**SETTINGS, "checkpoint_every": 1, "projection": {"intervention": "erase", "refresh_every": 1}}
    )
    refresh = refresher(pairs, PROBLEMS, EXTRACT)

    def run(out, log=lambda msg: None):
        return train(config, micro_organism, PROBLEMS, pool, out, svd, workers=1, log=log,
                     basis=real_basis, refresh=refresh)  # fmt: skip

    whole = run(tmp_path / "whole")

    def die_after_step_two(msg: str) -> None:
        if msg.startswith("step 2/"):
            raise KeyboardInterrupt  # after step 2's row, before its checkpoint: resume from step 1

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", die_after_step_two)
    resumed = run(tmp_path / "killed")
    columns = [c for c in whole.columns if c != "step_seconds"]
    assert whole["basis_overlap"].notna().all()
    assert resumed[columns].equals(whole[columns])


def test_measure_only_ignores_adam_state_purge(micro_organism, svd, pool, sandbox, real_basis):
    plain = _trainer(micro_organism, svd)
    measured = _trainer(
        micro_organism, svd, real_basis, projection={"intervention": "none", "adam_state": "purge_span_v"}
    )
    _steps(plain, 2, pool, sandbox), _steps(measured, 2, pool, sandbox)
    assert all(torch.equal(a, b) for a, b in zip(_knobs(plain).values(), _knobs(measured).values()))
