#!/usr/bin/env bash
# The paper-claims tables of docs/results/teacher-forced.md: teacher-forced agreement per depth 1-8 of the shipped
# EAGLE-3 and EAGLE-3.1 drafters (trained identically, TTT 3), paired, with cluster-bootstrap intervals.
# bf16 target and drafters (the drafters' training features came from a bf16 target), greedy answers of 128 tokens,
# cached under $HF_EAGLE31_CACHE/teacher_forced_answers (a re-run only re-does the cheap teacher-forced part).
#   bash benchmarks/teacher_forced_tables.sh                 # all parts
#   PARTS="standard long2k" bash benchmarks/teacher_forced_tables.sh
set -uo pipefail
trap "kill 0" TERM INT  # stopping the script stops its run
OUT=${OUT:-docs/results}
PY=${PY:-python}
PARTS=${PARTS:-"standard perturbed long2k heldout long4k"}
D3=hf_eagle31/drafters/smollm2-135m-instruct-eagle3
D31=hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
common=(eval --teacher-forced --drafter "$D3" --drafter "$D31" --dtype bfloat16 --max-new-tokens 128 --max-depth 8)
run() {  # name, then extra arguments
  local name=$1; shift
  echo "== $name: $PY -m hf_eagle31.cli ${common[*]} $* --json $OUT/teacher-forced-$name.json"
  /usr/bin/time -v $PY -m hf_eagle31.cli "${common[@]}" "$@" --json "$OUT/teacher-forced-$name.json" \
    > "$OUT/teacher-forced-$name.log" 2> "$OUT/teacher-forced-$name.err"
  echo "   exit $? ($(date +%T))"
}
for part in $PARTS; do
  case $part in
    standard)  run standard --suite standard --num-prompts 10 ;;
    perturbed) run perturbed --suite perturbed --num-prompts 2 ;;
    heldout)   run heldout --suite heldout --num-prompts 60 ;;
    heldout240) run heldout240 --suite heldout --num-prompts 240 ;;  # the half-width target (answers nest: 60 in 240)
    long2k)    run long2k --suite long --long-lengths 2048 --num-prompts 16 --answer-batch-tokens 9000 ;;
    long4k)    run long4k --suite long --long-lengths 4096 --num-prompts 6 --answer-batch-tokens 9000 ;;
    long7k)    run long7k --suite long --long-lengths 7168 --num-prompts 3 ;;
  esac
done
