"""Open env instances: single envs, vector envs, and the registry that caps
and reaps them.

Each instance has its own lock, so the threaded HTTP server may serve many
instances at once while one instance's calls stay in order.
"""

from __future__ import annotations

import math
import secrets
import sys
import threading
import time
from typing import Any, Callable

import gymnasium as gym

from rl_lab_env import spaces as wire
from rl_lab_env.errors import ActionError, BadRequest, EnvError, NotFound, TooManyInstances, UnknownInstance

#: A vector instance's copies all live in this process; this bounds the memory
#: one request can claim.
MAX_VECTOR_COPIES = 4096


class EnvFactory:
    """Makes the one env this adapter serves, under the name it serves it by."""

    def __init__(self, env_id: str, make: Callable[..., gym.Env], kwargs: dict):
        self.env_id = env_id
        self._make = make
        self._kwargs = kwargs

    def make(self, kwargs: dict | None = None) -> gym.Env:
        """A new env; the request's `kwargs` are merged over the adapter's."""
        merged = {**self._kwargs, **(kwargs or {})}
        try:
            env = self._make(**merged)
        except Exception as error:
            if kwargs:
                raise BadRequest(
                    f"could not make {self.env_id} with kwargs {merged}: {type(error).__name__}: {error}"
                ) from error
            raise
        if not isinstance(env, gym.Env):
            raise EnvError(f"making {self.env_id} returned {type(env).__name__}, not a gymnasium.Env")
        return env


def _seed(value: Any, field: str = "seed") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{field} must be a non-negative integer or null, not {value!r}")
    return value


def _options(value: Any) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"options must be an object or null, not {value!r}")
    return value


def _finite_reward(reward: Any) -> float:
    reward = float(reward)
    if not math.isfinite(reward):
        raise _non_finite_reward(reward)
    return reward


def _non_finite_reward(reward: float) -> EnvError:
    return EnvError(f"the env returned a non-finite reward ({reward}); the protocol carries finite rewards only")


class _Open:
    """What the registry keeps for any open instance: its id, its lock, when
    it was last used, and the wire forms of its env's spaces."""

    def __init__(self, instance_id: str, env_id: str, first_env: gym.Env, seed: int | None):
        self.instance_id = instance_id
        self.env_id = env_id
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.closed = False
        # gym-http-api takes a seed when the env is made; Gymnasium seeds on
        # reset, so the seed waits for the first reset that brings none.
        self._pending_seed = seed
        self._encode_observation = wire.value_encoder(first_env.observation_space)
        self._decode_action = wire.action_decoder(first_env.action_space)

    def _reset_arguments(self, seed: Any, options: Any) -> tuple[int | None, dict | None]:
        """The checked seed (or the one given at open, once) and options."""
        seed, options = _seed(seed), _options(options)
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        return seed, options


class Instance(_Open):
    """One env behind `/v1/envs/{id}/`."""

    def __init__(self, instance_id: str, env_id: str, env: gym.Env, seed: int | None):
        super().__init__(instance_id, env_id, env, seed)
        self.env = env
        self._model: dict | None = None

    def describe(self) -> dict:
        spec = self.env.spec
        return {
            "instance_id": self.instance_id,
            "env_id": self.env_id,
            "observation_space": wire.describe(self.env.observation_space),
            "action_space": wire.describe(self.env.action_space),
            "max_episode_steps": spec.max_episode_steps if spec is not None else None,
            "has_model": hasattr(self.env.unwrapped, "P"),
        }

    def reset(self, seed: Any, options: Any) -> dict:
        seed, options = self._reset_arguments(seed, options)
        observation, info = self.env.reset(seed=seed, options=options)
        return {"observation": self._encode_observation(observation), "info": wire.plain_json(info)}

    def step(self, action: Any) -> dict:
        observation, reward, terminated, truncated, info = self.env.step(self._decode_action(action))
        terminated, truncated = bool(terminated), bool(truncated)
        return {
            "observation": self._encode_observation(observation),
            "reward": _finite_reward(reward),
            "terminated": terminated,
            "truncated": truncated,
            "done": terminated or truncated,
            "info": wire.plain_json(info) if info else {},
        }

    def sample_action(self) -> Any:
        return wire.value_encoder(self.env.action_space)(self.env.action_space.sample())

    def contains_action(self, action: Any) -> bool:
        try:
            self._decode_action(action)
        except BadRequest:
            return False
        return True

    def model(self) -> dict:
        """Gymnasium's `P[s][a] = [(p, s', r, terminated)]`, as plain JSON.

        Written once per instance: the model can depend on the env's kwargs
        (a map, slipperiness) but not on its state.
        """
        if self._model is None:
            self._model = _model_of(self.env, self.env_id)
        return self._model

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _close_quietly(self.env)


