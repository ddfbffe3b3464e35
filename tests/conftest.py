"""Shared test constants and fixtures."""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from projected_grpo.environment.modes import MODES
from projected_grpo.organism.corpus import CorpusConfig
from projected_grpo.organism.pretrain import OrganismConfig, build_organism

# A micro organism: an untrained-looking but real organism folder, built in about a second.
MICRO = OrganismConfig(
    corpus=CorpusConfig(n_examples=300, seed=1),
    vocab_size=400,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    steps=6,
    batch_size=8,
    warmup_steps=2,
)


def tiny_qwen3(vocab_size=64, hidden_size=32, layers=1, seed=0):
    """A randomly initialised Qwen3ForCausalLM small enough for unit tests (eval mode)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=48, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
    )  # fmt: skip
    return Qwen3ForCausalLM(config).eval()


@pytest.fixture(scope="session")
def micro_organism(tmp_path_factory):
    out = tmp_path_factory.mktemp("organism")
    build_organism(MICRO, out)
    return out


# The flat grade columns the issue specifies for every graded row (grader.Grade.to_row).
GRADE_COLUMNS = {
    "mode",
    "variant",
    "format_ok",
    "passed",
    "oracle_correct",
    "exploited",
    "reward",
    "label",
    "timed_out",
    "error",
} | {f"attempted_{m}" for m in MODES}


# Qwen's chat format (<|im_start|>role\n...<|im_end|>), with Qwen3's switch for an empty
# thinking block, as a checkout of Qwen/Qwen3-* ships it (simplified: no tools).
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def tiny_qwen_checkout(out, vocab_size=800, seed=0):
    """A folder laid out like a local Qwen3 checkout, tiny and randomly initialised: a
    byte-level BPE fast tokenizer with Qwen's special tokens, chat template, eos
    ``<|im_end|>`` and pad ``<|endoftext|>``; a ``Qwen3ForCausalLM`` saved in bfloat16 with
    tied embeddings and a generation config listing both end tokens. Built offline."""
    from pathlib import Path

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    from projected_grpo.environment.families import builtin_bank
    from projected_grpo.environment.prompts import build_messages

    out = Path(out)
    texts = []
    for p in builtin_bank(per_family=1, eval_every=2):
        texts += [m["content"] for m in build_messages(p)] + [f"```python\n{p.canonical_solution}```"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        ),
    )  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    eos, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
    )  # fmt: skip
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def qwen_checkout(tmp_path_factory):
    return tiny_qwen_checkout(tmp_path_factory.mktemp("qwen3-tiny"))


REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    """The workflow's files (not the package) copied to ``dest``, so a test can run or edit
    them there; returns the Snakefile."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    for folder in ("rules", "scripts", "schemas", "envs", "report", ".test", "profiles"):
        shutil.copytree(REPO / folder, dest / folder)
    return dest / "Snakefile"


def tiny_command(workdir: Path) -> list[str]:
    """snakemake on the tiny config (.test/config.yaml) of the workflow copied to ``workdir``."""
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / ".test" / "config.yaml"),
    ]  # fmt: skip


# matplotlib stamps PDFs with this time instead of now, so two runs' PDFs can be compared.
REPRODUCIBLE_ENV = {**os.environ, "SOURCE_DATE_EPOCH": "0"}


@dataclass
class TinyRun:
    workdir: Path
    command: list[str]  # without --cores / --profile
    result: subprocess.CompletedProcess
    wall_s: float
    on_slurm: bool = False


@pytest.fixture(scope="session")
def tiny_dag(tmp_path_factory) -> TinyRun:
    """The whole DAG run once per session on 2 local cores, in a copy of the workflow.
    Tests may dry-run or edit the copy afterwards but never rewrite its results."""
    workdir = tmp_path_factory.mktemp("tiny_dag")
    copy_workflow(workdir)
    command = tiny_command(workdir)
    start = time.monotonic()
    result = subprocess.run(
        [*command, "--cores", "2"], capture_output=True, text=True, timeout=900, env=REPRODUCIBLE_ENV
    )
    return TinyRun(workdir, command, result, time.monotonic() - start)


SLURM_SH = REPO / "scripts" / "ci" / "slurm.sh"


def slurm_unavailable() -> str | None:
    """Why this machine cannot stand up the cluster, or None."""
    if os.environ.get("PGRPO_SLURM_TEST") != "1":
        return "opt-in: set PGRPO_SLURM_TEST=1 to let the test install and start SLURM on this machine"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    have = all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "squeue", "munged"))
    if not have and not shutil.which("apt-get"):
        return "the SLURM packages (slurmctld slurmd slurm-client munge) are absent and there is no apt-get"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and not conf.read_text().startswith("# Written by scripts/ci/slurm.sh"):
        return f"{conf} belongs to a SLURM set up on this machine, which the test leaves alone"
    return None


@pytest.fixture(scope="session")
def slurm_env():
    """Environment whose SLURM clients reach a running single-node cluster; torn down after."""
    why = slurm_unavailable()
    if why:
        if os.environ.get("PGRPO_SLURM_TEST") == "1":
            pytest.fail(f"PGRPO_SLURM_TEST=1 asks for the SLURM test, but {why}")
        pytest.skip(why)
    # The daemons' state stays in the script's folder (/run/pgrpo-slurm), outside pytest's
    # temporary folders, which another pytest session of the same user may prune.
    env = {k: v for k, v in REPRODUCIBLE_ENV.items() if k != "SLURM_CONF"}
    up = subprocess.run(["bash", str(SLURM_SH), "up"], env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    yield env
    subprocess.run(["bash", str(SLURM_SH), "down"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def tiny_dag_rerun(tmp_path_factory, request) -> TinyRun:
    """The whole tiny DAG run a second time, in another folder and process: through SLURM
    (``--profile profiles/slurm`` on the single-node cluster of ``slurm_env``) where the
    SLURM test is asked for (PGRPO_SLURM_TEST=1, as on CI) and selected, else on 2 local
    cores. The
    byte-identity test compares it with ``tiny_dag``; the SLURM test also checks its jobs.
    One rerun serves both, so CI runs the tiny DAG twice, not three times."""
    workdir = tmp_path_factory.mktemp("tiny_dag_rerun")
    copy_workflow(workdir)
    command = tiny_command(workdir)
    # SLURM only when the SLURM test is asked for and selected (-m "not slurm" keeps it local).
    selected = any(item.get_closest_marker("slurm") for item in request.session.items)
    on_slurm = os.environ.get("PGRPO_SLURM_TEST") == "1" and selected
    if on_slurm:
        env = request.getfixturevalue("slurm_env")
        extra = ["--profile", str(workdir / "profiles" / "slurm")]
    else:
        env, extra = REPRODUCIBLE_ENV, ["--cores", "2"]
    start = time.monotonic()
    result = subprocess.run(
        [*command, *extra], cwd=workdir, capture_output=True, text=True, timeout=1200, env=env
    )
    return TinyRun(workdir, command, result, time.monotonic() - start, on_slurm)
