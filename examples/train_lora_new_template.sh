#!/usr/bin/env bash
# Adapt a trained drafter to a new system prompt / chat template with LoRA, then merge it into a plain drafter.
set -euo pipefail
BASE=${BASE:?trained drafter directory}
DATA=${DATA:?data prepared with the new template (hf-eagle31 prepare-data --chat-template NEW.jinja ...)}
OUT=${OUT:-runs/lora}
hf-eagle31 train --data "$DATA" --init-from "$BASE" --lora-r 16 --lora-alpha 32 --merge-lora --out "$OUT" \
  --ttt-steps 7 --learning_rate 2e-4 --num_train_epochs 1 --report_to none
# $OUT holds the adapter (adapter_model.safetensors); $OUT/merged a full drafter that loads with trust_remote_code.
