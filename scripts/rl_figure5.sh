#!/usr/bin/env bash
# Figure 5: PPO with outcome-only, ORM, PVM and AgentPRM rewards, 3 seeds each, on one run folder made by
# `agentprm pipeline configs/babyai.yaml` (it holds policy/ and prm/{agentprm,pvm,orm}/).
#   scripts/rl_figure5.sh [RUN_DIR] [CONFIG] [SEEDS]
# Resumable: every `agentprm rl` resumes its own checkpoint and skips a finished run, so rerun the script
# after an interruption. Each run is sized by CONFIG (configs/rl-babyai.yaml: ~15 min on 2 cores), so the
# whole figure is ~12 runs x 15 min. Then `agentprm report` draws it from RUN_DIR/rl/.
set -euo pipefail
RUN=${1:-runs/default-babyai}
CONFIG=${2:-configs/rl-babyai.yaml}
SEEDS=${3:-"0 1 2"}
for seed in $SEEDS; do
  for reward in outcome orm pvm agentprm; do
    out="$RUN/rl/$reward-s$seed"
    if [ "$reward" = outcome ]; then
      agentprm rl --config "$CONFIG" --policy "$RUN/policy" --reward outcome --label outcome --seed "$seed" --out "$out"
    else
      agentprm rl --config "$CONFIG" --policy "$RUN/policy" --reward prm --rm "$RUN/prm/$reward" --label "$reward" \
        --seed "$seed" --out "$out"
    fi
  done
done
