"""A hack basis: per module, ``k`` orthonormal rows ``V: [k, r]`` in the knob space of ``dS``.

Row ``i`` of a module's ``V`` points *hack-ward*: for a gradient ``g: [r]`` of that
module's ``dS``, ``(V g)_i > 0`` means a descent step ``-lr·g`` moves toward hacks.
Modules absent from ``vectors`` carry no basis (skipped by the projection).

A basis in AdamW's geometry (``extraction.geometry: adam``) also carries ``scale[module]:
[r]``, the per-coordinate root mean square its gradients were divided by: a gradient ``g``
is read in its coordinates as ``g / scale`` (``Basis.coordinates``).

Saved as one safetensors file: ``<module>.V`` and ``<module>.S`` (the singular values of
the axes kept; ones for random bases), ``<module>.scale`` when it has one, with string metadata (kind, fold, model hash, pair
count and ``pair_ids`` as JSON, extraction ``settings`` as JSON).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..core.io import atomic_path


class BasisError(ValueError):
    """A basis file that is unreadable or does not fit the model's adapter."""


@dataclass
class Basis:
    """``vectors[module]: [k_m, r_m]`` orthonormal rows, ``singular_values[module]: [k_m]``,
    ``scale[module]: [r_m]`` or ``None`` (a basis in the raw gradient's coordinates)."""

    vectors: dict[str, torch.Tensor]
    singular_values: dict[str, torch.Tensor]
    meta: dict[str, str] = field(default_factory=dict)
    scale: dict[str, torch.Tensor] | None = None

    def coordinates(self, name: str, g: torch.Tensor) -> torch.Tensor:
        """``g: [..., r]`` of module ``name`` in the basis's coordinates (``g / scale``)."""
        return g if self.scale is None else g / self.scale[name].to(g.device, g.dtype)

    @property
    def ranks(self) -> dict[str, int]:
        """``{module: k_m}``."""
        return {name: v.shape[0] for name, v in self.vectors.items()}

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        tensors = {}
        for name, v in self.vectors.items():
            tensors[f"{name}.V"] = v.detach().to("cpu", torch.float32).contiguous()
            tensors[f"{name}.S"] = self.singular_values[name].detach().to("cpu", torch.float32).contiguous()
            if self.scale is not None:
                tensors[f"{name}.scale"] = self.scale[name].detach().to("cpu", torch.float32).contiguous()
        with atomic_path(Path(path)) as tmp:
            save_file(tensors, str(tmp), metadata={k: str(v) for k, v in self.meta.items()})

    @classmethod
    def load(cls, path: str | Path) -> Basis:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except (SafetensorError, OSError) as exc:
            raise BasisError(f"{path}: not a readable basis file ({exc})") from exc
        names = sorted({key.rpartition(".")[0] for key in tensors})
        vectors, values, scale = {}, {}, {}
        for name in names:
            if f"{name}.V" not in tensors or f"{name}.S" not in tensors:
                raise BasisError(f"{path}: module {name} needs both {name}.V and {name}.S")
            vectors[name], values[name] = tensors[f"{name}.V"], tensors[f"{name}.S"]
            if f"{name}.scale" in tensors:
                scale[name] = tensors[f"{name}.scale"]
        if scale and set(scale) != set(vectors):
            raise BasisError(f"{path}: some modules carry a scale and some do not")
        return cls(vectors, values, meta, scale or None)

    def check_fits(self, ranks: dict[str, int], source: str = "basis") -> None:
        """Raise ``BasisError`` unless every module of the basis has a knob of its width."""
        for name, v in self.vectors.items():
            if name not in ranks:
                raise BasisError(f"{source}: module {name} is not an adapted module of the model")
            if v.dim() != 2 or v.shape[1] != ranks[name]:
                raise BasisError(
                    f"{source}: {name}.V has shape {tuple(v.shape)}, expected [k, {ranks[name]}]"
                )