def _model_of(env: gym.Env, env_id: str) -> dict:
    """`env.unwrapped.P` as the model route's plain JSON."""
    transitions = getattr(env.unwrapped, "P", None)
    if transitions is None:
        raise NotFound(f"{env_id} has no model: its env has no `P` attribute")
    n_states = len(transitions)
    n_actions = len(transitions[0])
    return {
        "n_states": n_states,
        "n_actions": n_actions,
        "transitions": [
            [
                [[float(p), int(next_state), float(reward), bool(terminated)]
                 for p, next_state, reward, terminated in transitions[state][action]]
                for action in range(n_actions)
            ]
            for state in range(n_states)
        ],
    }


def _flags(value: Any, field: str, length: int) -> list[bool] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != length or not all(isinstance(flag, bool) for flag in value):
        raise BadRequest(f"{field} must be a list of {length} booleans, one per copy, not {value!r}")
    return value


def _seeds(value: Any, field: str, length: int) -> list[int | None] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != length:
        raise BadRequest(f"{field} must be a list of {length} seeds (integers or null), one per copy, not {value!r}")
    return [_seed(seed, f"{field}[{index}]") for index, seed in enumerate(value)]


class VectorInstance(_Open):
    """N copies of the env behind `/v1/vector-envs/{id}`, stepped by one call.

    It does what Gymnasium's `SyncVectorEnv` does in its default NEXT_STEP
    autoreset mode, copy by copy, but writes each copy's observation and info
    apart, so a client reads the single env's form N times.
    """

    def __init__(
        self,
        instance_id: str,
        env_id: str,
        envs: list[gym.Env],
        seed: int | None,
        batched: bool = False,
        autoreset: bool = True,
    ):
        super().__init__(instance_id, env_id, envs[0], seed)
        self.envs = envs
        self.batched = batched
        self.autoreset = autoreset
        self._ended = [False] * len(envs)
        self._model: dict | None = None
        encoder = wire.batched_encoder if batched else wire.batch_encoder
        self._encode_observations = encoder(envs[0].observation_space)
        self._decode_actions = wire.actions_decoder(envs[0].action_space)

    def describe(self) -> dict:
        return {
            "instance_id": self.instance_id,
            "env_id": self.env_id,
            "num_envs": len(self.envs),
            "batched": self.batched,
            "autoreset": self.autoreset,
            "observation_space": wire.describe(self.envs[0].observation_space),
            "action_space": wire.describe(self.envs[0].action_space),
            "has_model": hasattr(self.envs[0].unwrapped, "P"),
        }

    def model(self) -> dict:
        """The copies' model (one env id and kwargs: one model), as the
        single instance's model route gives it."""
        if self._model is None:
            self._model = _model_of(self.envs[0], self.env_id)
        return self._model

    def reset(self, seed: Any, options: Any, seeds: Any = None) -> dict:
        """Resets every copy: copy i with `seeds[i]` when a list is given
        (a training loop's per-copy episode seeds), else with `seed + i`, as
        Gymnasium's vector envs do."""
        per_copy = _seeds(seeds, "seeds", len(self.envs))
        if per_copy is not None and seed is not None:
            raise BadRequest("give seed or seeds, not both")
        seed, options = self._reset_arguments(seed, options)
        if per_copy is None:
            per_copy = [None if seed is None else seed + index for index in range(len(self.envs))]
        observations, infos = [], []
        for env, copy_seed in zip(self.envs, per_copy):
            observation, info = env.reset(seed=copy_seed, options=options)
            observations.append(observation)
            infos.append(wire.plain_json(info))
        self._ended = [False] * len(self.envs)
        return {"observations": self._encode_observations(observations), "infos": infos}

    def step(self, actions: Any, resets: Any = None, seeds: Any = None) -> dict:
        """One step of every copy; a copy that resets instead ignores its
        action (which may be null) and reports `autoreset: true`.

        With autoreset (the default) a copy resets when its episode ended on
        the last call; without it, exactly when `resets[i]` is true, and
        stepping a copy whose episode ended is refused. `seeds[i]` seeds copy
        i's reset in this call, if it resets.

        The per-copy work is the env's step alone: the results are gathered
        as they come and turned column by column (rewards, flags, infos) by
        one C-level pass each, since a vector step's cost beyond its envs'
        is what the protocol's speed goal measures.
        """
        n = len(self.envs)
        if not isinstance(actions, list) or len(actions) != n:
            raise BadRequest(f"actions must be a list of {n} actions, one per copy")
        asked = _flags(resets, "resets", n)
        reset_seeds = _seeds(seeds, "seeds", n)
        if self.autoreset:
            autoreset = self._ended if asked is None else [e or r for e, r in zip(self._ended, asked)]
        else:
            autoreset = asked if asked is not None else [False] * n
            for index, (ended, resetting) in enumerate(zip(self._ended, autoreset)):
                if ended and not resetting:
                    raise BadRequest(
                        f"resets[{index}]: copy {index}'s episode has ended and this vector does not "
                        f"autoreset; reset it with resets[{index}]: true"
                    )
        if any(autoreset):
            decoded = [None if resetting else self._decode_action_of(index, action)
                       for index, (action, resetting) in enumerate(zip(actions, autoreset))]
        else:
            decoded = self._decode_actions(actions)
        results = [
            _autoreset(env, None if reset_seeds is None else reset_seeds[index]) if resetting else env.step(action)
            for index, (env, action, resetting) in enumerate(zip(self.envs, decoded, autoreset))
        ]
        observations, rewards, terminated, truncated, infos = zip(*results)
        rewards = list(map(float, rewards))
        if not all(map(math.isfinite, rewards)):
            raise _non_finite_reward(next(reward for reward in rewards if not math.isfinite(reward)))
        terminated, truncated = list(map(bool, terminated)), list(map(bool, truncated))
        # A new list each step, never changed in place, so the reply may hold
        # it (and the last one) while the next step runs.
        self._ended = [ended or cut for ended, cut in zip(terminated, truncated)]
        return {
            "observations": self._encode_observations(observations),
            "rewards": rewards,
            "terminated": terminated,
            "truncated": truncated,
            "dones": self._ended,
            "autoreset": autoreset,
            # Most envs' infos are all empty: one check instead of N calls.
            "infos": list(map(wire.plain_json, infos)) if any(infos) else [{}] * len(infos),
        }

    def _decode_action_of(self, index: int, action: Any) -> Any:
        try:
            return self._decode_action(action)
        except BadRequest as error:
            raise ActionError(f"actions[{index}]: {error.message}") from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for env in self.envs:
                _close_quietly(env)


