#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the main job: the whole learning loop on
# the embedded default (no GPU, no network). Extra arguments go to `distillserve demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$PWD/.cache/hf"
exec .venv/bin/distillserve demo "$@"
