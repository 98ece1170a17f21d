"""`python -m agentprm ...` = the `agentprm` command (e.g. under `accelerate launch -m agentprm`)."""

from agentprm.cli import main

main()
