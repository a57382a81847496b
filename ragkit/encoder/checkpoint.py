"""Recognise a checkpoint's layout and build transformers' native model and a plain tokenizer for it.

Three layouts load, none through remote code:
- original Alibaba-NLP gte-*-en-v1.5 (`model_type: "new"`): the config is translated in memory into a
  `GteConfig`; transformers' own `gte` conversion mapping renames the weights as they load;
- converted checkpoints that already say `model_type: "gte"`;
- BERT-family sentence-transformers checkpoints, whose pooling, normalisation and length we honour.
The tokenizer is the `tokenizers` library's object, with truncation and padding switched off: a stored
tokenizer.json can carry its own truncation (all-MiniLM's cuts at 128) that must never cut a text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, GteConfig, GteModel, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from ragkit.encoder.packed_linear import pack_linears
from ragkit.errors import ModelLoadError

GTE_TYPES = frozenset({"new", "gte"})
BERT_FAMILY = frozenset({"bert", "roberta", "xlm-roberta", "mpnet"})
SUPPORTED_TYPES = GTE_TYPES | BERT_FAMILY
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class Pooling:
    """How token states become one vector: the CLS state (gte) or the masked mean (most ST models)."""

    mode: Literal["cls", "mean"]
    normalize: bool


@dataclass(frozen=True)
class Checkpoint:
    """Everything known about a checkpoint directory before any weight is read."""

    path: Path
    model_type: str
    config: PretrainedConfig
    pooling: Pooling
    max_length: int
    position_limit: int

    @property
    def is_gte(self) -> bool:
        return self.model_type in GTE_TYPES


def inspect_checkpoint(path: Path) -> Checkpoint:
    """Read the configs of a checkpoint directory and decide how to load it."""
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist")
    raw = _read_json(path / "config.json", required=True)
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path / 'config.json'} is not a model config (a JSON object)")
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise ModelLoadError(
            f"{path / 'config.json'}: model_type {model_type!r} is not supported; ragkit loads "
            f"{', '.join(sorted(SUPPORTED_TYPES))} checkpoints"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(f"{path}: no weights found (looked for {', '.join(WEIGHT_FILES)})")
    if model_type == "new":
        config = gte_config_from_original(raw, source=path / "config.json")
    elif model_type == "gte":
        config = GteConfig.from_pretrained(path)
    else:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    position_limit = _position_limit(config, model_type)
    max_length = _max_length(path, model_type, position_limit)
    return Checkpoint(path, model_type, config, _pooling(path, model_type), max_length, position_limit)


_ORIGINAL_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)


def _positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")


def gte_config_from_original(raw: dict[str, Any], *, source: Path) -> GteConfig:
    """Translate an Alibaba-NLP `NewModel` config into transformers' `GteConfig`.

    new-impl's fixed NTK scaling with factor s and head dim d computes
    inv_freq = (θ·s)^(-2i/d) / s^(2/d), which is exactly transformers' `linear` RoPE with
    rope_theta = θ·s and factor = s^(2/d). (A plain θ·2 default RoPE is NOT the same.)
    """
    if raw.get("position_embedding_type", "rope") != "rope":
        raise ModelLoadError(f"{source}: only rope position embeddings are supported")
    if raw.get("logn_attention_scale") or raw.get("layer_norm_type", "layer_norm") != "layer_norm":
        raise ModelLoadError(f"{source}: logn attention scaling and non-LayerNorm norms are not supported")
    missing = [key for key in _ORIGINAL_REQUIRED if not isinstance(raw.get(key), int) or raw[key] < 1]
    if missing:
        raise ModelLoadError(f"{source}: {', '.join(missing)} missing or not a positive integer")
    head_dim = raw["hidden_size"] // raw["num_attention_heads"]
    theta = float(raw.get("rope_theta", 10000.0))
    scaling = raw.get("rope_scaling") or {}
    if not scaling:
        rope = {"rope_type": "default", "rope_theta": theta}
    elif (
        scaling.get("type") == "ntk" and "mixed_b" not in scaling and _positive_number(scaling.get("factor"))
    ):
        factor = float(scaling["factor"])
        rope = {"rope_type": "linear", "rope_theta": theta * factor, "factor": factor ** (2 / head_dim)}
    else:
        raise ModelLoadError(
            f"{source}: rope_scaling {scaling} is not supported (only fixed NTK with a positive factor)"
        )
    return GteConfig(
        vocab_size=raw["vocab_size"],
        hidden_size=raw["hidden_size"],
        num_hidden_layers=raw["num_hidden_layers"],
        num_attention_heads=raw["num_attention_heads"],
        intermediate_size=raw["intermediate_size"],
        hidden_act=raw.get("hidden_act", "gelu"),
        hidden_dropout_prob=raw.get("hidden_dropout_prob", 0.0),
        attention_probs_dropout_prob=raw.get("attention_probs_dropout_prob", 0.0),
        max_position_embeddings=raw.get("max_position_embeddings", 8192),
        type_vocab_size=raw.get("type_vocab_size", 0),
        layer_norm_eps=raw.get("layer_norm_eps", 1e-12),
        pad_token_id=raw.get("pad_token_id", 0),
        rope_parameters=rope,
    )


def load_model(
    checkpoint: Checkpoint,
    *,
    device: torch.device,
    dtype: torch.dtype,
    attn_implementation: str,
    packed: bool = False,
) -> PreTrainedModel:
    """Load weights into the native model class, failing loudly when names do not line up.

    `packed` replaces the linear layers by oneDNN-packed copies (ragkit.encoder.packed_linear). The file
    is then read rather than memory-mapped: transformers keeps the mapping open for the model's life, so
    every page the packing read would stay resident beside the copies (gte-large: 3.5 GB instead of 2.0).
    """
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn_implementation}
    if packed:
        kwargs["disable_mmap"] = True
    try:
        with _quiet_transformers():
            if checkpoint.is_gte:
                model, info = GteModel.from_pretrained(
                    checkpoint.path, config=checkpoint.config, output_loading_info=True, **kwargs
                )
            else:
                model, info = AutoModel.from_pretrained(
                    checkpoint.path,
                    config=checkpoint.config,
                    add_pooling_layer=False,
                    trust_remote_code=False,
                    output_loading_info=True,
                    **kwargs,
                )
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # a damaged or half-downloaded file
        raise ModelLoadError(f"{checkpoint.path}: could not load weights: {exc}") from exc
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ModelLoadError(
            f"{checkpoint.path}: the weights do not match a {checkpoint.model_type} model; "
            f"{len(missing)} tensors missing, e.g. {', '.join(missing[:3])}"
        )
    _refuse_non_finite(model, checkpoint.path)
    model = model.to(device).eval().requires_grad_(False)
    if packed:
        pack_linears(model)
    return model


def _refuse_non_finite(model: PreTrainedModel, path: Path) -> None:
    """A NaN or infinite weight makes every vector NaN, which a vector store takes without complaint."""
    bad = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        raise ModelLoadError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values, e.g. {', '.join(bad[:3])}; "
            "the checkpoint is damaged (re-download or re-export it)"
        )


def load_tokenizer(path: Path) -> Tokenizer:
    """The checkpoint's own tokenizer, never truncating or padding on its own."""
    tokenizer_file = path / "tokenizer.json"
    if tokenizer_file.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # the tokenizers library raises a bare Exception for any unreadable file
            raise ModelLoadError(
                f"{tokenizer_file} is not a tokenizer the tokenizers library can read: {exc}"
            ) from exc
    elif (path / "vocab.txt").is_file():
        from tokenizers.implementations import BertWordPieceTokenizer

        lowercase = _read_json(path / "tokenizer_config.json").get("do_lower_case", True)
        tokenizer = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=lowercase)
    else:
        raise ModelLoadError(f"{path}: no tokenizer found (looked for tokenizer.json and vocab.txt)")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


