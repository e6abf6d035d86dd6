#!/usr/bin/env bash
# Offline training, data parallel: features are precomputed once (resumable, sha256-checked shards), then every
# process trains without the target in memory. Pass another config for FSDP / DeepSpeed, e.g.
#   CONFIG=examples/accelerate/fsdp_8gpu.yaml bash examples/train_offline_ddp.sh
set -euo pipefail
DATA=${DATA:?prepared data directory (hf-eagle31 prepare-data --out)}
OUT=${OUT:-runs/offline}
CONFIG=${CONFIG:-examples/accelerate/ddp_8gpu.yaml}

# 1. features (single process; the target is loaded here only)
hf-eagle31 train --data "$DATA" --offline-features "$OUT/features" --variant eagle3.1 --features-only
# 2. training from features on every process
accelerate launch --config_file "$CONFIG" -m hf_eagle31.cli train --data "$DATA" --offline-features "$OUT/features" \
  --variant eagle3.1 --out "$OUT/drafter" --per_device_train_batch_size 4 --learning_rate 1e-4 --num_train_epochs 2 \
  --bf16 --ddp_find_unused_parameters false --logging_steps 20 --save_steps 500 --report_to tensorboard
