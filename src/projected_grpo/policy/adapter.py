"""The SVD-knob adapter (SPEC §2): the only trainable parameters of the policy.

Every target Linear with weight ``W: [d_out, d_in]`` and reduced SVD
``W = U diag(S) Vh`` (``U: [d_out, r]``, ``Vh: [r, d_in]``, ``r = min(d_in, d_out)``) gets
two zero-initialised knob vectors ``dS, dS_hack: [r]`` and computes

    y = W x + U diag(dS + dS_hack) Vh x        (+ bias, unchanged)

so the knobs rescale the weight's own singular directions. Two exact-in-math ways to
compute it: small float32 weights on the CPU (at most ``MERGE_MAX_ELEMENTS``: a tiny model
such as the organism) use the *merged* weight ``W' = W + U diag(dS + dS_hack) Vh`` (one
matmul per call instead of three; without autograd ``W'`` is cached until the knobs or
``W`` change; under autograd each row group keeps its own ``W'`` for the backward); other
weights (bf16 / fp16, on an accelerator, or large) use the *delta* path above, which keeps
a small ``dS``'s precision and adds no weight copy. Invariants:

- base weights are frozen; ``dS`` is the only tensor autograd trains;
- ``dS_hack`` is the quarantine: it receives no gradient from the loss (the forward reads
  it detached), only what the projection routes into it, and is zeroed at deployment
  (``quarantine_ablated``);
- with every knob at zero ``W'`` is ``W`` and the delta is ``0``, so the logits are
  bit-identical to the base model; ``knobs_zeroed`` gives that base model as the KL reference (no copy);
- ``split_rows`` makes one backward pass give the gradient of ``dS`` from each group of
  batch rows (student / teacher) separately, ``g_s + g_t == dS.grad``.

The SVD of each ``W`` is computed once and cached on disk by a hash of ``W``'s bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from ..core.io import atomic_path

# Projection names of Llama / Qwen / Mistral-style decoders.
DEFAULT_TARGETS = (r"\.(q|k|v|o)_proj$", r"\.(up|gate|down)_proj$")


class AdapterError(ValueError):
    """A model that cannot carry the adapter, or a knob file that does not match it."""


class SVDKnobLinear(nn.Module):
    """A frozen ``nn.Linear`` plus singular-value knobs ``dS`` and ``dS_hack``: ``[r]``."""

    def __init__(self, base: nn.Linear, u: torch.Tensor, vh: torch.Tensor):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        r = vh.shape[0]
        self.register_buffer("u", u.to(base.weight.dtype), persistent=False)  # [d_out, r]
        self.register_buffer("vh", vh.to(base.weight.dtype), persistent=False)  # [r, d_in]
        self.dS = nn.Parameter(torch.zeros(r, dtype=torch.float32, device=base.weight.device))
        self.dS_hack = nn.Parameter(torch.zeros(r, dtype=torch.float32, device=base.weight.device))
        self.dS_hack.requires_grad_(False)
        self.active = True
        self.hack_active = True
        self.row_groups: torch.Tensor | None = None  # [B] long, set by split_rows
        self.n_groups = 0
        self.row_slices: list[tuple[int, int, int]] = []  # (group, first row, end row), set by split_rows
        self.split: torch.Tensor | None = None  # [n_groups, r] per-group view of dS
        self.merged = _merges(base.weight)
        self._cached: tuple[torch.Tensor, int, torch.Tensor] | None = None  # (scale, W version, W')

    @property
    def rank(self) -> int:
        return self.vh.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return self.base(x)
        hack = (self.dS_hack if self.hack_active else torch.zeros_like(self.dS_hack)).detach()
        if self.row_groups is None:
            return self._linear(x, self.dS + hack)  # at zero knobs: W' is W, y is base(x) bit for bit
        self.split = self.dS.expand(self.n_groups, -1)
        if self.split.requires_grad:
            self.split.retain_grad()
        if not self.merged:
            return self._linear(x, (self.split + hack)[self.row_groups].unsqueeze(1))  # [B, 1, r]
        # One merged weight per row group present: each group's (contiguous) rows reach its own view.
        # (``split``, not slicing: its backward concatenates, where each slice's would zero-fill the batch.)
        parts = x.split([end - start for _, start, end in self.row_slices])
        pieces = [self._linear(part, self.split[g] + hack) for part, (g, _, _) in zip(parts, self.row_slices)]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def _linear(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``W x + U diag(scale) Vh x`` (+ bias); ``scale: [r]``, or ``[B, 1, r]`` on the delta path."""
        if not self.merged:
            return self.base(x) + ((x @ self.vh.T) * scale.to(x.dtype)) @ self.u.T
        if torch.is_grad_enabled() and scale.requires_grad:
            return nn.functional.linear(x, self._merged_weight(scale), self.base.bias)
        version = self.base.weight._version  # an in-place change of W (load_state_dict) bumps it
        if self._cached is None or self._cached[1] != version or not torch.equal(self._cached[0], scale):
            self._cached = (scale.detach().clone(), version, self._merged_weight(scale.detach()))
        return nn.functional.linear(x, self._cached[2], self.base.bias)

    def _merged_weight(self, scale: torch.Tensor) -> torch.Tensor:
        """``W' = W + U diag(scale) Vh``: ``[d_out, d_in]``."""
        return self.base.weight + (self.u * scale) @ self.vh

    def _apply(self, fn, recurse=True):
        self._cached = None  # a device or dtype move: the cached W' is stale
        moved = super()._apply(fn, recurse)
        self.merged = _merges(self.base.weight)
        return moved


