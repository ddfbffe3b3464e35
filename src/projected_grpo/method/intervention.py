"""The projection arms inside a training step (SPEC §4): measure, erase, route.

A ``Projector`` holds the run's hack basis and acts once per optimizer step on every
module that has one. The trainer calls ``before_step`` once the step's gradient is in
``dS.grad`` (measure, then project the gradient), ``after_step`` once AdamW has stepped
(project the update, measure it, purge the momentum), and ``swap_basis`` when V is
re-extracted. The parts:

- ``measure``: ``cin`` of the full gradient and of each row group's part (student,
  teacher, teacher-hack, teacher-correct) against its null (``projection.null_cin``);
- ``project_target: grad``: before the optimizer, ``dS.grad ← g'``; ``route`` also writes
  ``removed`` to ``dS_hack.grad`` (AdamW moves the quarantine, rescaling each coordinate
  to a full-size step; no weight decay on it);
- ``project_target: update``: after the optimizer, the parameter change itself is
  projected (``u = -Δ`` as a pseudo-gradient), which closes the Adam leak: momentum banks
  old hack-ward mass and ``1/sqrt(v)`` rotates, so ``g' ⊥ V`` does not make ``Δ ⊥ V``;
  ``route`` moves ``dS_hack`` by exactly the removed part of the step (``dS + dS_hack``
  moves as vanilla's ``dS`` would);
- ``cout_update``: ``relu(V(-Δ))`` share of the actual change of ``dS``, every step, and
  beside it where the knobs went along V (``mechanism``);
- ``adam_state: purge_span_v``: the first moment loses its component in ``span(V)``;
- ``match_removed``: the run's basis removes as much of ``g``'s component in its span as
  it takes to reach the norm a *reference* basis (real V) would remove — never more than
  the whole component, so no coordinate of ``V g`` reverses or grows; ``match_ratio``
  logs how close it came.

``intervention: keep`` turns the projection round: the update (or gradient) keeps only its
part inside ``span(V)`` of a *trusted* basis and loses the rest (``projection.keep_span``;
no gate, overshoot or matching: the span is kept whole); ``kept_share`` logs
``‖g'‖/‖g‖`` over all modules as one vector. Under every intervention a module the basis
has no axes for is left as it is.

``intervention: none`` only measures: the update is the vanilla one, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .basis import Basis, basis_overlap
from .projection import (
    Projected,
    hackward_drift,
    hackward_share,
    keep_span,
    null_cin,
    null_overlap,
    overlap,
    project,
    purge_span,
)

INTERVENTIONS = ("none", "erase", "route", "keep")
TARGETS = ("grad", "update")
ADAM_STATES = ("keep", "purge_span_v")
# Row groups of the split backward: source (student, teacher) × label (hack, correct, other).
LABELS = ("hack", "correct", "other")
N_GROUPS = 2 * len(LABELS)


@dataclass(frozen=True)
class ProjectionConfig:
    """intervention: none (measure) | erase | route | keep (only span(V) kept); gate /
    overshoot / preserve_magnitude: ``projection.project`` (erase and route; keep takes the
    defaults and ignores the gate); project_target: grad | update; adam_state: keep |
    purge_span_v; match_removed: remove up to the reference basis's removed norm;
    refresh_every: re-extract V every N steps (0 = frozen); deploy_eval_every: for route,
    sample the deployed (quarantine-ablated) student every N steps (0 = never)."""

    intervention: str = "none"
    gate: str = "one_sided"
    overshoot: float = 1.0
    preserve_magnitude: bool = False
    project_target: str = "grad"
    adam_state: str = "keep"
    match_removed: bool = False
    refresh_every: int = 0
    deploy_eval_every: int = 10

    def __post_init__(self) -> None:
        from .projection import GATES

        for key, allowed in (
            ("intervention", INTERVENTIONS),
            ("gate", GATES),
            ("project_target", TARGETS),
            ("adam_state", ADAM_STATES),
        ):
            if getattr(self, key) not in allowed:
                raise ValueError(f"projection.{key}: expected one of {allowed}, got {getattr(self, key)!r}")
        if self.overshoot <= 0 or self.refresh_every < 0 or self.deploy_eval_every < 0:
            raise ValueError("projection: expected overshoot > 0, refresh_every >= 0, deploy_eval_every >= 0")
        if self.intervention == "keep" and (
            self.overshoot != 1.0
            or self.preserve_magnitude
            or self.match_removed
            or self.adam_state != "keep"
        ):
            raise ValueError(
                "projection.intervention keep keeps span(V) whole: expected overshoot 1, preserve_magnitude "
                "false, match_removed false and adam_state keep"
            )


def group_index(source: int, exploited: bool, correct: bool) -> int:
    """The row group of one rollout in the split backward."""
    label = 0 if exploited else 1 if correct else 2
    return source * len(LABELS) + label


@dataclass
class Projector:
    """The run's basis (``vectors[module]: [k, r]``), settings, and optional reference basis
    for ``match_removed``."""

    basis: Basis
    config: ProjectionConfig
    reference: Basis | None = None
    # dS / dS_hack as they were before the optimizer step (set by before_step)
    _before: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _before_hack: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.config.match_removed and self.reference is None:
            raise ValueError("projection.match_removed needs a reference basis (match_basis)")

    @property
    def acting(self) -> bool:
        """Whether this projector changes training (``intervention: none`` only measures)."""
        return self.config.intervention != "none"

    # ------------------------------------------------------------------ the per-step protocol

    def before_step(self, modules: dict, split: dict[str, torch.Tensor]) -> dict:
        """With the step's gradient in ``dS.grad`` (``split[m]: [N_GROUPS, r]``, its row
        groups): the ``cin`` columns, then (``project_target: grad``) ``dS.grad ← g'``.
        Remembers the knobs' values for ``after_step``. Returns the step-row columns."""
        row = self.measure(modules, split)
        if self.acting and self.config.project_target == "grad":
            row |= self.project_grads(modules)
        self._before = {name: m.dS.detach().clone() for name, m in modules.items()}
        self._before_hack = {name: m.dS_hack.detach().clone() for name, m in modules.items()}
        return row

    def after_step(self, modules: dict, optimizer: torch.optim.Optimizer) -> dict:
        """After the optimizer step: (``project_target: update``) project the change it
        made, then ``cout_update`` and ``mechanism`` of the change as it stands, then the
        momentum purge. Returns the step-row columns."""
        row = {}
        if self.acting and self.config.project_target == "update":
            row |= self.project_update(modules, self._before, self._before_hack)
        row["cout_update"] = self.cout_update(modules, self._before)
        row |= self.mechanism(modules, self._before)
        self.purge_momentum(optimizer, modules)
        return row

    def swap_basis(self, fresh: Basis) -> float:
        """Act with ``fresh`` (a re-extracted V) from now on; returns its ``basis_overlap``
        with the basis it replaces."""
        overlap_with_old = basis_overlap(self.basis, fresh)
        self.basis = fresh
        return overlap_with_old

    def _vectors(self, modules: dict):
        """``(module, V)`` with ``V`` on that module's knob device (the basis stays on the CPU)."""
        for name, v in self.basis.vectors.items():
            yield name, v.to(modules[name].dS.device)

    # ------------------------------------------------------------------ diagnostics

    def measure(self, modules: dict, split: dict[str, torch.Tensor]) -> dict:
        """``cin`` columns of the gradient now in ``dS.grad``; ``split[m]: [N_GROUPS, r]``."""
        parts = {"cin": [], "overlap": [], "cin_null": [], "overlap_null": []}
        parts |= {f"cin_{name}": [] for name in ("s", "t", "t_hack", "t_correct")}
        for name, v in self._vectors(modules):
            g = modules[name].dS.grad
            if g is None or not torch.any(g != 0):
                continue
            k, r = v.shape
            parts["cin"].append(hackward_share(g, v))
            parts["overlap"].append(overlap(g, v))
            parts["cin_null"].append(null_cin(k, r))
            parts["overlap_null"].append(null_overlap(k, r))
            groups = split.get(name)
            if groups is None:
                continue
            n = len(LABELS)
            for key, g_part in (
                ("cin_s", groups[:n].sum(0)),
                ("cin_t", groups[n:].sum(0)),
                ("cin_t_hack", groups[n]),
                ("cin_t_correct", groups[n + 1]),
            ):
                if torch.any(g_part != 0):
                    parts[key].append(hackward_share(g_part, v))
        return {key: _mean(values) for key, values in parts.items()}

    def cout_update(self, modules: dict, before: dict[str, torch.Tensor]) -> float:
        """Mean over modules of ``‖relu(V(-Δ))‖/‖Δ‖`` for the change ``Δ`` of ``dS``."""
        shares = []
        for name, v in self._vectors(modules):
            delta = modules[name].dS.detach() - before[name]
            if torch.any(delta != 0):
                shares.append(hackward_share(-delta, v))
        return _mean(shares)

    def mechanism(self, modules: dict, before: dict[str, torch.Tensor]) -> dict:
        """Where the knobs went along V, after the step (``Δ`` = this step's change of
        ``dS``; the knobs start at zero, so ``dS`` is their whole drift ``dS_t - dS_0``):

        - ``step_in_span``: mean over modules of ``‖V Δ‖/‖Δ‖`` (unsigned; null ``overlap_null``);
        - ``drift_in_span``: mean over modules of ``‖V dS‖/‖dS‖`` (unsigned; same null);
        - ``drift_hackward_<i>``: the signed hack-ward drift along axis ``i``
          (``projection.hackward_drift``: ``‖dS_m‖``-weighted mean over modules of the
          cosine of ``dS_m`` with ``-V_m[i]``);
        - route only, ``quarantine_in_span``: mean over modules of ``‖V dS_hack‖/‖dS_hack‖``."""
        steps, drifts, quarantine, knobs = [], [], [], []
        for name, v in self._vectors(modules):
            dS = modules[name].dS.detach()
            delta = dS - before[name]
            if torch.any(delta != 0):
                steps.append(overlap(delta, v))
            if torch.any(dS != 0):
                drifts.append(overlap(dS, v))
            knobs.append((dS, v))
            hack = modules[name].dS_hack.detach()
            if torch.any(hack != 0):
                quarantine.append(overlap(hack, v))
        row = {"step_in_span": _mean(steps), "drift_in_span": _mean(drifts)}
        row |= {f"drift_hackward_{i}": drift for i, drift in enumerate(hackward_drift(knobs))}
        if self.config.intervention == "route":
            row["quarantine_in_span"] = _mean(quarantine)
        return row

    # ------------------------------------------------------------------ interventions

    def project_grads(self, modules: dict) -> dict:
        """Replace ``dS.grad`` by ``g'`` (route: ``removed`` into ``dS_hack.grad``)."""
        route = self.config.intervention == "route"
        stats = []
        for name, v in self._vectors(modules):
            module = modules[name]
            if module.dS.grad is None:
                continue
            out, target = self._project(name, module.dS.grad, v)
            module.dS.grad = out.grad
            if route:
                module.dS_hack.grad = out.removed
            stats.append((out, target))
        return self._summary(stats)

    def project_update(self, modules: dict, before: dict[str, torch.Tensor], before_hack: dict) -> dict:
        """Project the change the optimizer just made to ``dS`` (route: the removed part of
        the change goes to ``dS_hack``)."""
        route = self.config.intervention == "route"
        stats = []
        with torch.no_grad():
            for name, v in self._vectors(modules):
                module = modules[name]
                step = before[name] - module.dS  # u = -Δ, a descent pseudo-gradient
                if not torch.any(step != 0):
                    continue
                out, target = self._project(name, step, v)
                module.dS.copy_(before[name] - out.grad)
                if route:
                    module.dS_hack.copy_(before_hack[name] - out.removed)
                stats.append((out, target))
        return self._summary(stats)

    def _project(self, name: str, g: torch.Tensor, v: torch.Tensor) -> tuple[Projected, float | None]:
        """One module's projection and, under ``match_removed``, the norm it aimed at."""
        c = self.config
        if c.intervention == "keep":
            return keep_span(g, v), None
        if c.match_removed:
            return self._match(name, g, v)
        return project(g, v, c.gate, c.overshoot, c.preserve_magnitude), None

    def _match(self, name: str, g: torch.Tensor, v: torch.Tensor) -> tuple[Projected, float]:
        """Remove ``s · (V g)ᵀ V`` with ``s = min(1, T/‖V g‖)``, ``T`` the norm the reference
        basis's gated removal takes from ``g`` (0 where it has no axes). Every coordinate
        of ``V g`` shrinks by the same factor ``1 - s``: none reverses or grows, and where
        ``T`` exceeds the whole component the run removes all of it and falls short (a
        random basis holds little of ``g``). The gate sets ``T`` only: a random basis's
        orientation carries no meaning. Returns the projection and ``T``."""
        c = self.config
        ref, target = self.reference.vectors.get(name), 0.0
        if ref is not None:
            target = float(project(g, ref.to(g.device), c.gate, c.overshoot).removed.norm())
        component = (v @ g) @ v
        norm = float(component.norm())
        removed = component * min(1.0, target / norm) if norm > 0 else torch.zeros_like(g)
        grad = g - removed
        fired = bool(torch.any(removed != 0))
        return Projected(grad, removed, hackward_share(g, v), hackward_share(grad, v), fired), target

    def _summary(self, stats: list[tuple[Projected, float | None]]) -> dict:
        """The step-row columns of a projection: ``cout``, ``fired_frac``, ``removed_norm``
        (over all modules as one vector); under ``match_removed``, ``match_ratio``: that
        norm over the norm the reference basis would have removed (1 = matched; NaN when
        it would have removed nothing); under ``keep``, ``kept_share``: ``‖g'‖/‖g‖`` (NaN
        for a zero ``g``)."""
        removed = torch.cat([out.removed for out, _ in stats]) if stats else torch.zeros(0)
        row = {
            "cout": _mean([out.cout for out, _ in stats]),
            "fired_frac": _mean([float(out.fired) for out, _ in stats]),
            "removed_norm": float(removed.norm()),
        }
        if self.config.intervention == "keep":
            kept = torch.cat([out.grad for out, _ in stats]) if stats else torch.zeros(0)
            whole = float((kept + removed).norm())
            row["kept_share"] = float(kept.norm()) / whole if whole > 0 else float("nan")
        if self.config.match_removed:
            target = float(np.sqrt(sum(t**2 for _, t in stats)))
            row["match_ratio"] = row["removed_norm"] / target if target > 0 else float("nan")
        return row

    def purge_momentum(self, optimizer: torch.optim.Optimizer, modules: dict) -> None:
        """``adam_state: purge_span_v``: drop the first moment's component in span(V)
        (projection arms only: ``none`` never changes training)."""
        if self.config.adam_state != "purge_span_v" or self.config.intervention == "none":
            return
        with torch.no_grad():
            for name, v in self._vectors(modules):
                state = optimizer.state.get(modules[name].dS)
                if state and "exp_avg" in state:
                    state["exp_avg"].copy_(purge_span(state["exp_avg"], v))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
