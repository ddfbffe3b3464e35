"""Loading a policy: a local Hugging Face causal-LM folder (never a hub download), checked
before any work, on the device and in the dtype the config names, optionally with the SVD
knobs attached (``adapter.attach_knobs``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "bfloat16", "float16")
# Files that make a folder a tokenizer (fast tokenizer, sentencepiece, or BPE vocab + merges).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class ModelFolderError(ValueError):
    """A model path that is not a local Hugging Face causal-LM folder with its tokenizer."""


def check_model_folder(model_path: str | Path, key: str = "model") -> None:
    """Raise ``ModelFolderError`` naming ``key`` (the config key or option that gave the
    path) unless ``model_path`` is a folder with a readable ``config.json``, weight files
    and a tokenizer. Reads no weights: cheap enough to run before any work."""
    path = Path(model_path)
    where = f"{key}: {model_path}"
    if not path.is_dir():
        raise ModelFolderError(
            f"{where}: not a model folder (no such folder; expected a local HF model folder)"
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise ModelFolderError(
            f"{where}: not a model folder (no config.json; expected what save_pretrained writes)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{where}: config.json is not readable JSON ({exc})") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelFolderError(f"{where}: config.json has no 'model_type' (not a transformers model config)")
    if not any(p.suffix in (".safetensors", ".bin") for p in path.iterdir()):
        raise ModelFolderError(f"{where}: no weight files (*.safetensors / *.bin) beside config.json")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelFolderError(
            f"{where}: no tokenizer (expected one of {', '.join(TOKENIZER_FILES)}; "
            "save the tokenizer into the model folder with tokenizer.save_pretrained)"
        )


def resolve_device(device: str) -> str:
    """``cpu`` / ``cuda``, or for ``auto`` whichever is available; refuses ``cuda`` without one."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"compute.device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("compute.device: 'cuda' requested but torch sees no CUDA device; use cpu or auto")
    return device


def load_model(
    model_path: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    adapter_targets: Sequence[str] | None = None,
    svd_cache: str | Path | None = None,
):
    """(tokenizer, model) of a local HF causal-LM folder, eval mode, no network: weights
    in ``dtype`` (one of ``DTYPES``) on ``device`` (one of ``DEVICES``); with
    ``adapter_targets``, the SVD knobs attached to the Linears they name
    (``adapter.attach_knobs``, SVDs cached in ``svd_cache``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .adapter import attach_knobs  # imports torch: not needed for the checks above

    if dtype not in DTYPES:
        raise ValueError(f"compute.dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    check_model_folder(model_path)
    target = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(target).eval()
    if adapter_targets is not None:
        attach_knobs(model, adapter_targets, svd_cache)
    return tokenizer, model
