#!/usr/bin/env bash
# Separate environment for the peer library llmrouter-lib (not a dependency of zooter): .venv-peer.
# llmrouter-lib 0.4.0 declares gradio, litellm, torch-geometric, fastapi, ... which its kNN/SVM/MLP/MF/
# RouterDC routers never import; it is installed --no-deps with only what those router modules import,
# and torch pinned to the CPU wheel (constraints.txt) so pip never pulls a CUDA build. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-peer}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.installed-llmrouter-0.4.0"
[ -f "$STAMP" ] && { echo "$VENV: llmrouter-lib 0.4.0 already installed"; exit 0; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q -c constraints.txt)
"${PIP[@]}" torch
"${PIP[@]}" "transformers>=4.40" "numpy>=1.21" "pandas>=1.5" "scikit-learn>=1.2" "scipy>=1.10" \
  "pyyaml>=6.0" "tqdm>=4.65" "pydantic>=2.0" pillow
"${PIP[@]}" --no-deps llmrouter-lib==0.4.0
"$VENV/bin/python" -c "import llmrouter.models as m; print('llmrouter-lib', m.KNNRouter.__module__, 'ok')"
touch "$STAMP"
