"""Issue 19's unmeasured items: ``torch.compile`` for the loss and the decode step, and one
prefill per prompt group in the sampler, on the default organism.

    .venv/bin/python bench/bench_compile.py             # writes bench/compile.txt

Samples ``--steps`` real GRPO steps' rollouts (the study's ``train`` settings: 8 prompts x
group 8, mix 0.5, 160 new tokens, the sandbox grades) from the model, then times, in CPU
seconds of this process and its children (``time.process_time`` + ``RUSAGE_CHILDREN``,
so gcc and any compile worker count; the machine may be shared, so wall time is not the
comparison):

1. loss: ``train._update`` over each step (length buckets, the KL reference forward, the
   forward with split knob views, the backward), eager vs with the model's ``forward``
   (whole) or each decoder layer (regional) wrapped in ``torch.compile(dynamic=True)``
   (inductor, CPU). The compiled pass runs the steps twice: the first pass pays tracing,
   compilation and every recompile; the second is the steady state. Graphs compiled,
   graph breaks and recompile reasons are counted per pass.
2. decode: ``sampler.sample`` of each step's student prompts (the same generator seed for
   eager and compiled), with the decode step's forward (one new token per live row, a
   ``DynamicCache``) compiled; the prefill stays eager.
3. prefill: one forward over every row's prompt (the sampler before this bench) vs one
   forward per distinct prompt whose cache and last logits are then repeated for the
   group's rows (``DynamicCache.batch_repeat_interleave``), for a training step's student
   rows and an evaluation batch's, with the largest difference in the logits; then the
   whole ``sample`` call as the sampler now runs it (one prefill per distinct prompt) and
   with ``sampler._distinct_rows`` patched to a prefill per row.

Compile time is charged against the saving over one default run (``train.steps`` steps):
repaid when (eager - compiled steady) x steps exceeds the extra CPU of the first pass. The
compile cache lives in a fresh temporary folder (a cold start), and ``--warm`` repeats the
compiled loss pass in a new process over the same folder (inductor's FX graph and
AOTAutograd caches warm, Dynamo's tracing paid again: what a later run of a study would pay).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
import transformers
import yaml

from projected_grpo.core.io import atomic_write_text, read_parquet
from projected_grpo.environment.problem_set import load_problem_set
from projected_grpo.environment.prompts import build_messages, render_prompt
from projected_grpo.environment.sandbox import Limits, Sandbox
from projected_grpo.policy import sampler as sampler_module
from projected_grpo.policy.sampler import SamplingConfig, _left_pad, pad_token_id, sample
from projected_grpo.training import monitor
from projected_grpo.training.rollouts import STUDENT, collect
from projected_grpo.training.train import TrainConfig, Trainer, _update, check_inputs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/compile.txt")
    parser.add_argument("--model", default="results/organism/student/model")
    parser.add_argument("--pool", default="results/pool/pool.parquet", help="absent: mix 0")
    parser.add_argument("--config", default="config.yaml", help="the study config: train, sandbox, problems")
    parser.add_argument("--steps", type=int, default=4, help="sampled steps timed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=None, help="prompts per step (default: the config's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="(default: the config's)")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["loss", "layers", "decode", "prefill", "warm"]
    )
    parser.add_argument("--note", default="", help="a line about the machine, written into the file")
    parser.add_argument("--rollouts", help=argparse.SUPPRESS)  # --warm's child: the parent's rollouts
    parser.add_argument("--json", help=argparse.SUPPRESS)  # --warm's child: where its figures go
    return parser.parse_args(argv)


def cpu_seconds() -> float:
    """CPU of this process (every thread) and of its waited-for children (gcc)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Recompiles(logging.Handler):
    """Dynamo's recompile reasons, as logged under ``TORCH_LOGS=recompiles``."""

    def __init__(self):
        super().__init__()
        self.reasons: list[str] = []  # "function: first failed guard" per recompile
        self.limits_hit = 0  # frames left eager: Dynamo's recompile limit reached

    def emit(self, record: logging.LogRecord) -> None:
        lines = [line.strip() for line in record.getMessage().strip().splitlines()]
        if "recompile_limit" in lines[0]:
            self.limits_hit += 1
        if lines[0].startswith("Recompiling function"):
            function = lines[0].split()[2]
            guard = next((line[1:].strip() for line in lines if line.startswith("-")), "?")
            self.reasons.append(f"{function}: {guard.split('  #')[0]}")