_QUIET = threading.Lock()  # transformers' verbosity and progress bar are process-wide


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' load report and progress bar: unused pooler weights are expected, not news.
    The caller's settings come back afterwards, whatever they were, also when threads load at once."""
    with _QUIET:
        verbosity = hf_logging.get_verbosity()
        progress_bar = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            hf_logging.set_verbosity(verbosity)
            if progress_bar:
                hf_logging.enable_progress_bar()


def _position_limit(config: PretrainedConfig, model_type: str) -> int:
    limit = int(config.max_position_embeddings)
    # RoBERTa-style models reserve the first positions after the padding index.
    return limit - 2 if model_type in {"roberta", "xlm-roberta", "mpnet"} else limit


# sentence-transformers modules that ragkit runs itself; any other (Dense, LayerNorm...) changes the vectors.
_MODULES = ("Transformer", "Pooling", "Normalize")
# Pooling configs: sentence-transformers < 6 wrote one bool per mode, 6 writes "pooling_mode".
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def _pooling(path: Path, model_type: str) -> Pooling:
    modules = _read_json(path / "modules.json", default=[])
    foreign = [m.get("type", "?") for m in modules if not m.get("type", "").endswith(_MODULES)]
    if foreign:
        raise ModelLoadError(
            f"{path / 'modules.json'}: module(s) {', '.join(foreign)} are not supported; ragkit runs only "
            f"{', '.join(_MODULES)} modules and would give other vectors than sentence-transformers"
        )
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling_dirs = [m["path"] for m in modules if m.get("type", "").endswith("Pooling")]
    if not pooling_dirs:
        # gte's model card: CLS state, L2-normalised; plain BERT checkpoints get the same default.
        return Pooling("cls", normalize=True)
    pool_file = path / pooling_dirs[0] / "config.json"
    pool_config = _read_json(pool_file, required=True)
    if "pooling_mode" in pool_config:
        raw = pool_config["pooling_mode"]
        modes = [raw] if isinstance(raw, str) else list(raw)
    else:
        modes = [mode for key, mode in _LEGACY_POOLING_KEYS.items() if pool_config.get(key)] or ["mean"]
    if modes not in (["cls"], ["mean"]):
        raise ModelLoadError(
            f"{pool_file}: pooling {' + '.join(map(str, modes))} is not supported; ragkit pools by CLS or mean"
        )
    # gte checkpoints are meant to be normalised (model card) even where modules.json omits the step.
    return Pooling(modes[0], normalize=normalize or model_type in GTE_TYPES)


def _max_length(path: Path, model_type: str, position_limit: int) -> int:
    """sentence-transformers' limit: sentence_bert_config's max_seq_length, else (as it reads BERT-family
    models, and as version 6 saves them) the tokenizer's model_max_length; gte's card says its positions."""
    limit = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if not limit and model_type not in GTE_TYPES:
        limit = _read_json(path / "tokenizer_config.json").get("model_max_length")
    if not isinstance(limit, int | float) or not 2 <= limit < position_limit:
        return position_limit
    return int(limit)


def _read_json(file: Path, *, required: bool = False, default: Any = None) -> Any:
    if not file.is_file():
        if required:
            raise ModelLoadError(f"{file} is missing")
        return {} if default is None else default
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{file} is not valid JSON: {exc}") from exc
