"""Training checkpoints: knobs + optimizer + schedule + every RNG + the rows so far.

A run killed at any point resumes from its last checkpoint and, because every random
draw after it comes from the restored states, writes exactly the rows an unkilled run
writes. A checkpoint belongs to one configuration: resuming under another is refused.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from ..core.io import atomic_path
from ..policy.adapter import knob_state, load_knob_state

FILE = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (corrupt, or from another configuration)."""


def save(
    out_dir: Path,
    step: int,
    model,
    optimizer,
    scheduler,
    rng: random.Random,
    generator,
    rows,
    config: dict,
    basis: dict | None = None,
) -> None:
    """Write the checkpoint atomically; ``basis``: a refreshed hack basis's fields."""
    state = {
        "step": step,
        "knobs": knob_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng.getstate(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "rows": rows,
        "config": config,
        "basis": basis,
    }
    with atomic_path(out_dir / FILE) as tmp:
        torch.save(state, tmp)


def load(out_dir: Path, config: dict) -> dict | None:
    """The checkpoint in ``out_dir`` (None when there is none)."""
    path = out_dir / FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc}); delete it to start over") from exc
    if state.get("config") != config:
        changed = sorted(
            k for k in set(config) | set(state.get("config", {})) if state["config"].get(k) != config.get(k)
        )
        raise CheckpointError(
            f"{path}: written by another training configuration (differs in {changed}); "
            "delete it or use another --out"
        )
    return state


def restore(state: dict, model, optimizer, scheduler, rng: random.Random, generator) -> None:
    load_knob_state(model, state["knobs"], source=FILE)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.setstate(state["rng"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
