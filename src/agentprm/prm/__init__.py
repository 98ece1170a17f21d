"""Process reward models: AgentPRM, PVM, ORM and MC-PRM are one model type trained on different targets."""