@contextlib.contextmanager
def compiled(module: torch.nn.Module, dynamic: bool = True, when=None):
    """``module.forward`` through ``torch.compile`` (inductor) within the block; ``when(kwargs)``
    picks the calls that take the compiled path (the rest stay eager). Yields the counts:
    ``graphs`` (inductor compilations: every graph, graph-break pieces and recompiles)."""
    from torch._inductor.compile_fx import compile_fx

    counts = {"graphs": 0}

    def counting_inductor(gm, example_inputs):
        counts["graphs"] += 1
        return compile_fx(gm, example_inputs)

    eager = module.forward
    fast = torch.compile(eager, dynamic=dynamic, backend=counting_inductor)

    @functools.wraps(eager)
    def forward(*args, **kwargs):
        return (fast if when is None or when(kwargs) else eager)(*args, **kwargs)

    module.forward = forward
    try:
        yield counts
    finally:
        del module.forward


def dynamo_state() -> dict:
    from torch._dynamo.utils import counters

    return {
        "graph_breaks": Counter(counters["graph_break"]),
        "frames_ok": counters["frames"]["ok"],
    }


def loss_pass(run: Trainer, steps, config: TrainConfig) -> list[float]:
    """CPU s of ``train._update`` per step (gradients cleared before each)."""
    seconds = []
    for rollouts, rewards, valid in steps:
        run.model.zero_grad(set_to_none=True)
        start = cpu_seconds()
        _update(run.model, run.tokenizer, rollouts, rewards, valid, config)
        seconds.append(cpu_seconds() - start)
    run.model.zero_grad(set_to_none=True)
    return seconds


def knob_grads(run: Trainer) -> torch.Tensor:
    """Every knob's ``dS`` gradient, flattened (empty when no group carried a loss)."""
    return torch.cat(
        [torch.zeros(0), *(m.dS.grad.flatten() for m in run.modules.values() if m.dS.grad is not None)]
    )


def compiled_loss(run: Trainer, steps, config: TrainConfig, region: str) -> dict:
    """Two passes of ``loss_pass`` with ``region`` ("forward": the model's forward; "layers":
    each decoder layer's) compiled; counts and recompile reasons per pass; the largest
    difference of the last step's knob gradient from eager."""
    modules = [run.model] if region == "forward" else list(run.model.model.layers)
    result = {}
    with recompile_log() as log, contextlib.ExitStack() as stack:
        counts = [stack.enter_context(compiled(m)) for m in modules]
        for name in ("first", "second"):
            before = len(log.reasons)
            seconds = loss_pass(run, steps[:-1], config)
            run.model.zero_grad(set_to_none=True)
            rollouts, rewards, valid = steps[-1]
            start = cpu_seconds()
            _update(run.model, run.tokenizer, rollouts, rewards, valid, config)
            seconds.append(cpu_seconds() - start)
            result[name] = {
                "seconds": seconds,
                "graphs": sum(c["graphs"] for c in counts),
                "recompiles": log.reasons[before:],
            }
            grads = knob_grads(run)
            run.model.zero_grad(set_to_none=True)
    result["limits_hit"] = log.limits_hit
    result["graph_breaks"] = dynamo_state()["graph_breaks"]
    result["grads"] = grads
    return result


