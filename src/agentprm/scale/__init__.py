"""Past one machine on existing engines: Ray for rollouts, MC labels and search (`ray_jobs`), vLLM for
generation (`agentprm.policy.vllm`). Each is an optional extra, imported only when asked for."""
