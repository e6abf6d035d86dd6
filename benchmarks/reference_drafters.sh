#!/usr/bin/env bash
# The reference drafters for the embedded SmolLM2-135M-Instruct target, EAGLE-3 vs EAGLE-3.1 with one identical
# recipe (same self-distilled data, draft vocabulary, steps, TTT length and seed), then the comparison the README
# reports. Every step is resumable: rerun the script after an interruption.
#
#   bash benchmarks/reference_drafters.sh            # everything (CPU: hours; a GPU: minutes)
#   STAGE=train bash benchmarks/reference_drafters.sh  # one stage: data | features | train | ship | eval
set -euo pipefail
RUN=${RUN:-runs/reference}
SETS=${SETS:-2}              # training sets of 400 ShareGPT conversations each (first user turn, self-distilled)
TTT=${TTT:-3}                # trained at 3, evaluated at chain depths up to 7 (the TTT-depth generalisation row)
STEPS=${STEPS:-480}          # batch 4
K_SHIP=${K_SHIP:-3}          # draft length the shipped drafters default to (and the speed benchmark uses)
SEED=${SEED:-0}
STAGE=${STAGE:-all}
# Set k holds ShareGPT training conversations [400k, 400k + 400). Both sets are committed (data/reference/):
# regenerating one took 25-40 min on a 2-core CPU.
DATA=(data/reference/sharegpt400-smollm2 data/reference/sharegpt400-800-smollm2)
DATA=("${DATA[@]:0:$SETS}")
FEATURES=$RUN/features/sharegpt$((400 * SETS))-smollm2
SHIP=${SHIP:-hf_eagle31/drafters}
THREADS=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))  # per process when two run side by side

stage() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }

if stage data; then
  for k in $(seq 0 $((SETS - 1))); do
    [ -f "${DATA[$k]}/dataset_info.json" ] && continue
    # fp32 is the fastest batched generate on a CPU; greedy regeneration of the first turn of each conversation.
    hf-eagle31 prepare-data --source sharegpt --skip $((400 * k)) --num-conversations 400 --max-turns 1 \
      --max-new-tokens 192 --batch-size 16 --dtype float32 --max-length 640 --out "${DATA[$k]}"
  done
fi

if stage features; then
  # Target features once (sha256-checked shards), shared by every drafter below.
  hf-eagle31 train --data "${DATA[@]}" --variant eagle3.1 --offline-features "$FEATURES" --features-only
fi

train() {  # variant ttt-steps out; resumes from the newest checkpoint in out, skips a finished drafter
  [ -f "$3/model.safetensors" ] && return 0
  local last
  last=$(ls -d "$3"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1 || true)
  hf-eagle31 train ${last:+--resume_from_checkpoint "$last"} --data "${DATA[@]}" --offline-features "$FEATURES" --variant "$1" --ttt-steps "$2" --out "$3" \
    --draft-vocab-size 8192 --head-init target --seed "$SEED" --max_steps "$STEPS" --per_device_train_batch_size 4 \
    --train_sampling_strategy group_by_length --learning_rate 5e-4 --lr_scheduler_type cosine --warmup_steps 20 --weight_decay 0.0 \
    --logging_steps 10 --save_steps 40 --save_total_limit 2 --use_cpu --report_to none
}

if stage train; then
  # Both variants at once, the cores split between them (on a 2-core CPU: one thread each, ~35 min for 480 steps).
  mkdir -p "$RUN"
  for variant in eagle3 eagle3.1; do
    OMP_NUM_THREADS=$THREADS train "$variant" "$TTT" "$RUN/$variant-ttt$TTT" > "$RUN/train-$variant.log" 2>&1 &
  done
  wait
fi

if stage eval; then
  # τ EAGLE-3 vs EAGLE-3.1 (greedy, fp32, constant K) and the drift diagnostic; the speed benchmark runs alone.
  EAGLE3="$RUN/eagle3-ttt$TTT" EAGLE31="$RUN/eagle3.1-ttt$TTT" OUT="$RUN" TRAIN_DATA="${DATA[-1]}" \
    bash benchmarks/compare_pair.sh
  # Speed: plain greedy vs prompt lookup vs the EAGLE-3.1 drafter on MT-Bench at the shipped draft length, in fp32
  # (exact) and bf16.
  for dtype in float32 bfloat16; do
    hf-eagle31 bench --drafter "$RUN/eagle3.1-ttt$TTT" --suite standard --sources mtbench --num-prompts 8 \
      --num-assistant-tokens "$K_SHIP" --max-new-tokens 128 --dtype $dtype --json "$RUN/bench-$dtype.json" \
      | tee "$RUN/bench-$dtype.log"
  done
fi

if stage ship; then
  # Hub layout, bf16 weights, embeddings taken from the target at load time, default draft length K_SHIP, model card
  # from the eval JSONs.
  for variant in eagle3 eagle3.1; do
    python - "$RUN/$variant-ttt$TTT" "$SHIP/smollm2-135m-instruct-$variant" "$K_SHIP" "$variant" \
      "$((400 * SETS))" "$STEPS" "$TTT" "$RUN"/eval-{standard,perturbed,long}.json <<'EOF'
import json, os, sys, torch
from hf_eagle31.modeling import Eagle3Drafter  # this package's code files travel with the shipped checkpoint
from hf_eagle31.hub import save_drafter  # save_pretrained + the model card (README.md)
src, dst, k, variant, conversations, steps, ttt, *result_files = sys.argv[1:]
results = [row for path in result_files for row in json.load(open(path))["results"]]
for row in results:  # rows are labelled with run directories: name them by variant
    row["drafter"] = os.path.basename(row["drafter"]).rsplit("-ttt", 1)[0]
drafter = Eagle3Drafter.from_pretrained(src, dtype=torch.bfloat16)
drafter.generation_config.num_assistant_tokens = int(k)
training = (
    f"Trained with `benchmarks/reference_drafters.sh` of hf-eagle31 (`hf-eagle31 prepare-data` + `hf-eagle31 train`): "
    f"the first user turns of {conversations} ShareGPT conversations answered greedily by the target itself, "
    f"{steps} steps of batch 4, TTT {ttt}, lr 5e-4 cosine, draft vocabulary 8192, lm_head started from the "
    "target's head rows. EAGLE-3 and EAGLE-3.1 drafters were trained with the identical recipe."
)
save_drafter(drafter, dst, include_embeddings=False, model_card={
    "eval_results": results, "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "drafter_name": variant,
    "training": training})
EOF
  done
fi
