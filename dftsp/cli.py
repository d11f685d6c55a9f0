"""``edgellm solve``: solve one slot instance file and print the solution as JSON."""

from __future__ import annotations

import json

import numpy as np

from edgellm.dftsp.solver import METHODS, solve
from edgellm.system.instance import SlotInstance


def example_instance(n: int = 8, seed: int = 0) -> SlotInstance:
    """A valid instance on catalog profiles to start from (``edgellm solve --example``)."""
    from edgellm.system.generate import random_instance

    return random_instance(np.random.default_rng(seed), n)


def _run(args) -> int:
    if args.example:
        print(example_instance(args.n, args.seed).to_json())
        return 0
    if args.file is None:
        from edgellm.errors import EdgeLLMError

        raise EdgeLLMError("solve: give an instance FILE.json, or --example to print one")
    sol = solve(SlotInstance.from_json(args.file), method=args.method)
    print(json.dumps(sol.to_dict(), indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("solve", help="solve a slot instance exactly (DFTSP or brute force)",
                       description="Solve one slot instance file (schema "
                                   "edgellm.slot-instance/2, or /1) and print the optimal "
                                   "batch with its evaluation as JSON.")
    p.add_argument("file", nargs="?", help="instance JSON file")
    p.add_argument("--method", choices=METHODS, default="dftsp")
    p.add_argument("--example", action="store_true",
                   help="print a valid example instance and exit")
    p.add_argument("--n", type=int, default=8, help="requests in the --example instance")
    p.add_argument("--seed", type=int, default=0, help="seed of the --example instance")
    p.set_defaults(func=_run)
