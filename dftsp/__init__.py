"""The exact per-slot solvers (SPEC section 3): DFTSP and brute force.

The slot problem itself (instances, cost model, feasibility) lives in :mod:`edgellm.system`;
its stable entry points are re-exported here so that the SPEC's API works as written:

>>> from edgellm.dftsp import SlotInstance, evaluate, solve
"""

from edgellm.dftsp.solver import METHODS, ORACLE_NODE_LIMIT, Solution, solve
from edgellm.system import BatchEvaluation, InstanceError, SlotInstance, evaluate

__all__ = [
    "METHODS", "ORACLE_NODE_LIMIT", "BatchEvaluation", "InstanceError", "SlotInstance", "Solution",
    "evaluate", "solve",
]
