"""The single-slot batch scheduling problem and its exact solvers (SPEC sections 2-3).

>>> from edgellm.dftsp import SlotInstance, evaluate, solve
"""

from edgellm.dftsp.feasibility import (
    REASON_NAMES,
    BatchEvaluation,
    Prepared,
    check_rows,
    evaluate,
    prepare,
    prepare_arrays,
)
from edgellm.dftsp.instance import (
    SCHEMA,
    Device,
    InstanceError,
    Model,
    Quant,
    Radio,
    Request,
    SlotInstance,
)
from edgellm.dftsp.solver import METHODS, Solution, solve

__all__ = [
    "SCHEMA", "METHODS", "REASON_NAMES", "BatchEvaluation", "Device", "InstanceError", "Model",
    "Prepared", "Quant", "Radio", "Request", "SlotInstance", "Solution", "check_rows",
    "check_additions", "evaluate", "prepare", "prepare_arrays", "solve",
]
