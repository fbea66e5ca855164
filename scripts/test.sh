#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$PWD/.cache/hf"
.venv/bin/ruff check distillserve tests bench
.venv/bin/ruff format --check distillserve tests bench
.venv/bin/lint-imports   # the layers (pyproject.toml [tool.importlinter])
# Two workers (the CI machine has 2 cores; much of the suite waits on servers it started): a module
# is one unit of work, the longest first (tests/conftest.py). ``-n 0`` after it runs serially.
exec .venv/bin/python -m pytest -q -ra --durations=40 -n 2 --no-loadscope-reorder "$@"
