"""`agentprm view`: a local web viewer of run folders (see `agentprm.view.app`)."""
