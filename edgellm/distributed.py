"""Ray, the optional scale-out backend (``pip install 'edgellm-gym[ray]'``).

* :func:`import_ray` gives the ``ray`` module or one :class:`EdgeLLMError` saying which
  extra to install;
* :func:`init` starts a local Ray sized for this machine (``num_cpus`` = its cores, so
  nothing waits for CPUs that do not exist) or joins a cluster (``address``, e.g.
  ``"auto"`` or ``"ray://head:10001"``); a second call reuses the running Ray;
* :func:`warm_up` loads the compiled kernels in a fresh worker (numba caches them on disk,
  ``cache=True``, so a worker loads rather than recompiles) before timing starts;
* :func:`gather` waits for Ray object refs in completion order and turns an error raised
  inside a worker into one :class:`EdgeLLMError` naming the task.

Workers import ``edgellm`` by module name, so the package must be installed (same
version) on every node of a cluster, and any ``learned:PATH`` must be readable there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from edgellm.errors import EdgeLLMError

BACKENDS = ("local", "ray")
EXTRA_HINT = "pip install 'edgellm-gym[ray]'"


def import_ray(what: str = "--backend ray"):
    """The ``ray`` module, or EdgeLLMError when the ``[ray]`` extra is missing."""
    try:
        import ray
    except ImportError:
        raise EdgeLLMError(f"{what} needs Ray, which is not installed: {EXTRA_HINT}") \
            from None
    return ray


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EdgeLLMError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")


def init(address: str | None = None, num_cpus: int | None = None, what: str = "--backend ray"):
    """Start (or join, or reuse) Ray; return the module."""
    ray = import_ray(what)
    if ray.is_initialized():
        return ray
    kw: dict = {"include_dashboard": False, "logging_level": "ERROR",
                "log_to_driver": False}
    if address:
        kw["address"] = address
    else:
        kw["num_cpus"] = int(num_cpus or os.cpu_count() or 1)
    try:
        ray.init(**kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the cluster at {address}" if address else "a local Ray"
        raise EdgeLLMError(f"--ray-address: cannot start or reach {where} ({e})") from None
    return ray


_WARM: set = set()


def warm_up(cfg) -> None:
    """Run the env and the solver once in this process (loads numba's cached kernels)."""
    key = id(type(cfg)), getattr(cfg, "n_users", 0)
    if key in _WARM:
        return
    from edgellm.dftsp.solver import solve
    from edgellm.envs import EdgeLLMEnv

    env = EdgeLLMEnv(cfg, action_mode="subset")
    env.reset(seed=0)
    solve(env.slot_view().prepared)
    env.step(env.action_space.sample() * 0)
    _WARM.add(key)


def gather(ray, refs: dict, describe: Callable[[object], str]) -> Iterator[tuple[object, object]]:
    """Yield ``(key, result)`` for ``refs`` (key -> ObjectRef) as tasks finish. An error in a
    task cancels the others and raises one EdgeLLMError: ``describe(key)`` and the cause."""
    pending = {ref: key for key, ref in refs.items()}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            try:
                yield key, ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise EdgeLLMError(f"{describe(key)} failed in a Ray worker: "
                                   f"{type(cause).__name__}: {cause}") from None
            except ray.exceptions.RayError as e:
                raise EdgeLLMError(f"{describe(key)}: Ray error: {type(e).__name__}: {e}") \
                    from None
    finally:
        for ref in pending:
            ray.cancel(ref)
