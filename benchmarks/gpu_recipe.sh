#!/usr/bin/env bash
# The EAGLE-3 vs EAGLE-3.1 recipe at volume (issue 28, item 4): self-distil >= 10k ShareGPT conversations with the
# target, train both variants with one identical recipe on >= 50M tokens, then the teacher-forced tables of
# docs/results/teacher-forced.md for the pair. Built for a device lent in calls of ~10 minutes: every call does the
# NEXT step only and exits, so the caller runs it again and again until it prints "done":
#
#   while ! bash benchmarks/gpu_recipe.sh | tee -a runs/gpu-recipe.log | grep -qx done; do :; done
#   DEVICE=cpu SMALL=1 bash benchmarks/gpu_recipe.sh   # (repeatedly) the whole recipe at toy scale, minutes on a CPU
#
# Steps, in order (each one call, each bounded to about MINUTES + loading):
#   data   one chunk of CHUNK conversations (`prepare-data --skip k*CHUNK --num-conversations CHUNK`); a chunk cut
#          short by the end of a call resumes where it stopped (prepare-data is resumable);
#   train  EAGLE-3, then EAGLE-3.1: `hf-eagle31 train --max-minutes MINUTES`, resuming from the newest complete
#          checkpoint; a call stopped by the budget saves a checkpoint and leaves the run unfinished (no drafter in
#          the folder) until a call reaches --max_steps; both variants get the same data, seed and options;
#   eval   one teacher-forced part per call (`hf-eagle31 eval --teacher-forced`, as benchmarks/teacher_forced_tables.sh),
#          then the markdown tables (benchmarks/teacher_forced_report.py) in $RUN/teacher-forced.md.
#
# Carrying work between calls: everything lives under RUN (data chunks, checkpoints, drafters, eval JSONs, logs,
# max_steps). A fresh machine per call needs RUN copied back before the call and out after it (or RUN on storage that
# persists); nothing else is kept. A call killed mid-way loses at most the work since the last checkpoint / chunk
# shard: checkpoints are only resumed from when complete, and the final drafter is written atomically.
#
# Cost: what one step costs on an H100 (conversations regenerated per minute, training steps per minute) is NOT
# known yet: nothing here was measured on a GPU. The defaults (CHUNK, MINUTES, BATCH, SAVE_STEPS) are guesses to be
# corrected by the first calls' logs: lower CHUNK if a data call runs past 10 minutes; MINUTES leaves the loading
# time of a call (target, data) out of its budget.
#
# Training tokens: unless STEPS is set, the first train call counts the tokens of the prepared data and fixes
# max_steps = ceil(TOKENS / (BATCH x mean row length)) in $RUN/max_steps (both variants and every resume use it:
# --max_steps is the run's total). 10k conversations hold a few million tokens, so 50M tokens are several passes.
set -euo pipefail
RUN=${RUN:-runs/gpu-recipe}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
PY=${PY:-python}
TARGET=${TARGET:-}                  # default: the embedded SmolLM2-135M-Instruct
SOURCE=${SOURCE:-sharegpt}           # the ShareGPT V3 wheel (training split; the held-out split is never used)
SEED=${SEED:-0}
TTT=${TTT:-3}
if [ "$SMALL" = 1 ]; then            # toy scale: the whole recipe in ~2 minutes on a CPU (MINUTES 3 s: stops, resumes)
  CONVERSATIONS=${CONVERSATIONS:-8}; CHUNK=${CHUNK:-4}; MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-16}
  MAX_LENGTH=${MAX_LENGTH:-128}; TOKENS=${TOKENS:-2000}; BATCH=${BATCH:-2}; DRAFT_VOCAB=${DRAFT_VOCAB:-512}
  MINUTES=${MINUTES:-0.05}; SAVE_STEPS=${SAVE_STEPS:-2}; GEN_BATCH=${GEN_BATCH:-4}
  EVAL_PARTS=${EVAL_PARTS:-standard}; EVAL_PROMPTS=${EVAL_PROMPTS:-2}; EVAL_NEW_TOKENS=${EVAL_NEW_TOKENS:-16}
else
  CONVERSATIONS=${CONVERSATIONS:-10000}; CHUNK=${CHUNK:-1000}; MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-512}
  MAX_LENGTH=${MAX_LENGTH:-2048}; TOKENS=${TOKENS:-50000000}; BATCH=${BATCH:-16}; DRAFT_VOCAB=${DRAFT_VOCAB:-8192}
  MINUTES=${MINUTES:-8}; SAVE_STEPS=${SAVE_STEPS:-500}; GEN_BATCH=${GEN_BATCH:-64}
  EVAL_PARTS=${EVAL_PARTS:-"standard heldout"}; EVAL_PROMPTS=${EVAL_PROMPTS:-60}; EVAL_NEW_TOKENS=${EVAL_NEW_TOKENS:-128}
fi
if [ "$DEVICE" = cpu ]; then
  DTYPE=float32; TRAIN_DEVICE=(--use_cpu); EVAL_DTYPE=float32
else
  DTYPE=bfloat16; TRAIN_DEVICE=(--bf16 true); EVAL_DTYPE=bfloat16
