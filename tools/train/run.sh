#!/usr/bin/env bash
# Reproduces testdata/models/ from scratch on a 2-core CPU machine.
#
#   tools/train/run.sh [--stage all|ctc|transducer] [--transducer-budget-s S]
#
# ctc (about 50 min): synthetic data with the NeMo features, a 30-minute base
#   training, a 12-minute fine-tuning stage with lossy codecs (AMR-NB, AMR-WB,
#   MP3) in the data, export to zh-tiny-ctc-{offline,streaming}.
# transducer (about 60 min with the default budget): the same synthetic
#   speech with sherpa-onnx's kaldi fbank features, a tiny LSTM transducer
#   trained with the RNN-T loss for --transducer-budget-s seconds (default
#   3300), export to zh-tiny-transducer-{streaming,offline}.
# Seeds are fixed; the training stages stop on a wall-clock budget, so step
# counts (and the last digits of the weights) depend on the machine's speed.
set -euo pipefail
STAGE=all
TRANSDUCER_BUDGET_S=3300
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) STAGE=$2; shift 2 ;;
    --transducer-budget-s) TRANSDUCER_BUDGET_S=$2; shift 2 ;;
    *) echo "usage: $0 [--stage all|ctc|transducer] [--transducer-budget-s S]" >&2; exit 2 ;;
  esac
done
case "$STAGE" in all|ctc|transducer) ;; *) echo "unknown stage $STAGE" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${WORK:-$ROOT/build}
./scripts/setup
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install -q -r tools/train/requirements.txt
PY=$ROOT/.venv-train/bin/python

if [ "$STAGE" = all ] || [ "$STAGE" = ctc ]; then
  cargo build --release -p sis-testkit          # amr-encode, for the codec stage
  (
    cd tools/train
    $PY make_data.py "$WORK/train-data"
    $PY train.py "$WORK/train-data" "$WORK/model.pt" --budget-s 1800
    $PY make_data.py "$WORK/train-data-codec" --codec-prob 0.3
    $PY train.py "$WORK/train-data-codec" "$WORK/model-ft.pt" --init "$WORK/model.pt" --lr 1e-3 --warmup 50 --budget-s 720
    $PY export.py "$WORK/model-ft.pt" "$WORK/train-data/tokens.txt" "$ROOT/testdata/models"
  )
fi

if [ "$STAGE" = all ] || [ "$STAGE" = transducer ]; then
  (
    cd tools/train
    $PY make_data.py "$WORK/train-data-kaldi" --features kaldi
    $PY train_transducer.py "$WORK/train-data-kaldi" "$WORK/transducer.pt" --budget-s "$TRANSDUCER_BUDGET_S"
    $PY export_transducer.py "$WORK/transducer.pt" "$WORK/train-data-kaldi/tokens.txt" "$ROOT/testdata/models"
  )
fi
