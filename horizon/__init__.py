"""Hindsight bounds of whole episodes (SPEC section 7, docs/model.md "The horizon problem").

>>> from edgellm.horizon import bound
>>> res = bound("default", seed=0, slots=100, time_limit=120)
>>> res.upper_bound, res.lower_bound, res.gap, res.status

``upper_bound``: no policy serves more in those slots; ``lower_bound``: the value of
``res.schedule``, which replays in the env to exactly that value. ``exact_optimum`` solves
tiny episodes exactly (a reference for tests).
"""

from edgellm.horizon.bound import BoundResult, bound, replay
from edgellm.horizon.exact import exact_optimum

__all__ = ["BoundResult", "bound", "exact_optimum", "replay"]
