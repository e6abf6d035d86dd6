#!/usr/bin/env bash
# Training that accumulates across runs: continue a shipped drafter (EAGLE-3.1 by default) on the next slice of
# ShareGPT (teacher-forced: the loss distils the target's own distribution on the conversation text, so no generation
# is needed), then ship the result only if its validation tau beats the shipped drafter's.
#
#   bash examples/continue_training.sh                  # all stages
#   STAGE=validate bash examples/continue_training.sh   # one stage: data | train | validate | ship
#   SKIP=6800 CONVERSATIONS=6000 RUN=runs/r2 bash examples/continue_training.sh   # the next slice
#   VARIANT=eagle3 RUN=runs/r1-eagle3 bash examples/continue_training.sh         # the EAGLE-3 drafter, same recipe
#
# Train resumes from its newest complete checkpoint when re-run; stop it at any time, a checkpoint every 100 steps
# (all kept: any of them can be validated and shipped, and the two variants compared at equal steps). STEPS is the
# run's total: re-running a finished run trains nothing and keeps its drafter; to extend it, re-run with a larger
# STEPS (e.g. STEPS=6000: it resumes from the newest checkpoint and trains up to the new total).
set -euo pipefail
RUN=${RUN:-runs/r1}
SKIP=${SKIP:-800}                   # ShareGPT conversations already used (0-799: the self-distilled reference sets)
CONVERSATIONS=${CONVERSATIONS:-6000}
STEPS=${STEPS:-3000}                # total steps of the run (raise it to extend); any checkpoint is usable
CHECKPOINT=${CHECKPOINT:-}          # validate/ship this checkpoint (default: the newest)
VARIANT=${VARIANT:-eagle3.1}
SHIPPED=hf_eagle31/drafters/smollm2-135m-instruct-$VARIANT
THREADS=${THREADS:-1}
STAGE=${STAGE:-all}
DATA=${DATA:-runs/data/sg-$SKIP-$((SKIP + CONVERSATIONS))}  # shared with scaling_pair.sh
stage() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }

if stage data; then
  [ -f "$DATA/dataset_info.json" ] || hf-eagle31 prepare-data --source sharegpt --skip "$SKIP" \
    --num-conversations "$CONVERSATIONS" --no-regenerate --max-length 1024 --out "$DATA"
fi

if stage train; then
  # Online features from a bf16 target, TTT 3 (the shipped drafter's), batch 2, constant lr after a short warm-up.
  resume=(); ls -d "$RUN"/checkpoint-* >/dev/null 2>&1 && resume=(--resume_from_checkpoint latest)
  OMP_NUM_THREADS=$THREADS hf-eagle31 train --data "$DATA" --init-from "$SHIPPED" --variant "$VARIANT" --ttt-steps 3 \
    --target-dtype bfloat16 --out "$RUN/final" --output_dir "$RUN" --per_device_train_batch_size 2 \
    --learning_rate 3e-4 --lr_scheduler_type constant_with_warmup --warmup_steps 30 --max_steps "$STEPS" \
    --save_steps 100 --logging_steps 10 --seed 1 --use_cpu "${resume[@]}"
fi

if [ -z "$CHECKPOINT" ]; then
  CHECKPOINT=$(ls -d "$RUN"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
fi

if stage validate; then
  # tau at K = 3 on MT-Bench prompts (never trained on), greedy fp32: the shipped drafter vs the candidate, both with
  # constant K (the shipped drafter's saved confidence/copy defaults would otherwise make it a different policy).
  OMP_NUM_THREADS=$THREADS hf-eagle31 eval --drafter "$SHIPPED" --drafter "$CHECKPOINT" --suite standard \
    --sources mtbench --num-prompts 8 --num-assistant-tokens 3 --max-new-tokens 96 --repeats 1 --policy constant \
    --json "$RUN/validate.json"
fi

if stage ship; then
  python - "$RUN/validate.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
shipped, candidate = rows[0]["tau"], rows[1]["tau"]
print(f"validation tau: shipped {shipped:.3f}, candidate {candidate:.3f}")
sys.exit(0 if candidate > shipped else "not shipped: the candidate does not beat the shipped drafter")
EOF
  python examples/ship_drafter.py "$CHECKPOINT" "$SHIPPED" --variant "$VARIANT" \
    --training-file "docs/training/smollm2-135m-instruct-$VARIANT.md" --num-assistant-tokens 3 \
    --confidence-threshold "${CONFIDENCE:-0.3}" --copy-tokens "${COPY:-8}"
fi
