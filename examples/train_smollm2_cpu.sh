#!/usr/bin/env bash
# End to end on a CPU with the embedded SmolLM2-135M-Instruct target: self-distilled ShareGPT data, then an
# EAGLE-3.1 drafter trained online with the HF Trainer. Small numbers so it finishes on a laptop; scale
# --num-conversations, --max_steps and --max-length up on real hardware.
set -euo pipefail
OUT=${OUT:-runs/smollm2-eagle31}
N=${N:-64}

hf-eagle31 prepare-data --source sharegpt --num-conversations "$N" --regenerate --dtype bfloat16 \
  --max-new-tokens 256 --max-length 1024 --batch-size 8 --out "$OUT/data"

hf-eagle31 train --data "$OUT/data" --variant eagle3.1 --ttt-steps 7 --draft-vocab-size 32000 --out "$OUT/drafter" \
  --eval-fraction 0.05 --per_device_train_batch_size 2 --gradient_accumulation_steps 4 --learning_rate 1e-4 \
  --num_train_epochs 1 --logging_steps 10 --eval_strategy steps --eval_steps 50 --save_steps 100 \
  --use_cpu --report_to none
