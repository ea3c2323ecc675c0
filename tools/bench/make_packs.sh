#!/usr/bin/env bash
# Builds the benchmark packs (tools/bench/make_packs.py: random weights with
# the compute of real streaming and offline models; they recognise nothing)
# with the pinned training environment of tools/train in .venv-train.
#   tools/bench/make_packs.sh [OUT_DIR] [--only NAME]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install -q -r tools/train/requirements.txt
[ -x target/release/sisd ] || cargo build --release -p sisd
HELDOUT="${SIS_HELDOUT_DIR:-$PWD/target/heldout}"
[ -f "$HELDOUT/manifest.tsv" ] || python3 tools/heldout/make_heldout.py "$HELDOUT"
exec .venv-train/bin/python tools/bench/make_packs.py "$@"
