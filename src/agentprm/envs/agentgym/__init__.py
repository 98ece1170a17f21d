"""AgentGym env servers: the wire dialects (shared with `agentprm.serve`), transport, id pool and the `Env`."""

from agentprm.envs.agentgym.dialects import BABYAI, SERVERS, TEXTCRAFT, WEBSHOP, Dialect, dialect_for
from agentprm.envs.agentgym.env import (
    GENERIC_SYSTEM_PROMPT,
    AgentGymEnv,
    AgentGymSpec,
    NondeterministicServerError,
    agentgym_spec,
    local_env,
)
from agentprm.envs.agentgym.pool import POOL
from agentprm.envs.agentgym.transport import (
    DIALECTS,
    KNOWN_ENVS,
    PREFIX,
    OutcomeUnknown,
    RetryPolicy,
    ServerReportedError,
    ServerUnreachable,
    Target,
    call,
    http_client,
    parse_target,
)

__all__ = [
    "BABYAI",
    "DIALECTS",
    "GENERIC_SYSTEM_PROMPT",
    "KNOWN_ENVS",
    "POOL",
    "PREFIX",
    "SERVERS",
    "TEXTCRAFT",
    "WEBSHOP",
    "AgentGymEnv",
    "AgentGymSpec",
    "Dialect",
    "NondeterministicServerError",
    "OutcomeUnknown",
    "RetryPolicy",
    "ServerReportedError",
    "ServerUnreachable",
    "Target",
    "agentgym_spec",
    "call",
    "dialect_for",
    "http_client",
    "local_env",
    "parse_target",
]
