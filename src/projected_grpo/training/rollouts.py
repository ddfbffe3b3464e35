"""One step's groups: student samples plus teacher-pool completions, graded and packed.

For each of the step's ``P`` prompts the group holds ``G_t`` completions drawn (without
replacement) from the teacher pool rows of the same problem and variant and ``G - G_t``
student completions sampled now. Where a fold's pool has fewer than ``G_t`` rows for a
problem (its teacher completions used a held-out lever), the student fills the group. ``Rollouts`` keeps them prompt-major: rows ``[p*G, (p+1)*G)``
are prompt ``p``'s group, student rows first. ``pack`` turns the kept rows into one
left-padded-prompt / right-padded-completion batch for the teacher-forced loss;
``length_buckets`` splits the kept rows into micro-batches of similar length, so the loss
batch is not padded to the longest completion of the step.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pandas as pd
import torch

from ..environment.grader import Submission, grade_all
from ..environment.problems import Problem
from ..environment.prompts import build_messages, render_prompt
from ..environment.sandbox import Sandbox
from ..policy.logprobs import pack_sequences
from ..policy.sampler import SamplingConfig, sample

STUDENT, TEACHER = 0, 1


@dataclass
class Rollouts:
    """``N = P · G`` rows, prompt-major. ``source[i]`` is ``STUDENT`` or ``TEACHER``."""

    problems: list[Problem]  # [P]
    prompt_ids: list[list[int]]  # [P] prompt tokens
    completion_ids: list[list[int]]  # [N] completion tokens (at most max_new_tokens)
    source: list[int]  # [N]
    grades: pd.DataFrame  # [N] grade columns (grader.Grade.to_row) + "completion", "finished"
    group_size: int

    @property
    def rewards(self) -> torch.Tensor:
        """``[P, G]`` float rewards."""
        return torch.tensor(self.grades["reward"].to_numpy(), dtype=torch.float32).view(-1, self.group_size)


def collect(
    model,
    tokenizer,
    problems: list[Problem],
    variant: str,
    n_student: int,
    n_teacher: int,
    pool: pd.DataFrame | None,
    sampling: SamplingConfig,
    generator: torch.Generator,
    rng: random.Random,
    sandbox: Sandbox,
) -> Rollouts:
    """Draw up to ``n_teacher`` rows per problem from ``pool``, sample the rest of each group
    of ``n_student + n_teacher`` from the student and grade those (pool rows are graded)."""
    group_size = n_student + n_teacher
    drawn = [_draw_teacher(pool, problem, variant, n_teacher, rng) for problem in problems]
    n_students = [group_size - len(rows) for rows in drawn]
    owner = [i for i, n in enumerate(n_students) for _ in range(n)]  # student sample -> problem
    starts = [0, *itertools.accumulate(n_students)]
    prompts = [render_prompt(tokenizer, build_messages(p, variant)) for p in problems]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    batch = sample(model, tokenizer, [prompts[i] for i in owner], sampling, generator)
    lengths = batch.completion_mask.sum(dim=1).tolist()
    student_ids = [ids[:n] for ids, n in zip(batch.completion_ids.tolist(), lengths)]
    grades = grade_all(
        [Submission(problems[i], text, variant=variant) for i, text in zip(owner, batch.texts)], sandbox
    )
    student_rows = [
        {**g.to_row(), "completion": text, "finished": fin}
        for g, text, fin in zip(grades, batch.texts, batch.finished)
    ]

    rows, completion_ids, source = [], [], []
    for i in range(len(problems)):
        for j in range(starts[i], starts[i + 1]):
            rows.append(student_rows[j])
            completion_ids.append(student_ids[j])
            source.append(STUDENT)
        for row in drawn[i]:
            rows.append({**row, "finished": bool(row.get("finished", True))})
            ids = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
            completion_ids.append(ids[: sampling.max_new_tokens])
            source.append(TEACHER)
    return Rollouts(problems, prompt_ids, completion_ids, source, pd.DataFrame(rows), group_size)


def _draw_teacher(pool, problem: Problem, variant: str, n: int, rng: random.Random) -> list[dict]:
    """Up to ``n`` rows of ``problem`` and ``variant``, drawn without replacement."""
    if n == 0:
        return []
    candidates = pool[(pool["problem_id"] == problem.problem_id) & (pool["variant"] == variant)]
    picks = sorted(rng.sample(range(len(candidates)), min(n, len(candidates))))
    return [candidates.iloc[i].to_dict() for i in picks]


def pack(rollouts: Rollouts, rows: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The selected rows of ``rollouts`` as one batch (``pack_sequences``)."""
    prompts = [rollouts.prompt_ids[i // rollouts.group_size] for i in rows]
    return pack_sequences(prompts, [rollouts.completion_ids[i] for i in rows], pad_id)


# The fixed cost of one more forward + backward (one more packed batch), in padded tokens. It
# only decides the partition, never the gradient; on the CPU organism 128 and 512 tie and
# 2048 is slower (bench/bench_buckets.py -> bench/buckets.txt).
BATCH_OVERHEAD_TOKENS = 512


def length_buckets(
    rollouts: Rollouts, rows: list[int], max_rows: int = 0, overhead_tokens: int = BATCH_OVERHEAD_TOKENS
) -> list[list[int]]:
    """``rows`` split into micro-batches (``pack`` pads each to its own longest prompt and
    completion) of at most ``max_rows`` rows (0: no cap): rows sorted by length, cut where
    the padded tokens plus ``overhead_tokens`` per batch are least (exact, by dynamic
    programming over the sorted order). Every row is in exactly one batch; the order is
    deterministic (ties by row index)."""
    prompt_len = [len(rollouts.prompt_ids[i // rollouts.group_size]) for i in rows]
    completion_len = [max(1, len(rollouts.completion_ids[i])) for i in rows]
    order = sorted(range(len(rows)), key=lambda k: (prompt_len[k] + completion_len[k], rows[k]))
    cap = max_rows or len(rows)
    best, cut = [0] + [float("inf")] * len(rows), [0] * (len(rows) + 1)
    for end in range(1, len(rows) + 1):  # best[end]: least cost of order[:end]
        width_p = width_t = 0
        for start in range(end - 1, max(end - cap, 0) - 1, -1):
            width_p = max(width_p, prompt_len[order[start]])
            width_t = max(width_t, completion_len[order[start]])
            cost = best[start] + (end - start) * (width_p + width_t) + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches, end = [], len(rows)
    while end:
        batches.append([rows[k] for k in order[cut[end] : end]])
        end = cut[end]
    return batches[::-1]
