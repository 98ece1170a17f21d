#!/usr/bin/env bash
# GPU checks for the vLLM backend and a bf16 pretrained pipeline (see scripts/gpu_check.py).
# Usage: scripts/gpu_check.sh [OUT_DIR] [extra gpu_check.py args, e.g. --policy DIR --base /models/Qwen2.5-0.5B-Instruct]
# Needs a CUDA machine with agentprm installed with the vllm extra (pip install -e ".[vllm]").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check_results}"
shift || true
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed (no GPU?)" | tee -a "$OUT/nvidia-smi.txt"
PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" python scripts/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
