"""GRPO step speed: our trainer step vs TRL's GRPOTrainer vs a loop in the original research style.

    .venv/bin/pip install -e '.[bench]'                 # trl==1.16.0 (not a main dependency)
    .venv/bin/python bench/bench_train_step.py          # writes bench/train_step.txt

One run, one model (the organism, SVD knobs attached, only ``dS`` trains), the same problem
batches, prompts per step, group size, max_new_tokens and temperature for every method:

1. ours: ``training.train.Trainer.step``, the step ``projected_grpo.training.train.train`` runs —
   ``rollouts.collect`` (batched KV-cache sampler + sandbox grading), one forward +
   backward with split student/teacher knob views, clip, AdamW, schedule and the step's
   metrics. mix 0.5 (teacher pool) and mix 0.
2. TRL ``GRPOTrainer`` (mix 0, it has no teacher pool): ``loss_type="dr_grpo"``,
   ``scale_rewards="none"``, ``beta=0``, transformers ``generate``, CPU, fp32 and no
   gradient checkpointing (TRL defaults to bf16 and checkpointing; ours uses neither). Its
   reward function grades with our sandbox. Steps timed by a callback.
3. original style (after github.com/wassname/grpo_proj2 ``train.py``), mix 0.5: per prompt,
   ``model.generate`` for the student samples, grading, one forward over the group and two
   backwards (student half with ``retain_graph``, then teacher half). It graded in-process;
   here it grades with our sandbox.

Steps are interleaved (one step of each method in turn, driven from TRL's step-end
callback), so a change in machine load hits every method alike. Each method runs
``--steps + 1`` steps and drops its first (warm-up). The time spent in the sandbox is
counted per step as well: a completion that loops until the wall limit (``sandbox`` in
``--config``, the study's) costs every method the same, whatever its trainer.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import transformers
import yaml

from projected_grpo.core.io import atomic_write_text
from projected_grpo.core.schedule import warmup_cosine
from projected_grpo.environment.grader import Submission, grade_all
from projected_grpo.environment.problem_set import load_problem_set
from projected_grpo.environment.problems import train_problems
from projected_grpo.environment.prompts import build_messages, render_prompt
from projected_grpo.environment.sandbox import Limits, Sandbox
from projected_grpo.policy.adapter import DEFAULT_TARGETS, knob_modules
from projected_grpo.policy.evaluate import EvalConfig
from projected_grpo.policy.loading import load_model
from projected_grpo.pool.teacher import build_pool
from projected_grpo.training.grpo import fixed_denominator
from projected_grpo.training.train import TrainConfig, Trainer, seed_everything

VARIANT = "loophole"
TARGETS = (
    "targets (stated, not asserted): ours >= 2x faster than TRL (mix 0 vs mix 0); ours >= 3x faster "
    "than the original-style loop (mix 0.5 vs mix 0.5); one default training run <= 90 s"
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per method (after 1 warm-up)")
    parser.add_argument("--out", default="bench/train_step.txt")
    parser.add_argument("--model", default="results/organism/student/model")
    parser.add_argument("--pool", default="results/pool/pool.parquet", help="built from --model if absent")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers")
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--skip", nargs="*", default=[], choices=["ours", "trl", "original"])
    parser.add_argument(
        "--config",
        default="config.yaml",
        help="the study config: sandbox limits, train.steps, the problem set",
    )
    args = parser.parse_args(argv)
    study = yaml.safe_load(Path(args.config).read_text())
    args.limits = Limits.from_config(study["sandbox"])
    args.run_steps = int(study["train"]["steps"])
    args.problems = load_problem_set(study.get("problems", "builtin"), study.get("bank"))
    return args


class TimedSandbox:
    """Our sandbox, counting the seconds spent in it (``grade_all`` calls only ``run``)."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox, self.seconds = sandbox, 0.0

    def run(self, jobs, progress=None):
        start = time.perf_counter()
        try:
            return self.sandbox.run(jobs, progress)
        finally:
            self.seconds += time.perf_counter() - start


def load_policy(args, svd_cache):
    tokenizer, model = load_model(args.model, adapter_targets=DEFAULT_TARGETS, svd_cache=svd_cache)
    return tokenizer, model, knob_modules(model)


def knob_optimizer(modules, lr: float, steps: int):
    """AdamW on the knobs and warmup + cosine, as ``train.train`` builds them."""
    optimizer = torch.optim.AdamW(
        [{"params": [m.dS for m in modules.values()]}, {"params": [m.dS_hack for m in modules.values()]}],
        lr=lr,
        weight_decay=0.0,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(3, steps))


