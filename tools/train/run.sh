#!/usr/bin/env bash
# Reproduces testdata/models/ from scratch on a 2-core CPU machine (about 50 min):
# synthetic data, a 30-minute base training, a 12-minute fine-tuning stage with
# lossy codecs (AMR-NB, AMR-WB, MP3) in the data, export to two sherpa-onnx packs.
# Seeds are fixed; the training stages stop on a wall-clock budget, so step
# counts (and the last digits of the weights) depend on the machine's speed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${WORK:-$ROOT/build}
./scripts/setup
cargo build --release -p sis-testkit          # amr-encode, for the codec stage
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install -q -r tools/train/requirements.txt
PY=$ROOT/.venv-train/bin/python
cd tools/train
$PY make_data.py "$WORK/train-data"
$PY train.py "$WORK/train-data" "$WORK/model.pt" --budget-s 1800
$PY make_data.py "$WORK/train-data-codec" --codec-prob 0.3
$PY train.py "$WORK/train-data-codec" "$WORK/model-ft.pt" --init "$WORK/model.pt" --lr 1e-3 --warmup 50 --budget-s 720
$PY export.py "$WORK/model-ft.pt" "$WORK/train-data/tokens.txt" "$ROOT/testdata/models"
