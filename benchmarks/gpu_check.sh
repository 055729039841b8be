#!/usr/bin/env bash
# One-shot GPU check (about 5-8 minutes on one GPU): the gpu-marked tests, then the GPU
# parts of bench_features (goal: end to end >= 80% of the raw bf16 model throughput,
# i.e. a/b >= 0.80), bench_segmentation and bench_nets. Every figure goes to ONE file:
# $OUT/gpu_check.txt when $OUT is set, else ./gpu_check.txt.
#
# Usage, from the project root with the venv active:
#     bash benchmarks/gpu_check.sh
set -u -o pipefail
cd "$(dirname "$0")/.."
REPORT="${OUT:-.}/gpu_check.txt"
mkdir -p "$(dirname "$REPORT")"
: > "$REPORT"

log() { echo "$@" | tee -a "$REPORT"; }

# Run one step with its own time limit; record its exit status and keep going.
step() {
    local limit=$1 title=$2
    shift 2
    log ""
    log "=== $title  ($(date -u +%H:%M:%S) UTC, limit ${limit}s)"
    log "\$ $*"
    timeout "$limit" "$@" 2>&1 | tee -a "$REPORT"
    log "--- exit status ${PIPESTATUS[0]}"
}

log "protloc GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname)"
log "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$REPORT"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1 | tee -a "$REPORT"
log "load: $(uptime)"

step 150 "gpu-marked tests" \
    python -m pytest -m gpu -q -p no:cacheprovider -rs
step 120 "bench_features on cuda (bf16 autocast): a/b = end to end / raw model" \
    python benchmarks/bench_features.py --device cuda --precision bf16 --n-images 256 \
        --png-size 512 --batch-size 256 --repeats 3 --skip-naive --rss-sizes
step 120 "bench_segmentation on cuda (real HPA images, real Cellpose model)" \
    python benchmarks/bench_segmentation.py --device cuda --n-images 20 --batch-size 8
step 90 "bench_nets (CPU and, where CUDA is available, GPU)" \
    python benchmarks/bench_nets.py --quick --repeats 2

log ""
log "done $(date -u +%H:%M:%S) UTC; figures in $REPORT"
