#!/usr/bin/env bash
# The scaling curve: EAGLE-3 and EAGLE-3.1 trained from scratch with one identical recipe (same data order, steps,
# draft vocabulary, seed), validated at log-spaced checkpoints, then tau and first-token acceptance against the
# tokens each checkpoint has seen (docs/results/scaling.{json,png}, with where tau 2.5 / 3 / 4 would land).
#
#   bash benchmarks/scaling_pair.sh                   # all stages (data is shared with continue_training.sh)
#   STAGE=train bash benchmarks/scaling_pair.sh       # one stage: data | train | validate | curve
#   STEPS=400 bash benchmarks/scaling_pair.sh         # a longer run (the curve takes every checkpoint in CHECKPOINTS)
#   RUNS="eagle3.1-2layers eagle3.1-mlp2x" CHECKPOINTS="50 100 200 300" bash benchmarks/scaling_pair.sh
#   RUNS="eagle3.1 eagle3.1-2layers eagle3.1-mlp2x" STAGE=curve OUT=docs/results/capacity bash benchmarks/scaling_pair.sh
#                                                   # the capacity curve: same recipe, more layers / a wider MLP
#
#   RUNS="eagle3.1-alltokens" CHECKPOINTS="50 100 200 300" bash benchmarks/scaling_pair.sh   # loss on every token
#
# A run's name picks the variant and what differs from the recipe: eagle3 / eagle3.1 (one decoder layer, the
# target's MLP width, loss on assistant tokens), <variant>-<n>layers (n decoder layers), <variant>-mlp<m>x (one
# layer, m times the target's MLP width), <variant>-alltokens (loss on prompt tokens too).
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
read -r -a RUN_NAMES <<< "${RUNS:-eagle3.1 eagle3}"
TARGET_INTERMEDIATE=1536            # SmolLM2-135M's MLP width
stage() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }
variant_of() { echo "${1%%-*}"; }
run_args() {                        # the train options a run's name asks for
  case "$1" in
    *-alltokens) echo "--loss-tokens all" ;;
    *-*layers) local n=${1##*-}; echo "--num-layers ${n%layers}" ;;
    *-mlp*x) local m=${1##*-mlp}; echo "--intermediate-size $(( ${m%x} * TARGET_INTERMEDIATE ))" ;;
  esac
}

if stage data; then
  [ -f "$DATA/dataset_info.json" ] || hf-eagle31 prepare-data --source sharegpt --skip "$SKIP" \
    --num-conversations "$CONVERSATIONS" --no-regenerate --max-length 1024 --out "$DATA"
fi

if stage train; then
  # Both variants side by side, one thread each: online features from the bf16 target, bf16 autocast, TTT 3,
  # batch 2, lr 5e-4 constant after 30 warm-up steps, a checkpoint every 25 steps (all kept: the curve reads them).
  for v in "${RUN_NAMES[@]}"; do
    resume=(); ls -d "$RUN/$v"/checkpoint-* >/dev/null 2>&1 && resume=(--resume_from_checkpoint latest)
    read -r -a extra <<< "$(run_args "$v")"
    OMP_NUM_THREADS=1 hf-eagle31 train --data "$DATA" --variant "$(variant_of "$v")" "${extra[@]}" \
      --ttt-steps 3 --draft-vocab-size 8192 \
      --target-dtype bfloat16 --bf16 --out "$RUN/$v/final" --output_dir "$RUN/$v" \
      --per_device_train_batch_size 2 --learning_rate 5e-4 --lr_scheduler_type constant_with_warmup \
      --warmup_steps 30 --max_steps "$STEPS" --save_steps 25 --logging_steps 5 --seed 1 --use_cpu \
      "${resume[@]}" > "$RUN/$v.log" 2>&1 &
  done
  wait
fi

if stage validate; then
  # tau at K = 4 on MT-Bench prompts (never trained on), greedy, bf16 target and drafters, one eval per run
  # (side by side, one thread each); the shipped drafter of the run's variant is the reference row. Every row drafts
  # with constant K (`--policy constant`: the shipped EAGLE-3.1 drafter is saved with confidence-bounded, copy-aware
  # drafting).
  for v in "${RUN_NAMES[@]}"; do
    drafters=()
    case "$v" in eagle3|eagle3.1) drafters=(--drafter "hf_eagle31/drafters/smollm2-135m-instruct-$v") ;; esac
    for step in $CHECKPOINTS; do
      [ -d "$RUN/$v/checkpoint-$step" ] && drafters+=(--drafter "$RUN/$v/checkpoint-$step")
    done
    OMP_NUM_THREADS=1 hf-eagle31 eval "${drafters[@]}" --suite standard --sources mtbench --num-prompts 8 \
      --num-assistant-tokens 4 --max-new-tokens 96 --repeats 1 --dtype bfloat16 --policy constant \
      --json "$RUN/validate-$v.json" > "$RUN/validate-$v.log" 2>&1 &
  done
  wait
fi

if stage curve; then
  curves=(); for v in "${RUN_NAMES[@]}"; do curves+=(--eval "$v=$RUN/validate-$v.json"); done
  python benchmarks/scaling_curve.py --data "$DATA" --batch-size 2 "${curves[@]}" --out "${OUT:-docs/results/scaling}"
fi
