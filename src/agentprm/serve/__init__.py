"""Serving our envs over AgentGym's HTTP protocol (`agentprm serve-env`)."""

from agentprm.serve.app import PROTOCOLS, EnvTable, create_app, default_protocol
from agentprm.serve.runner import serve, serve_in_thread

__all__ = ["PROTOCOLS", "EnvTable", "create_app", "default_protocol", "serve", "serve_in_thread"]
