"""Our envs as SkyRL text envs (`skyrl_gym.envs.base_text_env.BaseTextEnv`) whose `step` returns a
reward-model step reward, so SkyRL's trainer (which puts each turn's reward on that turn's last token)
runs turn-level PPO/GRPO with AgentPRM rewards at scale. Needs the `skyrl` extra (`pip install skyrl-gym`).

    from agentprm.integrations.skyrl import register_envs
    register_envs()                       # registers "agentprm-<env>" for every env of agentprm.envs
    env = skyrl_gym.make("agentprm-babyai", env_config={"rm": "runs/x/prm/agentprm", "shaping": "potential"},
                         extras={"task_id": "babyai_12"})

`env_config` keys (SkyRL passes its `environment.skyrl_gym.<env name>` config section):
- `reward`: `prm` (default when `rm` is set) or `outcome`;
- `rm`: a PRM dir (scored in-process), `http://HOST:PORT` (an `agentprm serve-prm` server, once the
  scale work's client is installed), or `random`; a `RewardModel` object also works (`reward_model`);
- `shaping`: potential (default) | dense | progress: the per-turn forms of `rl.rewards` that can be
  computed online (min-form needs the future, so it is refused here; `agentprm rl` has it);
- `gamma`, `rm_coef`, `phi0`, `binary_outcome`; `max_turns` (default: `extras.max_turns`, which SkyRL
  fills from `generator.max_turns`, else the env's own round limit).
`extras` (one dataset row): `task_id` (or `extra_info.task_id`), e.g. "babyai_12".

Turn t's reward is the last entry of `rl.rewards.turn_rewards` over the scores so far: the same
function `agentprm rl` uses, so both give the same per-turn rewards. An env that raises ends the episode
with reward 0 **and** `metadata["env_error"]` set (SkyRL's step output has no error status; filter on it),
and a reward-model failure propagates (never a silent 0).
"""

from __future__ import annotations

from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from agentprm.conversation import initial_messages
from agentprm.rl.rewards import turn_rewards

ONLINE_SHAPINGS = ("potential", "dense", "progress")
PREFIX = "agentprm-"


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    if hasattr(cfg, "get"):  # dict or OmegaConf DictConfig (what SkyRL passes)
        return cfg.get(key, default)
    return getattr(cfg, key, default)


class AgentPRMTextEnv(BaseTextEnv):
    """One episode of the agentprm env `env` (the registered kwarg, or `env_config.env`)."""

    env_name: str = ""
    _rm_cache: dict[str, Any] = {}  # one reward model per spec per process, shared by every env instance

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None, env: str | None = None):
        super().__init__()
        from agentprm.envs import make_env

        extras = extras or {}
        name = env or _get(env_config, "env", None) or self.env_name
        if not name:
            raise ValueError("no env: register with register_envs() or pass env_config.env")
        self.env = make_env(name)
        task_id = extras.get("task_id") or (extras.get("extra_info") or {}).get("task_id")
        if not task_id:
            raise ValueError("each dataset row needs extras.task_id (or extra_info.task_id), e.g. babyai_12")
        self.task_id: str = task_id
        # SkyRL puts generator.max_turns into extras; env_config.max_turns wins; else the env's own limit.
        self.max_turns = int(_get(env_config, "max_turns", 0) or extras.get("max_turns") or self.env.max_rounds)
        self.rm = _get(env_config, "reward_model", None)
        spec = _get(env_config, "rm", None)
        if self.rm is None and spec:
            self.rm = self._load_rm(str(spec))
        self.reward = _get(env_config, "reward", "prm" if self.rm is not None else "outcome")
        self.shaping = _get(env_config, "shaping", "potential")
        if self.reward not in ("prm", "outcome"):
            raise ValueError(f"reward must be prm or outcome, not {self.reward!r}")
        if self.reward == "prm" and self.rm is None:
            raise ValueError("reward prm needs env_config.rm (a PRM dir or server URL) or env_config.reward_model")
        if self.reward == "prm" and self.shaping not in ONLINE_SHAPINGS:
            raise ValueError(f"shaping {self.shaping!r} cannot be computed turn by turn; use one of {ONLINE_SHAPINGS}")
        self.gamma = float(_get(env_config, "gamma", 1.0))
        self.rm_coef = float(_get(env_config, "rm_coef", 1.0))
        self.phi0 = float(_get(env_config, "phi0", 0.0))
        self.binary_outcome = bool(_get(env_config, "binary_outcome", False))
        self.messages: list[dict[str, str]] = []
        self.scores: list[float] = []
        self.env_error: str | None = None
        self.success = False

    @classmethod
    def _load_rm(cls, spec: str) -> Any:
        if spec not in cls._rm_cache:
            from agentprm.search.loading import load_reward_model

            cls._rm_cache[spec] = load_reward_model(spec)
        return cls._rm_cache[spec]

    def init(self, prompt: Any = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The AgentGym conversation (system prompt, "OK.", first observation); SkyRL's own prompt is
        replaced: the env, not the dataset, defines the task text."""
        first = self.env.reset(self.task_id)
        self.messages = initial_messages(self.env.system_prompt, first)
        return list(self.messages), {"task_id": self.task_id}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        self.turns += 1
        self.messages.append({"role": "assistant", "content": action})
        try:
            res = self.env.step(self.env.parse_action(action))
        except Exception as e:  # noqa: BLE001 - errors are data: flagged in metadata, the episode ends
            self.env_error = f"{type(e).__name__}: {e}"
            return BaseTextEnvStepOutput(
                observations=[], reward=0.0, done=True, metadata={"env_error": self.env_error, "task_id": self.task_id}
            )
        done = bool(res.done)
        last = done or self.turns >= self.max_turns
        outcome = 0.0
        if last:
            self.success = done and self.env.is_success(float(res.reward), True)
            outcome = float(self.success) if self.binary_outcome else float(res.reward)
        if self.reward == "prm":
            self.scores.append(float(self.rm.score([self.messages])[0].scores[-1]))
            reward = float(
                turn_rewards(
                    self.shaping, outcome, self.scores, gamma=self.gamma, done=done, phi0=self.phi0, coef=self.rm_coef
                )[-1]
            )
        else:
            reward = outcome
        obs = [] if last else [{"role": "user", "content": res.observation}]
        self.messages.extend(obs)
        meta = {"task_id": self.task_id, "env_reward": float(res.reward), "truncated": last and not done}
        if self.scores:
            meta["q"] = self.scores[-1]
        return BaseTextEnvStepOutput(observations=obs, reward=reward, done=last, metadata=meta)

    def get_metrics(self) -> dict[str, Any]:
        return {"success": float(self.success), "turns": self.turns, "env_error": float(self.env_error is not None)}

    def close(self) -> None:
        self.env.close()


def register_envs(names: list[str] | None = None) -> list[str]:
    """Register `agentprm-<name>` in skyrl_gym's registry for each env (all of agentprm's by default)."""
    from skyrl_gym.envs.registration import register, registry

    from agentprm.envs import REGISTRY

    out = []
    for name in names or sorted(REGISTRY):
        env_id = PREFIX + name
        if env_id not in registry:
            # A string entry point plus a JSON kwarg: the spec survives SkyRL's Ray workers (they import it anew).
            register(id=env_id, entry_point=f"{__name__}:AgentPRMTextEnv", kwargs={"env": name})
        out.append(env_id)
    return out
