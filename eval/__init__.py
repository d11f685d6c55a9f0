"""Evaluation of schedulers against the DFTSP oracle on identical traffic (SPEC section 5).

>>> from edgellm.eval import EvalSpec, run_eval
>>> summary = run_eval(EvalSpec(scenario="default", policies=("oracle", "sjf")), "results/x")

Command line: ``edgellm eval`` and ``edgellm sweep`` (:mod:`edgellm.eval.cli`).
"""

from edgellm.eval.runner import EvalSpec, run_episode, run_eval

__all__ = ["EvalSpec", "run_episode", "run_eval"]
