#!/usr/bin/env bash
# GPU check: the GPU tests, training throughput of the configs, and a short real
# `lightning fit` of experiments/omniglot.yaml (the paper's net) with its validation curve.
# Usage: bash benchmarks/gpu_check.sh [max_epochs]   (needs data/omniglot/images_{background,evaluation}.zip)
set -uo pipefail
epochs=${1:-6}
out=${OUT:-gpu_check_out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/models 2>&1 | tail -3
python3 benchmarks/throughput.py experiments/quickstart.yaml experiments/omniglot.yaml --steps 30 --warmup 5 2>&1 | grep '^|'
start=$(date +%s)
python3 -m lightning_siamese fit --config experiments/omniglot.yaml --data.init_args.download false \
  --trainer.max_epochs "$epochs" --trainer.enable_progress_bar false --trainer.logger.init_args.save_dir "$out/logs" \
  > "$out/fit.log" 2>&1
echo "fit exit $? after $(( $(date +%s) - start )) s"
tail -4 "$out/fit.log"
python3 - "$out/logs/omniglot" <<'PY'
import sys, glob
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
for run in sorted(glob.glob(sys.argv[1] + "/version_*")):
    ea = EventAccumulator(run, size_guidance={"scalars": 0}); ea.Reload()
    for tag in ("val/oneshot_acc", "val/loss", "train/loss_epoch"):
        if tag in ea.Tags()["scalars"]:
            print(tag, [(e.step, round(e.value, 3)) for e in ea.Scalars(tag)])
PY
