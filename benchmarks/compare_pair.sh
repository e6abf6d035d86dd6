#!/usr/bin/env bash
# EAGLE-3 vs EAGLE-3.1: the tau tables and drift diagnostic the README and the model cards report, for two drafters of
# the same target (by default the two shipped ones). Greedy fp32, every drafter with constant K (`--policy constant`:
# a shipped drafter's saved confidence/copy defaults would make the comparison one of policies, not of drafters).
# tau does not depend on timing, so two measurements run side by side, the cores split between them.
#
#   bash benchmarks/compare_pair.sh                                       # the shipped pair -> docs/results/
#   EAGLE3=runs/a/eagle3 EAGLE31=runs/a/eagle3.1 OUT=runs/a bash benchmarks/compare_pair.sh
set -euo pipefail
EAGLE3=${EAGLE3:-hf_eagle31/drafters/smollm2-135m-instruct-eagle3}
EAGLE31=${EAGLE31:-hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1}
OUT=${OUT:-docs/results}
TRAIN_DATA=${TRAIN_DATA:-data/reference/sharegpt400-800-smollm2}  # prompts both drafters were trained on
THREADS=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))  # per process
mkdir -p "$OUT"

drafters=(--drafter "$EAGLE3" --drafter "$EAGLE31")
ev() { OMP_NUM_THREADS=$THREADS hf-eagle31 eval "${drafters[@]}" --max-new-tokens 128 --dtype float32 \
  --policy constant "$@"; }
# Depth 7 everywhere (past the TTT-3 training depth: the TTT-depth generalisation row), plus the trained depth 3 on
# the standard suite.
ev --suite standard --num-prompts 2 --num-assistant-tokens 3 7 --json "$OUT/eval-standard.json" \
  > "$OUT/eval-standard.log" 2>&1 &
ev --suite perturbed --sources mtbench gsm8k --num-prompts 1 --num-assistant-tokens 7 \
  --json "$OUT/eval-perturbed.json" > "$OUT/eval-perturbed.log" 2>&1 &
wait
ev --suite long --long-lengths 2048 4096 --num-prompts 1 --num-assistant-tokens 7 --json "$OUT/eval-long.json" \
  > "$OUT/eval-long.log" 2>&1 &
OMP_NUM_THREADS=$THREADS hf-eagle31 drift "${drafters[@]}" --suite standard --sources mtbench sharegpt \
  --num-prompts 2 --depth 7 --out "$OUT" > "$OUT/drift.log" 2>&1 &
wait
# Train/inference consistency check: the same measurement on 6 short prompts the drafters were trained on.
python - "$TRAIN_DATA" "$OUT/train-prompts.jsonl" <<'EOF'
import json, sys
from hf_eagle31.data import load_prepared
rows = [json.loads(r["messages"]) for r in load_prepared(sys.argv[1])]
prompts = [next(m["content"] for m in row if m["role"] == "user") for row in rows]
with open(sys.argv[2], "w") as f:
    for i, prompt in enumerate([p for p in prompts if len(p) < 600][:6]):
        f.write(json.dumps({"prompt": prompt, "id": f"train-{i}"}) + "\n")
EOF
ev --prompts "$OUT/train-prompts.jsonl" --num-assistant-tokens 3 --json "$OUT/eval-trainprompts.json" \
  > "$OUT/eval-trainprompts.log" 2>&1
tail -n 12 "$OUT"/eval-{standard,perturbed,long,trainprompts}.log
