#!/usr/bin/env bash
# Create .venv with every pinned dependency (offline-capable afterwards). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# Prometheus server and promtool for the monitoring tests, Redis for the shared rate limits
# (Debian's packages).
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v redis-server >/dev/null; then
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus redis-server >/dev/null
fi
UV_VERSION=0.13.9
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  .venv/bin/python -m pip install -q "uv==$UV_VERSION" 2>&1 | grep -v "is ignored" || true
fi
# torch 2.13.0+cpu comes from the wheel on local disk; --no-deps installs exactly the lock,
# which leaves out the CUDA builds of torchvision/torchaudio/torchcodec that break transformers.
UV=(.venv/bin/uv pip install --python .venv/bin/python --no-deps --index-strategy unsafe-best-match)
[ -d /opt/wheels ] && UV+=(--find-links /opt/wheels)
# llama-cpp-python ships only an sdist: build just the libraries (no tools,
# tests, examples or server; ~10 CPU-minutes), for a generic x86-64 so the wheel runs on any CI machine.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
"${UV[@]}" -q -r requirements.lock
"${UV[@]}" -q -r requirements-nodeps.txt
"${UV[@]}" -q -e .
# The Triton server venv: PyTriton's tritonserver needs numpy<2 (requirements-triton.in says
# why); everything else it imports comes from .venv through a .pth overlay.
if [ ! -x .venv-triton/bin/python ]; then
  "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv --without-pip .venv-triton
fi
TUV=(.venv/bin/uv pip install --python .venv-triton/bin/python --no-deps --index-strategy unsafe-best-match)
[ -d /opt/wheels ] && TUV+=(--find-links /opt/wheels)
"${TUV[@]}" -q -r requirements-triton.lock
TRITON_SITE=$(.venv-triton/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
MAIN_SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import site; site.addsitedir('$MAIN_SITE')" > "$TRITON_SITE/zz_distillserve_main_venv.pth"
mkdir -p .cache
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, vllm; print("torch", torch.__version__, "vllm", vllm.__version__)'))"
