#!/bin/bash
# Deliberately broken short runs on the shipped Omniglot small sets, one per training-health
# warning (README "When training goes wrong"), then the health/ scalars of each run.
# Usage: bash benchmarks/health_examples.sh [LOG_DIR]   (about 20 minutes on 2 busy CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-logs/health_examples}
short=(--trainer.enable_progress_bar false --data.init_args.num_workers 0
       --data.init_args.pairs_per_epoch 2560 --data.init_args.val_tasks 200
       --early_stopping.patience 20 --oneshot_report.tasks 200)
small_sets=(--data.init_args.sets '[images_background_small1, images_background_small2]'
            --data.init_args.val_alphabets '[Korean, Sanskrit]' --data.init_args.test_alphabets '[]'
            --data.init_args.download false)

run() {  # NAME CONFIG ARGS...
  local name=$1 config=$2
  shift 2
  echo "== $name: lightning fit --config $config $*"
  lightning fit --config "$config" --trainer.logger.init_args.save_dir "$out" \
    --trainer.logger.init_args.name "$name" "${short[@]}" "$@" 2>&1 | grep -A1 "training health" || true
}

# Adam at lr 1.0 (1000x the quickstart's): the Koch net's embeddings collapse, accuracy sits at chance.
run lr_too_high experiments/quickstart.yaml --model.init_args.optimizer.init_args.lr 1.0 --trainer.max_epochs 5
# Batch-hard triplets at lr 0.2 (200x omniglot_triplet.yaml's): collapse, and the triplet loss sits at the margin.
run triplet_collapse experiments/omniglot_triplet.yaml "${small_sets[@]}" \
  --model.init_args.optimizer.init_args.lr 0.2 --trainer.max_epochs 5
# Pairs drawn uniformly over images: most batches hold no same-class pair.
run uniform_pairs experiments/quickstart.yaml --data.init_args.pair_sampling darkshot_unbalanced --trainer.max_epochs 2

python - "$out" <<'EOF'
import sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

for run in sorted(Path(sys.argv[1]).glob("*/version_*")):
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = [t for t in events.Tags()["scalars"] if t.startswith("health/") or t in ("val/oneshot_acc", "val/loss")]
    print(f"\n{run}")
    for tag in sorted(tags):
        print(f"  {tag:26s} " + " ".join(f"{e.value:.4g}" for e in events.Scalars(tag)))
EOF