fi
TARGET_FLAG=(${TARGET:+--target "$TARGET"})
CLI=("$PY" -m hf_eagle31.cli)
CHUNKS=$(( (CONVERSATIONS + CHUNK - 1) / CHUNK ))
mkdir -p "$RUN/data" "$RUN/logs"

# ---- data: the first chunk not yet complete
DATA=()
for k in $(seq 0 $((CHUNKS - 1))); do
  DATA+=("$RUN/data/chunk-$k")
done
for k in $(seq 0 $((CHUNKS - 1))); do
  [ -f "${DATA[$k]}/dataset_info.json" ] && continue
  n=$(( CONVERSATIONS - k * CHUNK < CHUNK ? CONVERSATIONS - k * CHUNK : CHUNK ))
  echo "step: data chunk $((k + 1)) of $CHUNKS ($n conversations from $((k * CHUNK)))"
  "${CLI[@]}" prepare-data "${TARGET_FLAG[@]}" --source "$SOURCE" --skip $((k * CHUNK)) --num-conversations "$n" \
    --max-turns 1 --max-new-tokens "$MAX_NEW_TOKENS" --max-length "$MAX_LENGTH" --batch-size "$GEN_BATCH" \
    --dtype "$DTYPE" --device "$DEVICE" --out "${DATA[$k]}" 2>&1 | tee -a "$RUN/logs/data.log"
  exit "${PIPESTATUS[0]}"
done

# ---- train: max_steps fixed once for the whole run, then EAGLE-3 and EAGLE-3.1, one budgeted call at a time
if [ ! -f "$RUN/max_steps" ]; then
  if [ -n "${STEPS:-}" ]; then
    echo "$STEPS" > "$RUN/max_steps"
  else
    "$PY" - "$TOKENS" "$BATCH" "${DATA[@]}" > "$RUN/max_steps" <<'EOF'
import math, sys
from hf_eagle31.data.prepare import load_prepared
tokens, batch, dirs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
lengths = [len(ids) for ids in load_prepared(dirs)["input_ids"]]
print(math.ceil(tokens / (batch * sum(lengths) / len(lengths))))
print(f"{sum(lengths)} tokens in {len(lengths)} rows: {tokens} training tokens at batch {batch}", file=sys.stderr)
EOF
  fi
fi
STEPS=$(cat "$RUN/max_steps")
for variant in eagle3 eagle3.1; do
  out="$RUN/$variant"
  [ -f "$out/model.safetensors" ] && continue
  resume=()
  ls "$out"/checkpoint-*/trainer_state.json > /dev/null 2>&1 && resume=(--resume_from_checkpoint latest)
  echo "step: train $variant (max_steps $STEPS, batch $BATCH, --max-minutes $MINUTES${resume:+, resumed})"
  "${CLI[@]}" train "${resume[@]}" --data "${DATA[@]}" "${TARGET_FLAG[@]}" --target-dtype "$DTYPE" \
    --variant "$variant" --ttt-steps "$TTT" --out "$out" --draft-vocab-size "$DRAFT_VOCAB" --head-init target \
    --max-minutes "$MINUTES" --seed "$SEED" --max_steps "$STEPS" --per_device_train_batch_size "$BATCH" \
    --train_sampling_strategy group_by_length --learning_rate 5e-4 --lr_scheduler_type cosine \
    --warmup_steps $(( STEPS / 50 + 1 )) --weight_decay 0.0 --logging_steps 10 --save_steps "$SAVE_STEPS" --save_total_limit 2 "${TRAIN_DEVICE[@]}" \
    --disable_tqdm true --report_to none 2>&1 | tee -a "$RUN/logs/train-$variant.log"
  exit "${PIPESTATUS[0]}"
done

# ---- eval: one teacher-forced part per call, then the tables
for part in $EVAL_PARTS; do
  [ -f "$RUN/teacher-forced-$part.json" ] && continue
  echo "step: eval $part"
  "${CLI[@]}" eval --teacher-forced "${TARGET_FLAG[@]}" --drafter "$RUN/eagle3" --drafter "$RUN/eagle3.1" \
    --dtype "$EVAL_DTYPE" --device "$DEVICE" --max-new-tokens "$EVAL_NEW_TOKENS" --max-depth 8 --suite "$part" \
    --num-prompts "$EVAL_PROMPTS" --json "$RUN/teacher-forced-$part.json.partial" 2>&1 \
    | tee -a "$RUN/logs/eval-$part.log"
  status=${PIPESTATUS[0]}
  [ "$status" = 0 ] && mv "$RUN/teacher-forced-$part.json.partial" "$RUN/teacher-forced-$part.json"
  exit "$status"
done
if [ ! -f "$RUN/teacher-forced.md" ]; then
  parts=()
  for part in $EVAL_PARTS; do parts+=("$RUN/teacher-forced-$part.json"); done
  "$PY" benchmarks/teacher_forced_report.py "${parts[@]}" > "$RUN/teacher-forced.md.partial"
  mv "$RUN/teacher-forced.md.partial" "$RUN/teacher-forced.md"
fi
echo "done"
