"""The system model (SPEC section 2): slot instances, the cited catalog, the roofline cost
model, Shannon-rate radio, channels, workloads, and batch feasibility with bandwidth
allocation. Every other package (the solver, the environment, the agents) computes costs
through this one model.

>>> from edgellm.system import SlotInstance, evaluate, catalog
"""

from edgellm.system.feasibility import (
    REASON_NAMES,
    BatchEvaluation,
    Prepared,
    check_additions,
    check_rows,
    evaluate,
    prepare,
    prepare_arrays,
)
from edgellm.system.instance import (
    SCHEMA,
    Device,
    InstanceError,
    Model,
    Quant,
    Radio,
    Request,
    SlotInstance,
)

__all__ = [
    "SCHEMA", "REASON_NAMES", "BatchEvaluation", "Device", "InstanceError", "Model",
    "Prepared", "Quant", "Radio", "Request", "SlotInstance", "check_additions", "check_rows",
    "evaluate", "prepare", "prepare_arrays",
]
