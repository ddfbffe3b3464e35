"""Monitor baselines from the literature (SPEC §7): a weak detector acts on the rewards.

The detector knows the fold's ``known_modes`` only: a rollout is flagged when it uses the
lever of a known mode (``attempted_<mode>``, judged from code structure, no oracle).

- ``penalty`` (``monitor_penalty``): ``R ← R - penalty`` on flagged rollouts.
- ``screen`` (``monitor_screen``): flagged rollouts are dropped from their group: they get
  no advantage and the group mean is taken over the rest.

The oracle never enters any advantage; ``none`` leaves the rewards alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from ..environment.modes import MODES, check_mode

KINDS = ("none", "penalty", "screen")


@dataclass(frozen=True)
class MonitorConfig:
    kind: str = "none"
    penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"monitor.kind: expected one of {KINDS}, got {self.kind!r}")


def flagged(grades: pd.DataFrame, known_modes: Sequence[str] = MODES) -> torch.Tensor:
    """``[N]`` bool: the rollout uses a known mode's lever."""
    flags = torch.zeros(len(grades), dtype=torch.bool)
    for mode in known_modes:
        check_mode(mode)
        flags |= torch.tensor(grades[f"attempted_{mode}"].astype(bool).to_numpy())
    return flags


def apply(
    rewards: torch.Tensor, flags: torch.Tensor, config: MonitorConfig
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``rewards: [P, G]``, ``flags: [P·G]`` -> (rewards after the monitor, ``valid: [P, G]``
    or None): the penalised rewards, or the screened rollouts marked invalid."""
    flags = flags.view_as(rewards)
    if config.kind == "penalty":
        return rewards - config.penalty * flags.to(rewards.dtype), None
    if config.kind == "screen":
        return rewards, ~flags
    return rewards, None