def random_basis(
    ranks: dict[str, int],
    widths: dict[str, int],
    seed: int,
    meta: dict | None = None,
    scale: dict[str, torch.Tensor] | None = None,
) -> Basis:
    """Random orthonormal rows, ``ranks[m]`` of them in ``R^{widths[m]}`` for every module of
    ``ranks`` (matched k), seeded per module so adding a module changes no other. With
    ``scale`` (a basis in AdamW's geometry), random *gradient* directions read in that
    geometry: Gaussian rows divided by ``scale[m]``, then orthonormalised."""
    vectors, values = {}, {}
    for name, k in ranks.items():
        gen = torch.Generator().manual_seed(
            int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:12], 16)
        )
        gaussian = torch.randn(widths[name], k, generator=gen, dtype=torch.float64)
        if scale is not None:
            gaussian = gaussian / scale[name].double().unsqueeze(1)
        q, _ = torch.linalg.qr(gaussian)
        vectors[name] = q.T.contiguous().float()  # [k, r], orthonormal rows
        values[name] = torch.ones(k)
    kept = {name: scale[name] for name in ranks} if scale is not None else None
    return Basis(vectors, values, {"kind": "random", "seed": str(seed), **(meta or {})}, kept)


def matched_random_basis(like: Basis, seed: int, meta: dict | None = None) -> Basis:
    """``random_basis`` with ``like``'s k and width per module and its geometry (``scale``):
    the random control of ``like`` (real V, or the trusted basis of ``keep``)."""
    widths = {name: v.shape[1] for name, v in like.vectors.items()}
    return random_basis(like.ranks, widths, seed, meta, like.scale)


def subspace_overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖A Bᵀ‖_F² / max(k_a, k_b)`` for orthonormal rows ``a: [k_a, r]``, ``b: [k_b, r]``: 1
    for the same span, 0 for orthogonal spans, sign-blind."""
    k = max(a.shape[0], b.shape[0])
    return float((a.double() @ b.double().T).pow(2).sum() / k) if k else 0.0


def basis_overlap(old: Basis, new: Basis) -> float:
    """Mean ``subspace_overlap`` over the modules either basis has (0 where only one has),
    summed in module-name order (a set's order changes with the process's hash seed)."""
    names = sorted(set(old.vectors) | set(new.vectors))
    if not names:
        return float("nan")
    total = sum(
        subspace_overlap(old.vectors[n], new.vectors[n])
        for n in names
        if n in old.vectors and n in new.vectors
    )
    return total / len(names)


def model_hash(model_path: str | Path) -> str:
    """sha256 over the model folder's weight files (names and bytes), the basis's model key."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(model_path).iterdir() if p.suffix in (".safetensors", ".bin"))
    if not files:
        raise BasisError(f"{model_path}: no weight files (*.safetensors / *.bin) to hash")
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def basis_table(basis: Basis) -> pd.DataFrame:
    """One row per module with a basis: module, k, r, singular values, ``S_k / S_0``."""
    rows = []
    for name, v in basis.vectors.items():
        s = basis.singular_values[name]
        rows.append(
            {
                "module": name,
                "kind": basis.meta.get("kind", ""),
                "k": v.shape[0],
                "r": v.shape[1],
                "singular_values": s.tolist(),
                "s_ratio_last": float(s[-1] / s[0]) if s.numel() and s[0] > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def describe(basis: Basis) -> dict:
    """A JSON-able summary: modules with a basis, total axes, settings."""
    return {
        "modules": len(basis.vectors),
        "axes": int(sum(basis.ranks.values())),
        "meta": {
            k: (json.loads(v) if k == "settings" else v) for k, v in basis.meta.items() if k != "pair_ids"
        },
    }


def orient(v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Flip each row of ``v: [k, r]`` so that most rows of ``d: [n, r]`` project positively
    on it (ties keep the sign)."""
    proj = d @ v.T  # [n, k]
    flip = (proj < 0).sum(dim=0) > (proj > 0).sum(dim=0)
    return torch.where(flip.unsqueeze(1), -v, v)