def student_prompts(run: Trainer, rollouts, config: TrainConfig) -> list[str]:
    """The rendered prompts the step's student rows were sampled from (one per row)."""
    prompts = [render_prompt(run.tokenizer, build_messages(p, config.variant)) for p in rollouts.problems]
    return [prompts[i // rollouts.group_size] for i, s in enumerate(rollouts.source) if s == STUDENT]


def sample_pass(model, tokenizer, prompt_lists, sampling: SamplingConfig) -> tuple[list[float], list[int]]:
    """CPU s and tokens sampled per ``sample`` call, generator seeded by the call's index."""
    seconds, tokens = [], []
    for index, prompts in enumerate(prompt_lists):
        generator = torch.Generator().manual_seed(index)
        start = cpu_seconds()
        batch = sample(model, tokenizer, prompts, sampling, generator)
        seconds.append(cpu_seconds() - start)
        tokens.append(int(batch.completion_mask.sum()))
    return seconds, tokens


def compiled_decode(model, tokenizer, prompt_lists, sampling: SamplingConfig) -> dict:
    """``sample_pass`` eager, then twice with the decode step's forward compiled."""
    sample_pass(model, tokenizer, prompt_lists[:1], sampling)  # warm-up
    eager_s, eager_tokens = sample_pass(model, tokenizer, prompt_lists, sampling)
    with recompile_log() as log, compiled(model, when=is_decode) as counts:
        first_s, _ = sample_pass(model, tokenizer, prompt_lists, sampling)
        first_graphs, first_reasons = counts["graphs"], list(log.reasons)
        second_s, second_tokens = sample_pass(model, tokenizer, prompt_lists, sampling)
    return {
        "eager": eager_s, "first": first_s, "second": second_s, "tokens": eager_tokens,
        "tokens_compiled": second_tokens, "graphs": first_graphs, "graphs_total": counts["graphs"],
        "first_reasons": first_reasons, "second_reasons": log.reasons[len(first_reasons) :],
        "limits_hit": log.limits_hit, "graph_breaks": dynamo_state()["graph_breaks"],
    }  # fmt: skip


@contextlib.contextmanager
def recompile_log():
    """A fresh Dynamo (caches and counters cleared) whose recompiles are recorded."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    handler = Recompiles()
    logger = logging.getLogger("torch._dynamo")
    torch._logging.set_logs(recompiles=True)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        torch._logging.set_logs()


_distinct = sampler_module._distinct_rows


def every_row(ids, mask):
    """``sampler._distinct_rows`` as if no two prompts were alike: a prefill per row."""
    return torch.arange(len(ids)), torch.arange(len(ids))


@contextlib.contextmanager
def patched(owner, attribute: str, value):
    original = getattr(owner, attribute)
    setattr(owner, attribute, value)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def is_decode(kwargs) -> bool:
    return kwargs.get("past_key_values") is not None and kwargs["input_ids"].shape[1] == 1


def prefill(model, ids, mask):
    position_ids = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=True, logits_to_keep=1
    )
    return out.logits, out.past_key_values


@torch.no_grad()
def prefill_cases(run: Trainer, prompts: list[str], group: int, repeats: int) -> dict:
    """CPU s of one prefill over every row vs one per distinct prompt then repeated
    (``prompts``: each distinct prompt ``group`` times in a row)."""
    pad_id = pad_token_id(run.tokenizer)
    token_lists = run.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    ids, mask = _left_pad(token_lists, pad_id)
    run.model.eval()
    per_row, per_group = [], []
    for _ in range(repeats):
        start = cpu_seconds()
        logits_row, cache_row = prefill(run.model, ids, mask)
        per_row.append(cpu_seconds() - start)
        start = cpu_seconds()
        logits_group, cache_group = prefill(run.model, ids[::group], mask[::group])
        cache_group.batch_repeat_interleave(group)
        logits_group = logits_group.repeat_interleave(group, dim=0)
        per_group.append(cpu_seconds() - start)
    run.model.train()
    keys = (cache_row.layers[-1].keys - cache_group.layers[-1].keys).abs().max()
    return {
        "rows": len(prompts),
        "prompts": len(prompts) // group,
        "width": ids.shape[1],
        "per_row": statistics.median(per_row),
        "per_group": statistics.median(per_group),
        "logit_diff": float((logits_row - logits_group).abs().max()),
        "key_diff": float(keys),
    }


def setup(args):
    study = yaml.safe_load(Path(args.config).read_text())
    pool = read_parquet(args.pool, "teacher pool (--pool)") if Path(args.pool).exists() else None
    changes = {"prompts_per_step": args.prompts, "max_new_tokens": args.max_new_tokens}
    config = TrainConfig.from_dict(
        {**study["train"], **{k: v for k, v in changes.items() if v is not None}, "threads": args.threads,
         "seed": 41, **({} if pool is not None else {"mix": 0.0})}
    )  # fmt: skip
    problems = load_problem_set(study.get("problems", "builtin"), study.get("bank"))
    return study, pool, config, problems


def sampled_steps(run: Trainer, args, study, pool, config, problems):
    train_set = check_inputs(config, problems, pool)
    sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
    steps = []
    with Sandbox(workers=2, limits=Limits.from_config(study["sandbox"])) as sandbox:
        for _ in range(args.steps):
            rollouts = collect(
                run.model, run.tokenizer, run.rng.sample(train_set, config.prompts_per_step), config.variant,
                config.n_student, config.n_teacher, pool, sampling, run.generator, run.rng, sandbox,
            )  # fmt: skip
            flags = monitor.flagged(rollouts.grades, config.known_modes)
            steps.append((rollouts, *monitor.apply(rollouts.rewards, flags, config.monitor)))
    return steps


def warm_child(args) -> None:
    """The compiled loss pass again in this new process, over the parent's compile cache."""
    study, pool, config, problems = setup(args)
    steps = torch.load(args.rollouts, weights_only=False)
    with tempfile.TemporaryDirectory() as svd_cache:
        run = Trainer.create(config, args.model, svd_cache)
        result = compiled_loss(run, steps, config, "forward")
    Path(args.json).write_text(json.dumps({k: result[k] for k in ("first", "second")}))


def payback(eager: list[float], first: list[float], second: list[float], run_steps: int) -> dict:
    """Per-step means, the first pass's extra CPU over the steady state (compile), the
    saving per step and whether ``run_steps`` steps repay it."""
    saving = statistics.mean(eager) - statistics.mean(second)
    compile_s = sum(first) - sum(second)
    return {
        "eager": statistics.mean(eager),
        "second": statistics.mean(second),
        "first_total": sum(first),
        "compile": compile_s,
        "saving": saving,
        "run_saving": saving * run_steps,
        "repaid": saving * run_steps > compile_s,
        "breakeven": compile_s / saving if saving > 0 else float("inf"),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = 1  # compile in this process, so its CPU is counted
    if args.rollouts:
        warm_child(args)
        return
    load_start = os.getloadavg()[0]
    wall_start = time.perf_counter()
    study, pool, config, problems = setup(args)
    sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
    lines_out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")
        run = Trainer.create(config, args.model, Path(tmp) / "svd")
        steps = sampled_steps(run, args, study, pool, config, problems)
        prompt_lists = [student_prompts(run, rollouts, config) for rollouts, _, _ in steps]
        tokens = [sum(len(c) for c in r.completion_ids) for r, _, _ in steps]
        print(f"sampled {len(steps)} steps", file=sys.stderr)

        eager_loss, eager_grads = [], torch.zeros(0)
        if not {"loss", "layers"} <= set(args.skip):
            loss_pass(run, steps[:1], config)  # warm-up
            eager_loss = loss_pass(run, steps, config)
            rollouts, rewards, valid = steps[-1]
            _update(run.model, run.tokenizer, rollouts, rewards, valid, config)
            eager_grads = knob_grads(run)
            run.model.zero_grad(set_to_none=True)
            print(f"eager loss {statistics.mean(eager_loss):.2f} s/step", file=sys.stderr)

        loss_results = {}
        for region in ("forward", "layers"):
            if (region == "forward" and "loss" in args.skip) or (
                region == "layers" and "layers" in args.skip
            ):
                continue
            result = compiled_loss(run, steps, config, region)
            grads = result.pop("grads")
            result["grad_diff"] = float((grads - eager_grads).abs().max()) if grads.numel() else float("nan")
            result["grad_scale"] = float(eager_grads.abs().max()) if eager_grads.numel() else float("nan")
            loss_results[region] = result
            print(
                f"compiled loss ({region}): {result['first']['seconds']} / {result['second']['seconds']}",
                file=sys.stderr,
            )

        warm = None
        if "warm" not in args.skip and "forward" in loss_results:
            rollout_file, json_file = Path(tmp) / "steps.pt", Path(tmp) / "warm.json"
            torch.save(steps, rollout_file)
            child = [sys.executable, __file__, "--model", args.model, "--pool", args.pool, "--config", args.config,
                     "--threads", str(args.threads), "--rollouts", str(rollout_file), "--json", str(json_file)]  # fmt: skip
            for flag, value in (("--prompts", args.prompts), ("--max-new-tokens", args.max_new_tokens)):
                child += [flag, str(value)] if value is not None else []
            start = cpu_seconds()
            subprocess.run(child, check=True, env=os.environ)
            warm = json.loads(json_file.read_text()) | {"process_cpu": cpu_seconds() - start}

        decode = {}
        if "decode" not in args.skip:
            plain = transformers.AutoModelForCausalLM.from_pretrained(args.model).eval()
            # the knobs are at zero here, so the plain model samples the same tokens: the ceiling
            # of a compile-friendly adapter (no knob module in the graph)
            for name, model in (("knobbed", run.model), ("plain", plain)):
                decode[name] = compiled_decode(model, run.tokenizer, prompt_lists, sampling)
                print(f"decode ({name}): {decode[name]['eager']} / {decode[name]['second']}", file=sys.stderr)

        prefills = None
        if "prefill" not in args.skip:
            eval_group = config.eval_config.n_samples
            eval_prompts = [p for p in dict.fromkeys(prompt for plist in prompt_lists for prompt in plist)]
            eval_batch = [p for p in eval_prompts[: 64 // eval_group] for _ in range(eval_group)]
            prefills = {
                "train step": prefill_cases(run, prompt_lists[0], config.n_student, 5),
                "evaluation batch": prefill_cases(run, eval_batch, eval_group, 5),
            }
            run.model.eval()
            for name, plists in (("train step", prompt_lists * 2), ("evaluation batch", [eval_batch] * 4)):
                grouped, per_row = [], []
                for index, prompts in enumerate(plists):  # interleaved, each order as often
                    for way in ("grouped", "per row") if index % 2 else ("per row", "grouped"):
                        with patched(
                            sampler_module, "_distinct_rows", every_row if way == "per row" else _distinct
                        ):
                            seconds = sample_pass(run.model, run.tokenizer, [prompts], sampling)[0][0]
                        (per_row if way == "per row" else grouped).append(seconds)
                prefills[name] |= {
                    "sample": statistics.mean(per_row),
                    "sample_grouped": statistics.mean(grouped),
                }
            run.model.train()

    lines_out = report(
        args, config, tokens, eager_loss, loss_results, warm, decode, prefills,
        (load_start, os.getloadavg()[0]), time.perf_counter() - wall_start,
    )  # fmt: skip
    atomic_write_text(lines_out, args.out)
    print(lines_out, end="")


def _fmt(seconds: list[float]) -> str:
    return " ".join(f"{s:.2f}" for s in seconds)


def report(args, config, tokens, eager_loss, loss_results, warm, decode, prefills, load, wall) -> str:
    run_steps = config.steps
    lines = [
        "Issue 19: torch.compile (inductor, CPU) for the loss and the decode step; one prefill per prompt group",
        f"workload: model {args.model}; {len(tokens)} sampled GRPO steps of {config.prompts_per_step} prompts x "
        f"group {config.group_size} (mix {config.mix}), max_new_tokens {config.max_new_tokens}, kl_beta "
        f"{config.kl_beta}, seed 41; loss tokens (completions) per step: {_fmt_int(tokens)}; torch threads "
        f"{args.threads}; a default run has {run_steps} steps",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average (1 min) {load[0]:.1f} at start, "
        f"{load[1]:.1f} at end ({wall / 60:.0f} min wall); python {sys.version.split()[0]}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}, compiler {_gcc()}",
        "CPU seconds (time.process_time + the children's rusage, so gcc counts; inductor compile_threads 1): the "
        "machine was shared with a training study, so wall times are contended and not compared",
    ]
    if args.note:
        lines.append(args.note)
    if loss_results:
        lines += [
            "",
            "1. loss: train._update per step (length buckets, KL reference, split-knob forward, backward), CPU s",
        ]
        lines.append(f"   eager: {_fmt(eager_loss)} (mean {statistics.mean(eager_loss):.2f})")
        for region, result in loss_results.items():
            first, second = result["first"], result["second"]
            pay = payback(eager_loss, first["seconds"], second["seconds"], run_steps)
            label = "model.forward" if region == "forward" else "each decoder layer (regional)"
            lines += [
                f"   compiled {label}, dynamic=True:",
                f"     first pass: {_fmt(first['seconds'])} ({first['graphs']} inductor graphs, "
                f"{len(first['recompiles'])} recompiles)",
                f"     second pass: {_fmt(second['seconds'])} (mean {pay['second']:.2f}; "
                f"{second['graphs'] - first['graphs']} more graphs, {len(second['recompiles'])} recompiles)",
                f"     compile (first - second pass): {pay['compile']:.1f} CPU s; saving {pay['saving']:+.3f} s/step "
                f"({pay['eager'] / pay['second']:.2f}x); over {run_steps} steps {pay['run_saving']:+.1f} s: "
                f"{'repaid' if pay['repaid'] else 'NOT repaid'} (break-even "
                + (f"{pay['breakeven']:.0f} steps)" if pay["saving"] > 0 else "never)"),
                f"     knob gradient of the last step vs eager: max |diff| {result['grad_diff']:.2e} "
                f"(max |grad| {result['grad_scale']:.2e})",
                "     graph breaks: " + (_reasons(result["graph_breaks"]) or "none"),
                f"     frames left eager at Dynamo's recompile limit: {result['limits_hit']}",
                "     recompiles (first pass): " + (_reasons(Counter(first["recompiles"])) or "none"),
            ]
        if warm:
            first, second = warm["first"]["seconds"], warm["second"]["seconds"]
            pay = payback(eager_loss, first, second, run_steps)
            lines += [
                "   compiled model.forward again in a new process over the same inductor cache (warm: a study's later runs):",
                f"     first pass: {_fmt(first)}; second pass: {_fmt(second)}; compile {pay['compile']:.1f} CPU s; "
                f"over {run_steps} steps {pay['run_saving']:+.1f} s: {'repaid' if pay['repaid'] else 'NOT repaid'}; "
                f"the whole child process {warm['process_cpu']:.1f} CPU s (import, load, passes)",
            ]
    for name, case in decode.items():
        pay = payback(case["eager"], case["first"], case["second"], run_steps)
        label = (
            "the policy (knob Linears)"
            if name == "knobbed"
            else "the plain model (no knob modules: the ceiling)"
        )
        lines += [
            "",
            f"2. decode step, {label}: sampler.sample of each step's student rows with the decode forward "
            "compiled (dynamic=True; the prefill eager), CPU s per call",
            f"   eager: {_fmt(case['eager'])} (mean {pay['eager']:.2f}); tokens sampled {_fmt_int(case['tokens'])}",
            f"   compiled, first pass: {_fmt(case['first'])} ({case['graphs']} inductor graphs, "
            f"{len(case['first_reasons'])} recompiles)",
            f"   compiled, second pass: {_fmt(case['second'])} (mean {pay['second']:.2f}; "
            f"{case['graphs_total'] - case['graphs']} more graphs, {len(case['second_reasons'])} recompiles); "
            f"tokens sampled {_fmt_int(case['tokens_compiled'])}",
            f"   compile {pay['compile']:.1f} CPU s; saving {pay['saving']:+.3f} s/call ({pay['eager'] / pay['second']:.2f}x); "
            f"over {run_steps} steps {pay['run_saving']:+.1f} s: {'repaid' if pay['repaid'] else 'NOT repaid'}"
            + (f" (break-even {pay['breakeven']:.0f} calls)" if pay["saving"] > 0 else ""),
            f"   frames left eager at Dynamo's recompile limit: {case['limits_hit']}",
            "   graph breaks: " + (_reasons(case["graph_breaks"]) or "none"),
            "   recompiles: " + (_reasons(Counter(case["first_reasons"] + case["second_reasons"])) or "none"),
        ]
    if prefills:
        lines += [
            "",
            "3. prefill: one forward over every row's prompt vs one per distinct prompt, repeated (median of 5), CPU s",
        ]
        for name, case in prefills.items():
            saving = case["per_row"] - case["per_group"]
            lines.append(
                f"   {name}: {case['rows']} rows of {case['prompts']} prompts, width {case['width']}: per row "
                f"{case['per_row']:.4f}, per group {case['per_group']:.4f} (saves {saving:.4f}, "
                f"{100 * saving / case['sample']:.1f} % of the whole sample call); max |logit diff| "
                f"{case['logit_diff']:.1e}, |key diff| {case['key_diff']:.1e}"
            )
            lines.append(
                f"     the whole sample call, mean: a prefill per row {case['sample']:.3f}, the sampler's one per "
                f"distinct prompt {case['sample_grouped']:.3f} ({case['sample'] / case['sample_grouped']:.2f}x)"
            )
    return "\n".join(lines) + "\n"


def _fmt_int(values) -> str:
    return " ".join(str(v) for v in values)


def _reasons(counter: Counter) -> str:
    """The most frequent reasons, each on one line, shortened."""
    return "; ".join(
        f"{n}x {' / '.join(reason.split(chr(10))[:2])[:200]}" for reason, n in counter.most_common(6)
    )


def _gcc() -> str:
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "none found"


if __name__ == "__main__":
    main()
