"""BabyAI as AgentGym serves it: a text wrapper over minigrid's BabyAI levels with macro actions.

Behaviour follows AgentGym's `agentenv-babyai` (see `shared/envs.md` §1), re-implemented here:

* Task id `babyai_<i>` is level `LEVELS[i % 40]` at seed `i // 40`; ids are unbounded.
  `BabyAI-GoToObjS6-v0` is deprecated in minigrid 3.x; it is served as `GoToObj(room_size=4)`, which is
  what AgentGym's pinned minigrid 2.3.1 registered under that name (identical grids, verified).
* The observation is rendered from the agent's 7x7 egocentric view: objects sorted by Manhattan
  distance and numbered per name, walls, the wall/box straight ahead, what is carried. `reset` adds
  the goal line; every observation ends with the available-actions list.
* Actions are macros (`go to red ball 1`, `pickup ...`, `toggle and go through ...`) expanded to
  minigrid primitives by a BFS over the visible cells; a macro stops at the first primitive that leaves
  the view image unchanged. Rejected actions are answered with AgentGym's error texts.
* Reward is minigrid's own (1 - 0.9 * steps / max_steps on success, else 0), taken from the macro's last
  primitive; `done` is minigrid's `terminated` and only when reward > 0.5.

AgentGym's quirks are kept on purpose (the literal reading is the default), each noted where it lives:
pickup/go-to numbers count only reachable objects; a closed door's no-path error prints a dict; a
failed (Debug-level) termination still appends "The task is completed." but is not done; the BFS may
path through doors and through the one unseen cell behind the agent (the macro then stops early).
`fix_prompt=True` corrects the system prompt's "pick up" (the env only accepts "pickup").
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import re
from collections import deque
from typing import Any

import numpy as np

from agentprm.envs.base import StepResult, check_split, parse_react_action
from agentprm.errors import EnvError, UserError

# AgentGym's `all_levels` table, level number k at index k - 1.
LEVELS: tuple[str, ...] = tuple(
    f"BabyAI-{name}-v0"
    for name in (
        "GoToRedBallGrey GoToRedBall GoToRedBallNoDists GoToObjS6 GoToLocalS8N7 GoToObjMazeS7 GoToImpUnlock "
        "GoToSeqS5R2 GoToRedBlueBall GoToDoor GoToObjDoor Open OpenRedDoor OpenDoorLoc OpenRedBlueDoorsDebug "
        "OpenDoorsOrderN4Debug Pickup UnblockPickup PickupLoc PickupDistDebug PickupAbove PutNextLocalS6N4 "
        "PutNextS7N4Carrying Unlock UnlockLocalDist KeyInBox UnlockPickupDist BlockedUnlockPickup UnlockToUnlock "
        "ActionObjDoor FindObjS7 KeyCorridorS6R3 OneRoomS20 MoveTwoAcrossS8N9 SynthS5R2 SynthLoc SynthSeq "
        "MiniBossLevel BossLevel BossLevelNoUnlock"
    ).split()
)
assert len(LEVELS) == 40

# Splits. AgentEval's 90 test ids live on the HF hub (not reachable offline), so the test split is our
# own fixed set: ids 40000..40089 (seeds 1000-1002; levels cycle, every level at least twice). Train is
# every other id, from 0 upwards: ids 0..809 (AgentTraj-L's 810) by default, continuing past 810 for
# larger n. Consecutive train ids cycle through the 40 levels, so any n >= 40 covers every level.
TEST_IDS: tuple[int, ...] = tuple(range(40_000, 40_090))
TRAIN_BASE = 810

# AgentGym's client prompt, verbatim (including its "pick up", which the env does not accept).
SYSTEM_PROMPT = (
    "You are an exploration master that wants to finish every goal you are given. Every round I will give you "
    "an observation, and you have to respond an action and your thought based on the observation to finish the "
    "given task. You are placed in a room and you need to accomplish the given goal with actions.\n\n"
    "You can use the following actions: \n\n- turn right \n\n- turn left \n\n- move forward \n\n"
    "- go to <obj> <id> \n\n- pick up <obj> <id> \n\n- go through <door> <id>: <door> must be an open door. \n\n"
    "- toggle and go through <door> <id>: <door> can be a closed door or a locked door. If you want to open a "
    "locked door, you need to carry a key that is of the same color as the locked door. \n\n"
    "- toggle: there is a closed or locked door right in front of you and you can toggle it.\n"
    "Your response should use the following format:\nThought:\n<Your Thought>\n\nAction:\n<Your Action>"
)

# minigrid's encodings (minigrid.core.constants), fixed across versions.
_OBJECTS = ("unseen", "empty", "wall", "floor", "door", "key", "ball", "box", "goal", "lava", "agent")
_COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
_DOOR_STATES = ("open", "closed", "locked")
_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # right, down, left, up (minigrid's DIR_TO_VEC)
_LISTED = {"door", "key", "ball", "box", "goal", "lava", "wall"}
_BLOCKING = ("wall", "box", "lava", "ball", "key")  # what the path BFS cannot walk through
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE = range(6)

NOT_RECOGNIZED = "The action is not recognized. Please check valid actions."
NO_CHANGE = "No change in state."
COMPLETED = "\n The task is completed."

_TASK_ID = re.compile(r"babyai_(\d+)")


def parse_task_id(task_id: str) -> int:
    m = _TASK_ID.fullmatch(str(task_id).strip())
    if m is None:
        raise UserError(f"unknown BabyAI task id {task_id!r}; ids look like babyai_<n> with n >= 0 (e.g. babyai_12)")
    return int(m.group(1))


def level_and_seed(index: int) -> tuple[str, int]:
    return LEVELS[index % 40], index // 40


def make_level(level: str) -> Any:
    """The unwrapped minigrid env of a level (GoToObjS6-v0 as AgentGym's minigrid had it)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the BabyAI ids with gymnasium)
    from minigrid.envs.babyai import GoToObj

    if level == "BabyAI-GoToObjS6-v0":
        return GoToObj(room_size=4)
    return gym.make(level).unwrapped


def copy_level(env: Any) -> Any:
    """A deep copy of a minigrid env that shares what never changes after reset (3x faster than deepcopy):
    the walls (most of the grid's objects), the spaces, the RNG (BabyAI levels draw only at reset), and
    the room layout (stepping reads only its geometry; its object lists serve generation and the bot)."""
    from minigrid.core.world_object import Wall

    memo: dict[int, Any] = {id(o): o for o in env.grid.grid if isinstance(o, Wall)}
    for key in ("observation_space", "action_space", "_np_random", "spec", "room_grid"):
        value = env.__dict__.get(key)
        if value is not None:
            memo[id(value)] = value
    return copy.deepcopy(env, memo)


@contextlib.contextmanager
def _quiet():
    """minigrid prints "Sampling rejected: ..." on some resets; it must never reach the user's terminal."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# -- observation and action space ---------------------------------------------------------------------


def _view_ranges(pos: tuple[int, int], f: tuple[int, int], r: tuple[int, int], view: int) -> tuple[range, range]:
    """The coordinate ranges the path BFS may use. AgentGym's arithmetic, kept exactly: depending on the
    heading it includes the cell behind the agent or one extra column, cells it never observed."""
    top_left = (pos[0] + f[0] * (view - 1) - r[0] * (view // 2), pos[1] + f[1] * (view - 1) - r[1] * (view // 2))
    ranges = []
    for axis in (0, 1):
        border = top_left[axis] + view * (r[axis] - f[axis])
        ranges.append(range(border, top_left[axis] + 1) if border < top_left[axis] else range(top_left[axis], border))
    return ranges[0], ranges[1]


def find_path(
    start: tuple[int, int],
    start_dir: int,
    goal: tuple[int, int],
    blocked: set[tuple[int, int]],
    xr: range,
    yr: range,
    arrive: bool,
) -> list[int] | None:
    """Primitive actions from (start, start_dir) to standing on `goal` (arrive) or facing it.

    AgentGym's BFS, same search order so the same path comes out: FIFO over (pos, dir), expanded in the
    order forward, left, right; a state counts as visited when popped (not when queued), and a state
    queued twice keeps the parent of its later queueing.
    """
    parent: dict[tuple[tuple[int, int], int], tuple[tuple[tuple[int, int], int], int]] = {}
    queue = deque([(start, start_dir)])
    popped: set[tuple[tuple[int, int], int]] = set()
    origin = (start, start_dir)
    while queue:
        node = queue.popleft()
        popped.add(node)
        pos, d = node
        dx, dy = _DIRS[d]
        if (pos == goal) if arrive else (goal[0] - pos[0] == dx and goal[1] - pos[1] == dy):
            path = []
            while node != origin:
                node, a = parent[node]
                path.append(a)
            return path[::-1]
        for a in (FORWARD, LEFT, RIGHT):
            if a == FORWARD:
                nxt = ((pos[0] + dx, pos[1] + dy), d)
            else:
                nxt = (pos, (d - 1) % 4 if a == LEFT else (d + 1) % 4)
            npos = nxt[0]
            if npos[0] not in xr or npos[1] not in yr or nxt in popped or npos in blocked:
                continue
            queue.append(nxt)
            parent[nxt] = (node, a)
    return None


def render_state(env: Any, image: np.ndarray) -> tuple[str, dict[str, list[int]], dict[str, str]]:
    """(description, macro actions -> primitives, action -> error text) for the current minigrid state."""
    view = env.agent_view_size
    pos = (int(env.agent_pos[0]), int(env.agent_pos[1]))
    d = int(env.agent_dir)
    f = _DIRS[d]
    r = _DIRS[(d + 1) % 4]
    top_left = (pos[0] + f[0] * (view - 1) - r[0] * (view // 2), pos[1] + f[1] * (view - 1) - r[1] * (view // 2))

    objs: list[tuple[str, tuple[int, int], int]] = []  # (name, abs pos, distance), in scan order
    barriers: list[tuple[str, int]] = []  # (wall|box, steps ahead) on the line straight ahead
    for j in range(view):  # far row first, left to right: the tie order of the stable sort below
        for i in range(view):
            ax, ay = top_left[0] - f[0] * j + r[0] * i, top_left[1] - f[1] * j + r[1] * i
            if ax < 0 or ay < 0:
                continue
            dist = abs(pos[0] - ax) + abs(pos[1] - ay)
            if dist == 0:  # the agent's cell holds the carried object in the image
                continue
            typ = _OBJECTS[image[i, j, 0]]
            if typ in _LISTED:
                color = _COLORS[image[i, j, 1]]
                name = f"{color} {_DOOR_STATES[image[i, j, 2]]} door" if typ == "door" else f"{color} {typ}"
                objs.append((name, (ax, ay), dist))
            if typ in ("box", "wall"):
                rel = (ax - pos[0], ay - pos[1])
                if f[0] * rel[1] - f[1] * rel[0] == 0:
                    barriers.append((typ, f[0] * rel[0] + f[1] * rel[1]))
    objs.sort(key=lambda o: o[2])

    parts = []
    if objs:
        parts.append("In front of you in this room, you can see several objects: ")
        seen: dict[str, int] = {}
        for name, (ax, ay), _ in objs:
            if "wall" in name:
                continue
            rel = (ax - pos[0], ay - pos[1])
            front = f[0] * rel[0] + f[1] * rel[1]
            right = r[0] * rel[0] + r[1] * rel[1]
            if right == 0:
                where = f"right in front of you {front} steps away. "
            elif right > 0:
                where = f"{front} steps in front of you and {right} steps to your right. "
            else:
                where = f"{front} steps in front of you and {-right} steps to your left. "
            seen[name] = seen.get(name, 0) + 1
            parts.append(f"There is a {name} {seen[name]} {where} ")
    else:
        parts.append("You cannot see any objects within sight.")
    parts.append("The room has walls around you. ")
    barriers.sort(key=lambda b: b[1])
    if barriers:
        parts.append(f"You are facing a {barriers[0][0]} {barriers[0][1]} steps away. ")
    carrying = env.carrying
    if carrying is not None:
        parts.append(f"You are carrying a {carrying.color} {carrying.type}.")
    else:
        parts.append("You are not carrying anything.")
    description = "".join(parts)

    actions, errors = _action_space(pos, d, view, objs, barriers, carrying)
    return description, actions, errors


def _action_space(pos, d, view, objs, barriers, carrying) -> tuple[dict[str, list[int]], dict[str, str]]:
    f = _DIRS[d]
    xr, yr = _view_ranges(pos, f, _DIRS[(d + 1) % 4], view)
    blocked = {p for name, p, _ in objs if any(b in name for b in _BLOCKING)}

    def path(goal: tuple[int, int], arrive: bool = False) -> list[int] | None:
        return find_path(pos, d, goal, blocked, xr, yr, arrive)

    actions: dict[str, list[int]] = {"turn left": [LEFT], "turn right": [RIGHT]}
    errors: dict[str, str] = {}
    if not barriers or barriers[0][1] > 1:
        actions["move forward"] = [FORWARD]
    else:
        errors["move forward"] = "There is a barrier in front of you, you can't move forward."

    # Numbering of pickup/go-to counts only the objects with a path (AgentGym's quirk), so "pickup red
    # ball 1" can mean the description's red ball 2 when ball 1 is cut off.
    if carrying is None:
        count: dict[str, int] = {}
        for name, p, _ in objs:
            if "wall" in name or "door" in name or "goal" in name:
                continue
            steps = path(p)
            if steps is not None:
                count[name] = count.get(name, 0) + 1
                actions[f"pickup {name} {count[name]}"] = [*steps, PICKUP]
            else:
                k = count.get(name, 0) + 1
                errors[f"pickup {name} {k}"] = f"You cannot pickup {name} {k}, as there is no path leading to it."

    if carrying is not None:
        ahead = (pos[0] + f[0], pos[1] + f[1])
        if any(p == ahead and any(b in name for b in _BLOCKING) for name, p, _ in objs):
            errors["drop"] = "You cannot drop the object, as there is already an object in front of you."
        else:
            actions["drop"] = [DROP]
    else:
        errors["drop"] = "You cannot drop the object, as you are not carrying anything."

    doors: dict[str, int] = {}
    for name, p, _ in objs:
        if "door" not in name:
            continue
        doors[name] = doors.get(name, 0) + 1
        label = f"{name} {doors[name]}"
        if "open door" in name:
            steps = path(p, arrive=True)
            if steps is not None:
                actions[f"go through {label}"] = steps
            else:
                errors[f"go through {label}"] = f"You cannot go through {label}, as there is no path leading to it."
            continue
        if "locked door" in name:
            if carrying is None or carrying.type != "key":
                errors[f"toggle and go through {label}"] = (
                    f"You cannot toggle and go through {label}, as you are not carrying a key."
                )
                continue
            if carrying.color != name.split(" ")[0]:
                errors[f"toggle and go through {label}"] = (
                    f"You cannot toggle and go through {label}, as the color of the key you are carrying "
                    "does not match the color of door."
                )
                continue
        steps = path(p)
        if steps is not None:
            actions[f"toggle and go through {label}"] = [*steps, TOGGLE, FORWARD]
        else:
            # AgentGym prints its door-count dict here, not the number.
            errors[f"toggle and go through {label}"] = (
                f"You cannot toggle and go through {name} {doors}, as there is no path leading to it."
            )
        if steps == []:
            actions["toggle"] = [TOGGLE]
        if "closed door" in name:
            errors[f"go through {label}"] = (
                f"You cannot go through {label}, as it is closed. You should toggle it first."
            )

    for name, p, _ in objs:
        if "goal" not in name:
            continue
        steps = path(p, arrive=True)
        if steps is not None:
            actions["go to goal"] = steps
        else:
            errors["go to goal"] = "You cannot go to the goal, as there is no path leading to it."

    count = {}
    for name, p, _ in objs:
        if "wall" in name or "goal" in name:
            continue
        steps = path(p)
        if steps is not None:
            count[name] = count.get(name, 0) + 1
            actions[f"go to {name} {count[name]}"] = steps
        else:
            k = count.get(name, 0) + 1
            errors[f"go to {name} {k}"] = f"You cannot go to {name} {k}, as there is no path leading to it."

    actions["check available actions"] = []
    return actions, errors


def format_actions(actions: dict[str, list[int]]) -> str:
    return "\nAvailable actions: [" + ", ".join(f'"{a}"' for a in actions) + "]"


def clean_mission(mission: str) -> str:
    return mission.replace("then", "and").replace("after you", "and")


# -- the env ------------------------------------------------------------------------------------------


class BabyAIEnv:
    """AgentGym's BabyAI (text observations, macro actions) over minigrid 3.x. See the module docstring."""

    name = "babyai"

    def __init__(self, max_rounds: int = 20, fix_prompt: bool = False):
        self.max_rounds = max_rounds
        self.system_prompt = SYSTEM_PROMPT.replace("pick up <obj>", "pickup <obj>") if fix_prompt else SYSTEM_PROMPT
        self._levels: dict[str, Any] = {}  # one minigrid env per level, reused across resets
        self._env: Any = None
        self.task_id = ""
        self.level = ""
        self.goal = ""
        self.reward = 0.0
        self.done = False
        self.low_level_steps = 0
        self._image: np.ndarray | None = None
        self._description = ""
        self._actions: dict[str, list[int]] = {}
        self._errors: dict[str, str] = {}

    # -- tasks --------------------------------------------------------------------------------------------
    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        check_split(split)
        if split == "test":
            ids = list(TEST_IDS)
            if n is not None and n > len(ids):
                raise UserError(f"the BabyAI test split has {len(ids)} tasks; ask for --n {len(ids)} or fewer")
            return [f"babyai_{i}" for i in ids[: n if n is not None else len(ids)]]
        want = TRAIN_BASE if n is None else n
        test = set(TEST_IDS)
        out: list[str] = []
        i = 0
        while len(out) < want:
            if i not in test:
                out.append(f"babyai_{i}")
            i += 1
        return out

    # -- episode ------------------------------------------------------------------------------------------
    def reset(self, task_id: str) -> str:
        level, seed = level_and_seed(parse_task_id(task_id))
        if level not in self._levels:
            self._levels[level] = make_level(level)
        self._env = self._levels[level]
        with _quiet():
            obs, _ = self._env.reset(seed=seed)
        self.task_id, self.level = task_id, level
        self.goal = clean_mission(self._env.mission)
        self.reward, self.done, self.low_level_steps = 0.0, False, 0
        self._image = obs["image"]
        self._description, self._actions, self._errors = render_state(self._env, self._image)
        return f"Your goal: {self.goal}\n{self._description}{format_actions(self._actions)}"

    def step(self, action: str) -> StepResult:
        if self._env is None:
            raise EnvError("BabyAI env stepped before reset")
        if self.done:
            raise EnvError(f"The task {self.task_id} has finished; reset before stepping again.")
        action = action.lower().strip()
        valid = True
        if "check" in action:  # AgentGym accepts any action containing "check" as the listing
            text = "You can take the following actions: " + ", ".join(self._actions)
        elif action not in self._actions:
            valid = False
            text = NO_CHANGE if action == "" else self._errors.get(action, NOT_RECOGNIZED)
        elif not self._actions[action]:
            text = NO_CHANGE
        else:
            text = self._run_macro(self._actions[action])
        info = {"action_is_valid": valid, "low_level_steps": self.low_level_steps}
        return StepResult(text + format_actions(self._actions), float(self.reward), self.done, info)

    def _run_macro(self, primitives: list[int]) -> str:
        env = self._env
        with _quiet():
            for a in primitives:
                obs, reward, terminated, _truncated, _ = env.step(a)
                self.low_level_steps += 1
                if self._image is not None and np.array_equal(obs["image"], self._image):
                    break  # the stop-early rule: this primitive changed nothing the agent sees
                self._image = obs["image"]
        self._image = obs["image"]
        self._description, self._actions, self._errors = render_state(env, self._image)
        text = self._description
        # AgentGym appends the completion line on any termination, then un-does `done` for reward <= 0.5
        # (a Debug level's failure, or a success too slow): the text says completed, the episode goes on.
        if terminated:
            text += COMPLETED
        self.reward = float(reward)
        self.done = bool(terminated) and self.reward > 0.5
        return text

    # -- protocol helpers ---------------------------------------------------------------------------------
    @property
    def available_actions(self) -> list[str]:
        return list(self._actions)

    def clone(self) -> BabyAIEnv:
        twin = copy.copy(self)
        twin._levels = {}
        twin._env = None if self._env is None else copy_level(self._env)
        if twin._env is not None:
            twin._levels[self.level] = twin._env
        twin._actions = dict(self._actions)
        twin._errors = dict(self._errors)
        return twin

    def parse_action(self, text: str) -> str:
        return parse_react_action(text)

    def is_success(self, reward: float, done: bool) -> bool:
        return bool(done) and reward > 0

    def sample_action(self, rng: random.Random) -> str:
        """A random plausible action: mostly an available one, sometimes an invalid string (for benchmarks)."""
        if self._actions and rng.random() < 0.85:
            return rng.choice(list(self._actions))
        return rng.choice(["pick up red ball 1", "go to blue key 9", "toggle", "drop", "fly", "", "go through"])

    def fingerprint(self) -> tuple:
        """The state as the expert de-duplicates it: grid, pose, carried object, instruction progress."""
        env = self._env
        carrying = None if env.carrying is None else (env.carrying.type, env.carrying.color)
        objects = tuple(
            (i, o.type, o.color, getattr(o, "is_open", None), getattr(o, "is_locked", None), _contents(o))
            for i, o in enumerate(env.grid.grid)
            if o is not None and o.type != "wall"
        )
        return (
            objects,
            (int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir)),
            carrying,
            _instr_progress(getattr(env, "instrs", None)),
        )

    def close(self) -> None:
        self._levels.clear()
        self._env = None


def _contents(obj: Any) -> tuple[str, str] | None:
    inner = getattr(obj, "contains", None)
    return None if inner is None else (inner.type, inner.color)


def _instr_progress(instr: Any) -> tuple:
    """What an instruction tree remembers between steps (sequence flags, what was carried last step)."""
    if instr is None:
        return ()
    if hasattr(instr, "instr_a"):
        return (instr.a_done, instr.b_done, _instr_progress(instr.instr_a), _instr_progress(instr.instr_b))
    pre = getattr(instr, "preCarrying", None)
    return (getattr(instr, "lastStepMatch", None), None if pre is None else (pre.type, pre.color))
