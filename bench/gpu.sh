#!/usr/bin/env bash
# GPU benchmark of the lora_trainer recipe vs an HF Trainer + peft baseline (bench/gpu_train.py).
# Offline: installs only wheels found in .whl/ or bench/wheels/ (liger-kernel, msgspec, pyyaml);
# torch (CUDA), transformers, peft and accelerate must already be there. Prints what is missing
# instead of failing. Finishes in under 8 minutes; writes gpu_bench.json to $OUT when set.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    PY=.venv/bin/python
  else
    PY=python3
  fi
fi
echo "python: $PY ($($PY --version 2>&1))"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

for dir in .whl bench/wheels "${TUNELOG_WHEELS:-/nonexistent}"; do
  [ -d "$dir" ] || continue
  for module_wheel in "liger_kernel:liger_kernel-*.whl" "msgspec:msgspec-*.whl" "yaml:pyyaml-*.whl" "yaml:PyYAML-*.whl"; do
    module="${module_wheel%%:*}"; pattern="${module_wheel#*:}"
    $PY -c "import $module" 2>/dev/null && continue
    # liger-kernel is Triton code: only worth installing where (CUDA) torch brought triton
    [ "$module" = liger_kernel ] && ! $PY -c "import triton" 2>/dev/null && continue
    for wheel in "$dir"/$pattern; do
      [ -f "$wheel" ] || continue
      $PY -m pip install --no-index --no-deps --quiet "$wheel" 2>/dev/null && { echo "installed $(basename "$wheel")"; break; }
    done
  done
done

$PY - <<'PY'
import importlib.util
need = ["torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "msgspec", "yaml"]
optional = {"liger_kernel": "fused kernels (pip install liger-kernel)", "flash_attn": "flash-attention 2 (varlen packing)",
            "triton": "needed by liger-kernel"}
missing = [m for m in need if importlib.util.find_spec(m) is None]
print("missing (required): " + (", ".join(missing) or "none"))
for m, why in optional.items():
    print(f"optional {m}: {'present' if importlib.util.find_spec(m) else 'missing - ' + why}")
if importlib.util.find_spec("torch"):
    import torch
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
PY

OUT_ARG=()
[ -n "${OUT:-}" ] && OUT_ARG=(--out "$OUT")
timeout 470 $PY bench/gpu_train.py --timeout 190 "${OUT_ARG[@]}" "$@"
status=$?
[ $status -eq 124 ] && echo "gpu benchmark stopped at the 470 s limit"
exit $status