# Largest weight (elements) on the merged path: 1 MiB in float32. The organism's largest is
# 49 152; a 0.5 B-parameter model's Linears are > 1 M, and there the per-group copies of W'
# that autograd keeps (6 in training, one per row in V extraction) would cost GBs.
MERGE_MAX_ELEMENTS = 1 << 18


def _merges(weight: torch.Tensor) -> bool:
    """Whether a knob on ``weight`` takes the merged-weight path (small, float32, on the CPU)."""
    return (
        weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.numel() <= MERGE_MAX_ELEMENTS
    )


def target_names(model: nn.Module, patterns: Sequence[str] = DEFAULT_TARGETS) -> list[str]:
    """Names of the ``nn.Linear`` modules whose name matches one of ``patterns``."""
    compiled = [re.compile(p) for p in patterns]
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(c.search(name) for c in compiled)
    ]


def weight_hash(weight: torch.Tensor) -> str:
    """sha256 of the weight's shape, dtype and bytes (the SVD cache key)."""
    data = weight.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{tuple(data.shape)}:{data.dtype}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def reduced_svd(
    weight: torch.Tensor, cache_dir: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U: [d_out, r]``, ``S: [r]``, ``Vh: [r, d_in]`` of ``weight`` (float32 on CPU),
    read from / written to ``cache_dir/<hash>.safetensors`` when a cache is given."""
    from safetensors.torch import load_file, save_file

    path = Path(cache_dir) / f"{weight_hash(weight)}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        t = load_file(path)
        return t["U"], t["S"], t["Vh"]
    # On the weight's device (a GPU makes the one-off SVDs of a multi-billion model quick).
    u, s, vh = (t.cpu() for t in torch.linalg.svd(weight.detach().float(), full_matrices=False))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"U": u.contiguous(), "S": s.contiguous(), "Vh": vh.contiguous()}, str(tmp))
    return u, s, vh


def attach_knobs(
    model: nn.Module, patterns: Sequence[str] = DEFAULT_TARGETS, svd_cache: str | Path | None = None
) -> dict[str, SVDKnobLinear]:
    """Freeze ``model`` and replace each target Linear by an ``SVDKnobLinear`` in place.

    Returns ``{module name: knob module}`` in model order. Raises ``AdapterError`` when no
    Linear matches ``patterns``, or one that matches is the LM head (the loss computes it
    on the scored positions only, flattened across rows, which a per-row knob view cannot
    follow: ``logprobs.token_logprobs``)."""
    names = target_names(model, patterns)
    if not names:
        raise AdapterError(
            f"no nn.Linear in {type(model).__name__} matches the adapter target patterns "
            f"{list(patterns)} (config key train.adapter_targets); module names look like "
            f"{[n for n, _ in model.named_modules()][1:6]}"
        )
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name in names:
        if head is not None and model.get_submodule(name) is head:
            raise AdapterError(
                f"the adapter target patterns {list(patterns)} (config key train.adapter_targets) "
                f"match the LM head {name!r}, which cannot carry knobs; name only the decoder's Linears"
            )
    for p in model.parameters():
        p.requires_grad_(False)
    knobs = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        u, _, vh = reduced_svd(base.weight, svd_cache)
        knob = SVDKnobLinear(base, u.to(base.weight.device), vh.to(base.weight.device))
        setattr(parent, child, knob)
        knobs[name] = knob
    return knobs


def knob_modules(model: nn.Module) -> dict[str, SVDKnobLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, SVDKnobLinear)}


@contextlib.contextmanager
def knobs_zeroed(model: nn.Module) -> Iterator[None]:
    """The base model (every knob off): the KL reference, bit-identical to the original."""
    with _set(model, "active", False):
        yield


@contextlib.contextmanager
def quarantine_ablated(model: nn.Module) -> Iterator[None]:
    """The deployed model: ``dS_hack`` off, ``dS`` kept."""
    with _set(model, "hack_active", False):
        yield


@contextlib.contextmanager
def split_rows(model: nn.Module, row_groups: torch.Tensor, n_groups: int) -> Iterator[None]:
    """Within this context, forward passes give each group of batch rows its own view of
    every ``dS`` (``module.split: [n_groups, r]``), so after one backward
    ``module.split.grad[g]`` is the gradient from the rows of group ``g`` and ``dS.grad`` is
    their sum. ``row_groups: [B]`` long in ``[0, n_groups)``, non-decreasing (each group's
    rows contiguous, so the merged-weight path slices the batch instead of copying it)."""
    groups = row_groups.tolist()
    if any(not 0 <= g < n_groups for g in groups) or groups != sorted(groups):
        raise ValueError(f"row_groups must be non-decreasing values in [0, {n_groups}), got {groups[:12]}")
    bounds = [0, *itertools.accumulate(torch.bincount(row_groups.cpu(), minlength=n_groups).tolist())]
    row_slices = [(g, bounds[g], bounds[g + 1]) for g in range(n_groups) if bounds[g + 1] > bounds[g]]
    modules = knob_modules(model).values()
    for m in modules:
        m.row_groups, m.n_groups, m.row_slices = row_groups, n_groups, row_slices
    try:
        yield
    finally:
        for m in modules:
            m.row_groups, m.n_groups, m.row_slices = None, 0, []


def group_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{module name: [n_groups, r]}`` per-group gradients of the last split backward."""
    out = {}
    for name, m in knob_modules(model).items():
        if m.split is not None and m.split.grad is not None:
            out[name] = m.split.grad.detach().clone()
        m.split = None
    return out


@contextlib.contextmanager
def _set(model: nn.Module, attr: str, value: bool) -> Iterator[None]:
    modules = list(knob_modules(model).values())
    before = [getattr(m, attr) for m in modules]
    for m in modules:
        setattr(m, attr, value)
    try:
        yield
    finally:
        for m, b in zip(modules, before):
            setattr(m, attr, b)


def knob_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<module>.dS": [r], "<module>.dS_hack": [r]}`` (CPU copies)."""
    state = {}
    for name, m in knob_modules(model).items():
        state[f"{name}.dS"] = m.dS.detach().to("cpu").clone()
        state[f"{name}.dS_hack"] = m.dS_hack.detach().to("cpu").clone()
    return state


def save_knobs(model: nn.Module, path: str | Path) -> None:
    """Write every knob to one safetensors file (atomically)."""
    from safetensors.torch import save_file

    with atomic_path(Path(path)) as tmp:
        save_file(knob_state(model), str(tmp))


def load_knobs(model: nn.Module, path: str | Path) -> None:
    """Load knobs saved by ``save_knobs`` into a model carrying the same adapter."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        saved = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise AdapterError(f"{path}: not a readable knob file ({exc})") from exc
    expected = knob_state(model)
    if set(saved) != set(expected):
        missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
        raise AdapterError(
            f"{path}: knobs do not match the model's adapter (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    load_knob_state(model, saved, source=str(path))


def load_knob_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "knob state") -> None:
    """Copy ``knob_state``-style tensors into the model's knobs (shapes must match)."""
    modules = knob_modules(model)
    with torch.no_grad():
        for key, value in state.items():
            name, _, attr = key.rpartition(".")
            target = getattr(modules[name], attr)
            if value.shape != target.shape:
                raise AdapterError(
                    f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
                )
            target.copy_(value.to(target.device))
