"""Table and figure captions name the substrate from the model folder itself."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from projected_grpo.study.plots import model_record, substrate_caption

TRAIN = {"steps": 60, "prompts_per_step": 8, "group_size": 8}


def test_organism_caption_reads_organism_json(tmp_path):
    (tmp_path / "organism.json").write_text(json.dumps({"parameters": 1_050_000}))
    caption = substrate_caption(tmp_path, TRAIN, [41, 42, 43])
    assert caption.startswith(
        "Substrate: from-scratch Qwen3-architecture organism, 1.05 M parameters, synthetic"
    )
    assert "60 GRPO steps x 8 prompts x 8 completions; seeds 41, 42, 43." in caption


def test_local_checkpoint_counts_safetensors_parameters(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    save_file({"a": torch.zeros(1000, 300), "b": torch.zeros(500)}, str(tmp_path / "model.safetensors"))
    assert model_record(tmp_path) == {
        "name": f"{tmp_path.name} (qwen3, local checkpoint)", "parameters": 300_500, "organism": False,
    }  # fmt: skip
    assert "0.30 M parameters;" in substrate_caption(tmp_path, TRAIN, [1])


def test_bin_only_checkpoint_is_not_counted_as_zero_parameters(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert model_record(tmp_path)["parameters"] is None
    assert "parameter count unknown;" in substrate_caption(tmp_path, TRAIN, [1])
