#!/usr/bin/env bash
# The scaling curve: EAGLE-3 and EAGLE-3.1 trained from scratch with one identical recipe (same data order, steps,
# draft vocabulary, seed), validated at log-spaced checkpoints, then tau and first-token acceptance against the
# tokens each checkpoint has seen (docs/results/scaling.{json,png}, with where tau 2.5 / 3 / 4 would land).
#
#   bash examples/scaling_pair.sh                   # all stages (data is shared with continue_training.sh)
#   STAGE=train bash examples/scaling_pair.sh       # one stage: data | train | validate | curve
#   STEPS=400 bash examples/scaling_pair.sh         # a longer run (the curve takes every checkpoint in CHECKPOINTS)
#
# Train resumes from each run's newest complete checkpoint when re-run; stop it at any time.
set -euo pipefail
RUN=${RUN:-runs/pair}
DATA=${DATA:-runs/data/sg-800-6800}  # ShareGPT conversations 800-6799, teacher-forced, max 1024 tokens
SKIP=${SKIP:-800}
CONVERSATIONS=${CONVERSATIONS:-6000}
STEPS=${STEPS:-2000}                # upper bound: constant learning rate, so every checkpoint is a point on the curve
CHECKPOINTS=${CHECKPOINTS:-"25 50 100 200 400"}
STAGE=${STAGE:-all}
VARIANTS=(eagle3.1 eagle3)
stage() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }

if stage data; then
  [ -f "$DATA/dataset_info.json" ] || hf-eagle31 prepare-data --source sharegpt --skip "$SKIP" \
    --num-conversations "$CONVERSATIONS" --no-regenerate --max-length 1024 --out "$DATA"
fi

if stage train; then
  # Both variants side by side, one thread each: online features from the bf16 target, bf16 autocast, TTT 3,
  # batch 2, lr 5e-4 constant after 30 warm-up steps, a checkpoint every 25 steps (all kept: the curve reads them).
  for v in "${VARIANTS[@]}"; do
    resume=(); ls -d "$RUN/$v"/checkpoint-* >/dev/null 2>&1 && resume=(--resume_from_checkpoint latest)
    OMP_NUM_THREADS=1 hf-eagle31 train --data "$DATA" --variant "$v" --ttt-steps 3 --draft-vocab-size 8192 \
      --target-dtype bfloat16 --bf16 --out "$RUN/$v/final" --output_dir "$RUN/$v" \
      --per_device_train_batch_size 2 --learning_rate 5e-4 --lr_scheduler_type constant_with_warmup \
      --warmup_steps 30 --max_steps "$STEPS" --save_steps 25 --logging_steps 5 --seed 1 --use_cpu \
      "${resume[@]}" > "$RUN/$v.log" 2>&1 &
  done
  wait
fi

if stage validate; then
  # tau at K = 4 on MT-Bench prompts (never trained on), greedy, bf16 target and drafters, one eval per variant
  # (side by side, one thread each); the shipped drafters are the reference rows.
  # The shipped EAGLE-3.1 drafter's generation_config.json turns on confidence-bounded, copy-aware drafting: its
  # reference row runs a copy with a constant-K config, like every checkpoint.
  shipped=$RUN/shipped-eagle3.1
  if [ ! -d "$shipped" ]; then
    cp -r hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1 "$shipped"
    printf '{\n  "num_assistant_tokens": 3,\n  "num_assistant_tokens_schedule": "constant"\n}\n' \
      > "$shipped/generation_config.json"
  fi
  for v in "${VARIANTS[@]}"; do
    reference=hf_eagle31/drafters/smollm2-135m-instruct-$v
    [ "$v" = eagle3.1 ] && reference=$shipped
    drafters=(--drafter "$reference")
    for step in $CHECKPOINTS; do
      [ -d "$RUN/$v/checkpoint-$step" ] && drafters+=(--drafter "$RUN/$v/checkpoint-$step")
    done
    OMP_NUM_THREADS=1 hf-eagle31 eval "${drafters[@]}" --suite standard --sources mtbench --num-prompts 8 \
      --num-assistant-tokens 4 --max-new-tokens 96 --repeats 1 --dtype bfloat16 \
      --json "$RUN/validate-$v.json" > "$RUN/validate-$v.log" 2>&1 &
  done
  wait
fi

if stage curve; then
  python examples/scaling_curve.py --data "$DATA" --batch-size 2 \
    --eval eagle3.1="$RUN/validate-eagle3.1.json" --eval eagle3="$RUN/validate-eagle3.json" \
    --out docs/results/scaling
fi
