#!/usr/bin/env bash
# Figure 5: PPO with outcome-only, ORM, PVM and AgentPRM rewards, 3 seeds each, on one run folder made by
# `agentprm pipeline` (it holds policy/ and prm/{agentprm,pvm,orm}/).
#   scripts/rl_figure5.sh [RUN_DIR] [CONFIG] [SEEDS]
# Two lanes run side by side (outcome+orm, pvm+agentprm), each `agentprm rl` on one thread (CONFIG sets
# threads: 1): on 2 cores that is faster than one lane on two threads. Resumable: every `agentprm rl`
# resumes its own checkpoint and skips a finished run, so rerun the script after an interruption.
# Then `agentprm report RUN_DIR` draws the figure from RUN_DIR/rl/.
set -euo pipefail
RUN=${1:-runs/default}
CONFIG=${2:-configs/rl-babyai.yaml}
SEEDS=${3:-"0 1 2"}
lane() {
  for seed in $SEEDS; do
    for reward in "$@"; do
      out="$RUN/rl/$reward-s$seed"
      if [ "$reward" = outcome ]; then
        agentprm rl --config "$CONFIG" --policy "$RUN/policy" --reward outcome --label outcome --seed "$seed" --out "$out"
      else
        agentprm rl --config "$CONFIG" --policy "$RUN/policy" --reward prm --rm "$RUN/prm/$reward" --label "$reward" \
          --seed "$seed" --out "$out"
      fi
    done
  done
}
lane outcome orm > "$RUN/rl-lane1.log" 2>&1 &
one=$!
lane pvm agentprm > "$RUN/rl-lane2.log" 2>&1 &
two=$!
status=0
wait $one || status=$?
wait $two || status=$?
[ $status -eq 0 ] || { echo "a lane failed: see $RUN/rl-lane1.log and $RUN/rl-lane2.log"; exit $status; }
echo "done: agentprm report $RUN"