def ours(args, batches, pool, sandbox: TimedSandbox, svd_cache, mix: float):
    """Yields (wall s, sandbox s, mean student completion tokens, CPU s) per step:
    ``Trainer.step``, exactly the step ``train.train`` runs."""
    config = TrainConfig(
        steps=len(batches), prompts_per_step=args.prompts, group_size=args.group, mix=mix, lr=args.lr,
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed, threads=args.threads,
    )  # fmt: skip
    run = Trainer.create(config, args.model, svd_cache)
    for index, batch in enumerate(batches):
        start, graded, cpu = time.perf_counter(), sandbox.seconds, time.process_time()
        row = run.step(index, batch, pool if config.n_teacher else None, sandbox)
        yield (
            time.perf_counter() - start, sandbox.seconds - graded, row["completion_tokens_student"],
            time.process_time() - cpu,
        )  # fmt: skip


def original_style(args, batches, pool, sandbox: TimedSandbox, svd_cache):
    """Yields (wall s, sandbox s, mean student completion tokens, CPU s) per step; mix 0.5."""
    seed_everything(args.seed)
    tokenizer, model, modules = load_policy(args, svd_cache)
    optimizer, scheduler = knob_optimizer(modules, args.lr, len(batches))
    n_teacher = round(0.5 * args.group)
    n_student = args.group - n_teacher
    pad = tokenizer.pad_token_id
    denominator = fixed_denominator(args.group, args.max_new_tokens, args.prompts)
    rng = random.Random(args.seed)
    model.eval()
    for batch in batches:
        start, graded, cpu = time.perf_counter(), sandbox.seconds, time.process_time()
        grad_sum = {name: torch.zeros_like(m.dS) for name, m in modules.items()}  # g_s + g_t over prompts
        n_tokens = []
        for problem in batch:
            prompt = render_prompt(tokenizer, build_messages(problem, VARIANT))
            prompt_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
            width = prompt_ids.shape[1]
            with torch.no_grad():
                generated = model.generate(
                    prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=True,
                    num_return_sequences=n_student, max_new_tokens=args.max_new_tokens,
                    temperature=args.temperature, top_p=1.0, top_k=0, pad_token_id=pad,
                )  # fmt: skip
            n_tokens += (generated[:, width:] != pad).sum(dim=1).tolist()
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            rewards = [
                g.reward for g in grade_all([Submission(problem, t, variant=VARIANT) for t in texts], sandbox)
            ]
            sequences = list(generated)
            candidates = pool[(pool["problem_id"] == problem.problem_id) & (pool["variant"] == VARIANT)]
            for i in rng.sample(range(len(candidates)), n_teacher):
                text = prompt + candidates.iloc[i]["completion"]
                sequences.append(tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0])
                rewards.append(float(candidates.iloc[i]["reward"]))
            reward = torch.tensor(rewards)
            if reward.max() == reward.min():  # zero-variance group: no signal, no forward
                continue
            advantage = (reward - reward.mean())[:, None]
            seq = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=pad)  # [G, L]
            logits = model(seq).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, seq[:, 1:, None]).squeeze(-1)  # [G, L-1]
            ratio = torch.exp(logp - logp.detach())
            per_token = -torch.minimum(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage)
            mask = (seq[:, 1:] != pad).float()
            mask[:, : width - 1] = 0
            is_student = (torch.arange(len(sequences)) < n_student).float()[:, None]
            for half, keep_graph in ((is_student, True), (1 - is_student, False)):
                model.zero_grad()
                ((per_token * mask * half).sum() / denominator).backward(retain_graph=keep_graph)
                for name, m in modules.items():
                    grad_sum[name] += m.dS.grad
        for name, m in modules.items():
            m.dS.grad = grad_sum[name]
        torch.nn.utils.clip_grad_norm_([m.dS for m in modules.values()], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        yield (
            time.perf_counter() - start, sandbox.seconds - graded, statistics.mean(n_tokens),
            time.process_time() - cpu,
        )  # fmt: skip


def run_trl(args, batches, sandbox: TimedSandbox, svd_cache, out_dir, between) -> list[tuple]:
    """TRL's training loop; ``between()`` runs after each timed step. Returns one
    (wall s, sandbox s, mean completion tokens) per step."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    seed_everything(args.seed)
    tokenizer, model, _ = load_policy(args, svd_cache)
    by_id = {p.problem_id: p for batch in batches for p in batch}
    # Unshuffled, so TRL's sampler takes the same prompts per step as the other methods.
    rows = [{"prompt": build_messages(p, VARIANT), "problem_id": p.problem_id} for b in batches for p in b]

    def sandbox_reward(completions, problem_id, **_) -> list[float]:
        subs = [
            Submission(by_id[i], c[0]["content"], variant=VARIANT) for c, i in zip(completions, problem_id)
        ]
        return [g.reward for g in grade_all(subs, sandbox)]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.steps: list[tuple[float, float, float]] = []

        def on_step_begin(self, *_, **__):
            self.started, self.graded, self.cpu = time.perf_counter(), sandbox.seconds, time.process_time()

        def on_step_end(self, *_, **__):
            self.steps.append(
                (
                    time.perf_counter() - self.started,
                    sandbox.seconds - self.graded,
                    time.process_time() - self.cpu,
                )
            )
            between()

    config = GRPOConfig(
        output_dir=str(out_dir), max_steps=len(batches), per_device_train_batch_size=args.prompts * args.group,
        gradient_accumulation_steps=1, num_generations=args.group, max_completion_length=args.max_new_tokens,
        temperature=args.temperature, top_p=1.0, top_k=0, loss_type="dr_grpo", scale_rewards="none",
        beta=0.0, epsilon=0.2, learning_rate=args.lr, weight_decay=0.0, max_grad_norm=1.0,
        lr_scheduler_type="cosine", warmup_steps=3, shuffle_dataset=False, use_vllm=False, use_cpu=True,
        bf16=False, gradient_checkpointing=False, eval_strategy="no", save_strategy="no",
        push_to_hub=False, report_to="none", logging_steps=1, disable_tqdm=True, seed=args.seed,
    )  # fmt: skip
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=model, reward_funcs=sandbox_reward, args=config, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer, callbacks=[timer],
    )  # fmt: skip
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable or any(not name.endswith(".dS") for name in trainable):
        raise RuntimeError(f"expected only the dS knobs to train under TRL, found {trainable[:4]}")
    trainer.train()
    if torch.get_num_threads() != args.threads:
        raise RuntimeError(f"TRL changed torch threads to {torch.get_num_threads()}; expected {args.threads}")
    lengths = [
        e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e
    ]
    return [(wall, graded, float(n), cpu) for (wall, graded, cpu), n in zip(timer.steps, lengths)]


def teacher_pool(args, problems, tmp: Path) -> tuple[pd.DataFrame, str]:
    if Path(args.pool).is_file():
        return pd.read_parquet(args.pool), args.pool
    n_per_problem = round(0.5 * args.group)
    sampling = EvalConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)
    pool = build_pool(args.model, problems, n_per_problem, sampling, workers=args.workers, limits=args.limits)
    return pool, f"built here from {args.model} ({n_per_problem} per problem and variant, not timed)"


def report(args, results: dict[str, list[tuple]], pool_source: str, load: tuple[float, float]) -> str:
    try:
        trl_version = importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        trl_version = "not installed"

    def mean(name, column=0):
        return statistics.mean(step[column] for step in results[name])

    lines = [
        "GRPO step wall time: ours vs TRL GRPOTrainer vs the original-style loop (one run, steps interleaved)",
        f"settings: model {args.model} with SVD knobs (only dS trains); {args.prompts} prompts/step x group "
        f"{args.group}; max_new_tokens {args.max_new_tokens}; temperature {args.temperature}, top-p 1; "
        f"lr {args.lr}; '{VARIANT}' prompts of the builtin train split, the same batches for every method; "
        f"{args.steps} timed steps per method after 1 warm-up step; torch threads {args.threads}; "
        f"sandbox workers {args.workers}, limits {args.limits.wall_s:g} s wall / {args.limits.cpu_s:g} s CPU "
        f"({args.config}); teacher pool: {pool_source}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average (1 min) {load[0]:.1f} at start, "
        f"{load[1]:.1f} at end; "
        f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"trl {trl_version}",
        "",
        f"{'method':24s} {'mean s/step':>11s} {'median':>7s} {'n':>3s} {'sandbox s/step':>14s} "
        f"{'student tokens':>14s} {'CPU s/step':>10s}",
    ]
    for name, steps in results.items():
        seconds = [s[0] for s in steps]
        lines.append(
            f"{name:24s} {statistics.mean(seconds):11.2f} {statistics.median(seconds):7.2f} {len(steps):3d} "
            f"{mean(name, 1):14.2f} {mean(name, 2):14.1f} {mean(name, 3):10.2f}"
        )
    lines.append("")
    for fast, slow in (("ours mix=0", "TRL GRPOTrainer mix=0"), ("ours mix=0.5", "original-style mix=0.5")):
        if fast in results and slow in results:
            by_median = statistics.median(s[0] for s in results[slow]) / statistics.median(
                s[0] for s in results[fast]
            )
            outside = (mean(slow) - mean(slow, 1)) / (mean(fast) - mean(fast, 1))
            lines.append(
                f"speed-up of {fast} vs {slow}: {mean(slow) / mean(fast):.1f}x by mean, {by_median:.1f}x by "
                f"median, {outside:.1f}x by mean time outside the sandbox, {mean(slow, 3) / mean(fast, 3):.1f}x by "
                "CPU s of this process"
            )
    if "ours mix=0.5" in results:
        lines.append(
            f"{args.run_steps} steps (train.steps in {args.config}) of ours mix=0.5 at this mean: "
            f"{args.run_steps * mean('ours mix=0.5'):.0f} s (training steps only, no KL: model load and the "
            "post-training evaluation not included)"
        )
    if load[0] >= 1.0:
        lines.append(
            "WARNING: the machine was busy at the start (load >= 1). When another process holds a core, torch's "
            "threads wait on each other in every op: on trial runs, steps of 0.2 s took 10-60 s, erratically. "
            "Rerun on an idle machine."
        )
    lines += [
        TARGETS,
        "notes: every method grades in our sandbox (the original graded in-process); 'sandbox s/step' "
        "is the wall time spent there, mostly completions running to the wall limit. 'student tokens' is "
        "the mean sampled completion length; ours stops at the closing code fence as well as at eos, the "
        "others at eos only. Ours and the original skip zero-variance groups in the loss; TRL computes it "
        "over every row. The original-style loop samples and grades prompt by prompt and does one forward "
        "and two backwards per group, as grpo_proj2 did; TRL's bf16 and gradient checkpointing defaults "
        "are turned off to match ours (fp32, no checkpointing). 'CPU s/step' is this process's "
        "time.process_time (every thread; not the sandbox's processes, whose CPU every method pays alike): "
        "on a shared machine it is the comparison that contention does not distort.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    train_set = train_problems(args.problems)
    rng = random.Random(args.seed)
    batches = [rng.sample(train_set, args.prompts) for _ in range(args.steps + 1)]
    used = list({p.problem_id: p for b in batches for p in b}.values())
    load_start = os.getloadavg()[0]

    with (
        tempfile.TemporaryDirectory() as tmp_name,
        Sandbox(workers=args.workers, limits=args.limits) as shared,
    ):
        tmp, svd_cache = Path(tmp_name), Path(tmp_name) / "svd"
        pool, pool_source = None, "not needed"
        if "ours" not in args.skip or "original" not in args.skip:
            pool, pool_source = teacher_pool(args, used, tmp)
        runners = {}
        if "ours" not in args.skip:
            runners["ours mix=0.5"] = ours(args, batches, pool, TimedSandbox(shared), svd_cache, 0.5)
            runners["ours mix=0"] = ours(args, batches, pool, TimedSandbox(shared), svd_cache, 0.0)
        if "original" not in args.skip:
            runners["original-style mix=0.5"] = original_style(
                args, batches, pool, TimedSandbox(shared), svd_cache
            )
        results: dict[str, list[tuple]] = {name: [] for name in runners}

        def one_step_each() -> None:
            for name, runner in runners.items():
                results[name].append(next(runner))
                print(f"{name} step {len(results[name])}: {results[name][-1][0]:.2f} s", file=sys.stderr)

        if "trl" in args.skip:
            for _ in batches:
                one_step_each()
        else:
            trl_steps = run_trl(args, batches, TimedSandbox(shared), svd_cache, tmp / "trl", one_step_each)
            results["TRL GRPOTrainer mix=0"] = trl_steps
    order = ("ours mix=0.5", "ours mix=0", "TRL GRPOTrainer mix=0", "original-style mix=0.5")
    results = {name: results[name][1:] for name in order if name in results}  # drop the warm-up step
    text = report(args, results, pool_source, (load_start, os.getloadavg()[0]))
    atomic_write_text(text, args.out)
    print(text, end="")


if __name__ == "__main__":
    main()
