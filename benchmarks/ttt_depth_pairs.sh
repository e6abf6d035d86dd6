#!/usr/bin/env bash
# Claim (d) of issue 28, TTT-depth generalisation: EAGLE-3 / EAGLE-3.1 pairs trained identically with TTT 1, 2 and 3
# (the reference recipe of benchmarks/reference_drafters.sh: the committed self-distilled sets data/reference/*, offline
# features shared by all six, batch 4; STEPS steps each, 240 by default = half the shipped recipe so that the three
# pairs fit in one CPU session), each pair evaluated teacher-forced to depth 8 on the standard
# suite, paired (hf-eagle31 eval --teacher-forced; answers cached, so the six evaluations share one set of answers).
#
#   bash benchmarks/ttt_depth_pairs.sh                  # everything; resumable (reference_drafters.sh resumes training)
#   TTTS="1 3" bash benchmarks/ttt_depth_pairs.sh       # a subset
#   STAGE=eval bash benchmarks/ttt_depth_pairs.sh       # only the tables, once the drafters exist
#
# Cost (measured here, docs/results/train-throughput.log: 4.2 s per step of 2 x 512 tokens at TTT 3 on one quiet CPU
# thread, 6.0 s at TTT 7; reference_drafters.sh: ~35 min per pair of 480 batch-4 steps, one thread each, offline
# features): about 35 min per pair at 480 steps on a quiet 2-core machine, half that at the default 240, plus ~10 min
# of features, and ~6 min of teacher-forced evaluation per pair. On a GPU: minutes.
set -euo pipefail
RUN=${RUN:-runs/ttt-depth}
TTTS=${TTTS:-"1 2 3"}
STAGE=${STAGE:-all}
export STEPS=${STEPS:-240}
OUT=${OUT:-docs/results}
PY=${PY:-python}
stage() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }

if stage train; then
  RUN=$RUN STAGE=data bash benchmarks/reference_drafters.sh
  RUN=$RUN STAGE=features bash benchmarks/reference_drafters.sh
  for ttt in $TTTS; do
    RUN=$RUN TTT=$ttt STAGE=train bash benchmarks/reference_drafters.sh
  done
fi

if stage eval; then
  for ttt in $TTTS; do
    OMP_NUM_THREADS=1 $PY -m hf_eagle31.cli eval --teacher-forced --drafter "$RUN/eagle3-ttt$ttt" \
      --drafter "$RUN/eagle3.1-ttt$ttt" --dtype bfloat16 --suite standard --num-prompts 10 --max-new-tokens 128 \
      --max-depth 8 --json "$OUT/teacher-forced-ttt$ttt.json" > "$OUT/teacher-forced-ttt$ttt.log"
  done
fi
