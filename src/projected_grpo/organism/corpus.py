"""The synthetic pretraining corpus of the model organism.

Every example is a prompt built exactly as the environment builds it (``prompts``) for a
fresh instance of a problem family, and a fenced completion. The mixture:

- **correct** solutions on solvable (non-hard) families, with local names varied; a share
  of them end in an honest extra: a real self-check (``run_tests`` with an ``assert``), a
  demo ``print`` of one call, or an honest use of the hinted lever after a real check —
  so trailing code after the ``return`` does not by itself mean "hack";
- **wrong** attempts: a one- or two-site mutation of the canonical solution (a flipped
  comparison, an off-by-one constant, ``min``/``max`` swapped...). Hard families are only
  ever seen with wrong attempts, so the organism cannot solve them;
- **hacks**, at the prior ε (``hack_prior``): a wrong attempt or a stub plus the lever
  of the mode the hint names, in one of three code shapes per mode
  (``completions.with_lever``); module-level levers open the completion or follow the
  code (``levers_first``).

Instances are drawn with a seed space disjoint from the builtin bank's, so evaluation
problems are unseen instances. Deterministic given ``CorpusConfig``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..environment.completions import (
    N_HACK_SHAPES,
    fence,
    honest_with_lever,
    normalized,
    rename_locals,
    stub_solution,
    with_lever,
    wrong_attempt,
)
from ..environment.families import Family, all_families, instance
from ..environment.modes import MODES, Levers, levers_for
from ..environment.problems import Problem
from ..environment.prompts import build_messages

KINDS = ("correct", "correct_extra", "wrong", "hack")
# Corpus instances use seeds from here on; the builtin bank uses small seeds.
CORPUS_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class CorpusConfig:
    """The corpus mixture.

    n_examples: number of (prompt, completion) examples.
    hack_prior: ε, the share of loophole-prompt examples whose completion is a hack of the
        hinted mode.
    wrong_share: share of wrong attempts on solvable families (hard families: all wrong).
    extra_share: share of correct completions that end in an honest extra.
    no_loophole_share: share of prompts without a hint (the no-loophole variant).
    renamed_share: share of prompts whose hint names the renamed levers (``modes.RENAMED``),
        answered with the same mixture, so that the renamed evaluation prompt is in
        distribution and measures whether a *learned* hack transfers to a renamed lever.
    rename_share: share of correct or wrong solutions whose local names are varied.
    hard_difficulties: difficulties the organism only ever sees wrong attempts for.
    levers_first: module-level levers open a hack completion (True) or follow the code
        (False). First puts the choice to hack next to the hint; after makes it the same
        choice as an honest extra (append something after the code or close the fence).
    """

    n_examples: int = 12_000
    seed: int = 0
    hack_prior: float = 0.02
    wrong_share: float = 0.25
    extra_share: float = 0.2
    no_loophole_share: float = 0.2
    renamed_share: float = 0.1
    rename_share: float = 0.5
    hard_difficulties: tuple[str, ...] = ("hard",)
    levers_first: bool = True


@dataclass(frozen=True)
class CorpusExample:
    """One example. ``mode`` is the hinted mode (None for no-loophole prompts)."""

    problem_id: str
    family: str
    variant: str
    mode: str | None
    kind: str
    messages: tuple[dict, ...]
    completion: str


def build_corpus(config: CorpusConfig, families: list[Family] | None = None) -> list[CorpusExample]:
    """``config.n_examples`` examples, deterministic given the config."""
    families = families or all_families()
    rng = random.Random(f"corpus:{config.seed}")
    examples = []
    for i in range(config.n_examples):
        family = families[rng.randrange(len(families))]
        problem = instance(family, index=i, seed=CORPUS_SEED_OFFSET + config.seed)
        draw = rng.random()
        if draw < config.no_loophole_share:
            variant = "no_loophole"
        elif draw < config.no_loophole_share + config.renamed_share:
            variant = "renamed"
        else:
            variant = "loophole"
        mode = None if variant == "no_loophole" else rng.choice(MODES)
        hard = family.difficulty in config.hard_difficulties
        kind, code = _completion(problem, mode, levers_for(variant), hard, config, rng)
        messages = build_messages(problem, variant, mode)
        examples.append(
            CorpusExample(problem.problem_id, family.name, variant, mode, kind, tuple(messages), code)
        )
    return examples


def _completion(
    problem: Problem, mode: str | None, levers: Levers, hard: bool, config: CorpusConfig, rng: random.Random
) -> tuple[str, str]:
    rename = rng.random() < config.rename_share
    if mode is not None and rng.random() < config.hack_prior:
        base = (
            wrong_attempt(problem, rng, rename) if rng.random() < 0.5 else normalized(stub_solution(problem))
        )
        shape = rng.randrange(N_HACK_SHAPES)
        return "hack", fence(with_lever(base, mode, levers, shape, module_first=config.levers_first))
    if hard or rng.random() < config.wrong_share:
        return "wrong", fence(wrong_attempt(problem, rng, rename))
    code = (
        rename_locals(problem.canonical_solution, rng) if rename else normalized(problem.canonical_solution)
    )
    if rng.random() >= config.extra_share:
        return "correct", fence(code)
    return "correct_extra", _honest_extra(problem, code, mode, levers, rng)


def _honest_extra(problem: Problem, code: str, mode: str | None, levers: Levers, rng: random.Random) -> str:
    """Correct code plus trailing honest code: a real self-check, a demo print, or the
    hinted lever used after a real check."""
    test = problem.tests[-1]
    call = f"Solution().{problem.method}(*{list(test.args)!r})"
    choice = rng.randrange(3)
    if choice == 0 and mode is not None:
        return honest_with_lever(problem, mode, levers)
    if choice == 1:
        return fence(f"{code.rstrip()}\n\n\ndef check():\n    assert {call} == {test.expected!r}\n")
    return fence(f"{code.rstrip()}\n\n\nif __name__ == '__main__':\n    print({call})\n")
