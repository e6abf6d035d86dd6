#!/usr/bin/env bash
# Training that accumulates across runs: continue a shipped drafter (EAGLE-3.1 by default) on the next slice of
# ShareGPT (teacher-forced: the loss distils the target's own distribution on the conversation text, so no generation
# is needed), then ship the result only if its teacher-forced chain length (held-out prompts, paired) beats the
# shipped drafter's.
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
  # Teacher-forced agreement on held-out ShareGPT first turns (never trained on), bf16, depths 1-3 (the chain length
  # the drafters ship with): the shipped drafter vs the candidate on the same positions, paired cluster-bootstrap
  # intervals (hf_eagle31/evaluation/teacher_forced.py). The target's answers are cached, so re-validating costs only the
  # teacher-forced forwards. (The earlier generate-based check: eval --suite standard --sources mtbench
  # --num-prompts 8 --num-assistant-tokens 3 --policy constant, tau at K = 3.)
  OMP_NUM_THREADS=$THREADS hf-eagle31 eval --teacher-forced --drafter "$SHIPPED" --drafter "$CHECKPOINT" \
    --suite heldout --num-prompts "${VALIDATION_PROMPTS:-60}" --max-new-tokens 128 --max-depth 3 --dtype bfloat16 \
    --json "$RUN/validate.json"
fi

if stage ship; then
  # Ship when the candidate's teacher-forced chain length at K = 3 beats the shipped drafter's (paired difference
  # > 0; STRICT=1: the lower end of its 95% interval > 0).
  python - "$RUN/validate.json" "${STRICT:-0}" <<'EOF'
import json, sys
report, strict = json.load(open(sys.argv[1])), sys.argv[2] == "1"
shipped, candidate = report["drafters"]
tau = {d: report["metrics"][d]["tau_chain"]["value"][2] for d in (shipped, candidate)}
diff = report["diff"][candidate]["tau_chain"]
delta, (low, high) = diff["value"][2], diff["ci"][2]
print(f"teacher-forced tau_chain@K3: shipped {tau[shipped]:.4f}, candidate {tau[candidate]:.4f}, "
      f"difference {delta:+.4f} [{low:+.4f}, {high:+.4f}]")
sys.exit(0 if (low > 0 if strict else delta > 0) else "not shipped: the candidate does not beat the shipped drafter")
EOF
  python examples/ship_drafter.py "$CHECKPOINT" "$SHIPPED" --variant "$VARIANT" \
    --training-file "docs/training/smollm2-135m-instruct-$VARIANT.md" --num-assistant-tokens 3 \
    --confidence-threshold "${CONFIDENCE:-0.3}" --copy-tokens "${COPY:-8}"
fi
