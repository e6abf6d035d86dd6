#!/usr/bin/env bash
# Issue 28 item 3, at CPU scale: the shipped EAGLE-3.1 drafter continued for STEPS steps on one fresh ShareGPT slice
# (conversations 6800+, never seen by the shipped drafters; teacher-forced text, no regeneration) with each training
# objective, same data, order, steps and seed; then judged by the teacher-forced evaluator on held-out prompts,
# paired against the soft-CE run (hf-eagle31 eval --teacher-forced, answers cached).
#   bash benchmarks/lk_side_by_side.sh                       # soft_ce, lk_alpha, lk_hybrid; 60 steps each
#   OBJECTIVES="soft_ce lk_hybrid" STEPS=400 bash benchmarks/lk_side_by_side.sh
set -euo pipefail
RUN=${RUN:-runs/lk}
STEPS=${STEPS:-60}
OBJECTIVES=${OBJECTIVES:-"soft_ce lk_alpha lk_hybrid"}
OUT=${OUT:-docs/results}
PY=${PY:-python}
SHIPPED=hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1
DATA=$RUN/data-sg-6800-7100
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -f "$DATA/dataset_info.json" ] || $PY -m hf_eagle31.cli prepare-data --source sharegpt --skip 6800 \
  --num-conversations 300 --no-regenerate --max-length 1024 --out "$DATA"
drafters=()
for objective in $OBJECTIVES; do
  if [ ! -f "$RUN/eagle3.1-$objective/model.safetensors" ]; then
    $PY -m hf_eagle31.cli train --data "$DATA" --init-from "$SHIPPED" --variant eagle3.1 --ttt-steps 3 \
      --target-dtype bfloat16 --loss-objective "$objective" --out "$RUN/eagle3.1-$objective" --output_dir "$RUN/ckpt-$objective" \
      --per_device_train_batch_size 2 --learning_rate 3e-4 --lr_scheduler_type constant_with_warmup --warmup_steps 5 \
      --max_steps "$STEPS" --save_strategy no --logging_steps 10 --seed 1 --use_cpu --report_to none \
      > "$RUN/train-$objective.log" 2>&1
  fi
  drafters+=(--drafter "$RUN/eagle3.1-$objective")
done
$PY -m hf_eagle31.cli eval --teacher-forced "${drafters[@]}" --suite heldout --num-prompts 60 --dtype bfloat16 \
  --max-new-tokens 128 --max-depth 8 --json "$OUT/teacher-forced-lk-side-by-side.json" \
  > "$OUT/teacher-forced-lk-side-by-side.log"
