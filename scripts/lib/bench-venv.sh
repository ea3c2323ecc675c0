# Sourced by the benchmark scripts: the peers (sherpa-onnx-bin==2.0.1) and the
# plotting library in their own git-ignored environment, $VENV.
VENV=.venv-bench
if [ ! -f "$VENV/.ok-sherpa-onnx-bin-2.0.1" ]; then
  echo "[bench] creating $VENV (sherpa-onnx-bin==2.0.1, matplotlib)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q "sherpa-onnx-bin==2.0.1" matplotlib
  touch "$VENV/.ok-sherpa-onnx-bin-2.0.1"
fi