def _autoreset(env: gym.Env, seed: int | None) -> tuple:
    """NEXT_STEP autoreset: a copy whose episode ended ignores this step's
    action and is reset, reporting reward 0 and neither flag."""
    observation, info = env.reset(seed=seed)
    return observation, 0.0, False, False, info


def _close_quietly(env: gym.Env) -> None:
    # A close that fails must not keep the others open nor fail a DELETE.
    try:
        env.close()
    except Exception as error:  # noqa: BLE001 - the user's env may raise anything
        print(f"rl_lab_env: closing an env raised {type(error).__name__}: {error}", file=sys.stderr)


class Registry:
    """The open instances: at most `max_instances`, each closed once it has
    been idle for `idle_timeout` seconds (on access, and by a reaper thread)."""

    def __init__(self, factory: EnvFactory, max_instances: int, idle_timeout: float):
        self.factory = factory
        self.max_instances = max_instances
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        # An id maps to None while its env is being made (outside the lock,
        # since making an env can be slow), so the slot counts toward the cap.
        self._instances: dict[str, Instance | VectorInstance | None] = {}

    # -- opening

    def open_env(self, env_id: Any, seed: Any, kwargs: Any) -> Instance:
        seed, kwargs = self._check_open(env_id, seed, kwargs)
        return self._open(lambda instance_id: Instance(instance_id, self.factory.env_id, self.factory.make(kwargs), seed))

    def open_vector(
        self, env_id: Any, num_envs: Any, seed: Any, kwargs: Any, batched: Any = None, autoreset: Any = None
    ) -> VectorInstance:
        seed, kwargs = self._check_open(env_id, seed, kwargs)
        if batched is not None and not isinstance(batched, bool):
            raise BadRequest(f"batched must be true or false, not {batched!r}")
        if autoreset is not None and not isinstance(autoreset, bool):
            raise BadRequest(f"autoreset must be true or false, not {autoreset!r}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or not 1 <= num_envs <= MAX_VECTOR_COPIES:
            raise BadRequest(f"num_envs must be an integer from 1 to {MAX_VECTOR_COPIES}, not {num_envs!r}")

        def make(instance_id: str) -> VectorInstance:
            envs: list[gym.Env] = []
            try:
                for _ in range(num_envs):
                    envs.append(self.factory.make(kwargs))
            except BaseException:
                for env in envs:
                    _close_quietly(env)
                raise
            return VectorInstance(
                instance_id, self.factory.env_id, envs, seed, bool(batched), autoreset is not False
            )

        return self._open(make)

    def _check_open(self, env_id: Any, seed: Any, kwargs: Any) -> tuple[int | None, dict | None]:
        if env_id is None or env_id == "":
            raise BadRequest("A required request parameter 'env_id' was not provided")
        if env_id != self.factory.env_id:
            raise BadRequest(
                f"env_id {env_id!r} is not served here: this adapter serves {self.factory.env_id!r} "
                "(start one adapter per env)"
            )
        if kwargs is not None and not isinstance(kwargs, dict):
            raise BadRequest(f"kwargs must be an object, not {kwargs!r}")
        return _seed(seed), kwargs

    def _open(self, make: Callable[[str], Any]) -> Any:
        self.reap()
        with self._lock:
            if len(self._instances) >= self.max_instances:
                raise TooManyInstances(
                    f"too many open environment instances: {self.max_instances} are open "
                    "(--max-instances); close one first"
                )
            instance_id = self._new_id()
            self._instances[instance_id] = None
        try:
            instance = make(instance_id)
        except BaseException:
            with self._lock:
                del self._instances[instance_id]
            raise
        with self._lock:
            self._instances[instance_id] = instance
        return instance

    def _new_id(self) -> str:
        while True:
            instance_id = secrets.token_hex(4)
            if instance_id not in self._instances:
                return instance_id

    # -- using

    def run(self, instance_id: str, kind: type, call: Callable[[Any], Any]) -> Any:
        """``call(instance)`` on the open instance of that kind, marked used
        now and held locked meanwhile.

        An instance idle past the timeout is closed here rather than served,
        so whether it answers does not hang on the reaper's timing. A plain
        call rather than a context manager: every step passes here.
        """
        now = time.monotonic()
        with self._lock:
            instance = self._instances.get(instance_id)
            if not isinstance(instance, kind):
                raise UnknownInstance(instance_id)
            expired = now - instance.last_used > self.idle_timeout
            if expired:
                del self._instances[instance_id]
            else:
                instance.last_used = now
        with instance.lock:
            if expired:
                instance.close()
            # Closed by a DELETE or the reaper while this call waited for it.
            if instance.closed:
                raise UnknownInstance(instance_id)
            return call(instance)

    def list_envs(self) -> dict[str, str]:
        with self._lock:
            return {key: instance.env_id for key, instance in self._instances.items() if isinstance(instance, Instance)}

    # -- closing

    def close(self, instance_id: str, kind: type) -> None:
        with self._lock:
            instance = self._instances.get(instance_id)
            if not isinstance(instance, kind):
                raise UnknownInstance(instance_id)
            del self._instances[instance_id]
        with instance.lock:
            instance.close()

    def reap(self) -> int:
        """Closes the instances idle past the timeout; returns how many."""
        now = time.monotonic()
        with self._lock:
            idle = [key for key, instance in self._instances.items()
                    if instance is not None and now - instance.last_used > self.idle_timeout]
            reaped = [self._instances.pop(key) for key in idle]
        for instance in reaped:
            with instance.lock:
                instance.close()
        return len(reaped)

    def close_all(self) -> None:
        with self._lock:
            instances = [instance for instance in self._instances.values() if instance is not None]
            self._instances.clear()
        for instance in instances:
            # A call stuck in a step must not keep the adapter from stopping.
            locked = instance.lock.acquire(timeout=5.0)
            try:
                instance.close()
            finally:
                if locked:
                    instance.lock.release()

    def start_reaper(self, stop: threading.Event) -> threading.Thread:
        """A daemon thread that reaps idle instances until `stop` is set, so
        an abandoned instance is freed even when nobody calls again."""
        interval = max(0.05, min(self.idle_timeout / 4, 30.0))

        def run() -> None:
            while not stop.wait(interval):
                self.reap()

        thread = threading.Thread(target=run, name="rl-lab-env-reaper", daemon=True)
        thread.start()
        return thread
