"""Tiny random gte checkpoints in the ORIGINAL Alibaba-NLP layout, and an independent reference forward.

The reference is written from the formulas (fixed-NTK RoPE, post-LayerNorm blocks, GLU with the first
half of up_gate_proj as "up" and the second as "gate", exact GELU) with plain torch ops in float64, so it
shares no code with transformers' GteModel that ragkit runs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def original_config(
    *, hidden: int = 64, layers: int = 2, heads: int = 4, intermediate: int = 128, type_vocab: int = 2
) -> dict:
    return {
        "architectures": ["NewModel"],
        "auto_map": {"AutoConfig": "Alibaba-NLP/new-impl--configuration.NewConfig"},
        "model_type": "new",
        "vocab_size": 30528,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 8192,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": 1e-12,
        "layer_norm_type": "layer_norm",
        "position_embedding_type": "rope",
        "rope_theta": 160000,
        "rope_scaling": {"type": "ntk", "factor": 2.0},
        "logn_attention_scale": False,
        "pack_qkv": True,
        "pad_token_id": 0,
    }


def original_weights(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the original NewModel names."""
    gen = torch.Generator().manual_seed(seed)
    h, inter = config["hidden_size"], config["intermediate_size"]

    def rand(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    weights = {
        "embeddings.word_embeddings.weight": rand(config["vocab_size"], h, scale=0.5),
        "embeddings.LayerNorm.weight": 1 + rand(h),
        "embeddings.LayerNorm.bias": rand(h),
    }
    if config["type_vocab_size"]:
        weights["embeddings.token_type_embeddings.weight"] = rand(config["type_vocab_size"], h, scale=0.5)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        weights |= {
            p + "attention.qkv_proj.weight": rand(3 * h, h, scale=0.2),
            p + "attention.qkv_proj.bias": rand(3 * h),
            p + "attention.o_proj.weight": rand(h, h, scale=0.2),
            p + "attention.o_proj.bias": rand(h),
            p + "attn_ln.weight": 1 + rand(h),
            p + "attn_ln.bias": rand(h),
            p + "mlp.up_gate_proj.weight": rand(2 * inter, h, scale=0.2),
            p + "mlp.down_proj.weight": rand(h, inter, scale=0.2),
            p + "mlp.down_proj.bias": rand(h),
            p + "mlp_ln.weight": 1 + rand(h),
            p + "mlp_ln.bias": rand(h),
        }
    return weights


def write_original_checkpoint(directory: Path, tokenizer_dir: Path, *, seed: int = 0, **shape: int) -> Path:
    """A complete original-layout checkpoint: config, safetensors, BERT-uncased tokenizer, CLS pooling."""
    directory.mkdir(parents=True, exist_ok=True)
    config = original_config(**shape)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file(original_weights(config, seed), directory / "model.safetensors")
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, directory / name)
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (directory / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    return directory


def write_converted_checkpoint(original: Path, directory: Path) -> Path:
    """The original checkpoint's weights saved by transformers' GteModel (the converted `gte` layout, as
    the hub's converted copies are), with the original's tokenizer and pooling files beside them."""
    from ragkit.encoder.checkpoint import inspect_checkpoint, load_model

    model = load_model(
        inspect_checkpoint(original),
        device=torch.device("cpu"),
        dtype=torch.float32,
        attn_implementation="sdpa",
    )
    model.save_pretrained(directory)
    for name in (*TOKENIZER_FILES, "modules.json"):
        shutil.copy(original / name, directory / name)
    shutil.copytree(original / "1_Pooling", directory / "1_Pooling", dirs_exist_ok=True)
    return directory


def reference_embedding(directory: Path, token_ids: list[int]) -> torch.Tensor:
    """CLS state of one unpadded text, L2-normalised, computed from the formulas in float64."""
    config = json.loads((directory / "config.json").read_text())
    from safetensors.torch import load_file

    w = {k: v.double() for k, v in load_file(directory / "model.safetensors").items()}
    h, heads = config["hidden_size"], config["num_attention_heads"]
    d, inter, eps = h // heads, config["intermediate_size"], config["layer_norm_eps"]
    n = len(token_ids)

    def layer_norm(x: torch.Tensor, prefix: str) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    x = w["embeddings.word_embeddings.weight"][torch.tensor(token_ids)]
    if config["type_vocab_size"]:
        x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, "embeddings.LayerNorm")

    # new-impl's fixed NTK: base θ·s, frequencies further divided by s^(2/d).
    s = config["rope_scaling"]["factor"]
    base = config["rope_theta"] * s
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d) / s ** (2 / d)
    angles = torch.outer(torch.arange(n, dtype=torch.float64), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rope(t: torch.Tensor) -> torch.Tensor:  # t: (heads, n, d); rotate-half convention
        rotated = torch.cat([-t[..., d // 2 :], t[..., : d // 2]], -1)
        return t * cos + rotated * sin

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        qkv = x @ w[p + "attention.qkv_proj.weight"].T + w[p + "attention.qkv_proj.bias"]
        q, k, v = (t.reshape(n, heads, d).transpose(0, 1) for t in qkv.split(h, -1))
        scores = rope(q) @ rope(k).transpose(-1, -2) / math.sqrt(d)
        attended = (scores.softmax(-1) @ v).transpose(0, 1).reshape(n, h)
        x = layer_norm(
            x + attended @ w[p + "attention.o_proj.weight"].T + w[p + "attention.o_proj.bias"], p + "attn_ln"
        )
        up_gate = x @ w[p + "mlp.up_gate_proj.weight"].T
        up, gate = up_gate[:, :inter], up_gate[:, inter:]
        gelu = 0.5 * gate * (1 + torch.erf(gate / math.sqrt(2)))
        x = layer_norm(
            x + (gelu * up) @ w[p + "mlp.down_proj.weight"].T + w[p + "mlp.down_proj.bias"], p + "mlp_ln"
        )
    cls = x[0]
    return cls / cls.norm()
