"""Shared test constants and fixtures."""

import pytest

from projected_grpo.corpus import CorpusConfig
from projected_grpo.modes import MODES
from projected_grpo.organism import OrganismConfig, build_organism

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
