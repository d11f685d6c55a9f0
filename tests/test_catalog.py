"""Every catalog number carries a source; every catalog combination builds a valid instance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgellm.dftsp import solve
from edgellm.system import InstanceError, catalog, evaluate
from edgellm.system.catalog import DEFAULT_RADIO, RADIO_SOURCES


def _numeric_keys(entry: dict, prefix=""):
    for k, v in entry.items():
        if k == "sources":
            continue
        if isinstance(v, dict):
            yield from _numeric_keys(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield f"{prefix}{k}"


@pytest.mark.parametrize("table,section", [("models", "models"), ("devices", "devices"),
                                           ("quantization", "schemes"),
                                           ("quantization", "perplexity"),
                                           ("workloads", "traces")])
def test_every_number_has_a_source(table, section):
    entries = catalog._load(table)[section]
    assert entries
    for name, entry in entries.items():
        sources = entry.get("sources", {})
        for key in _numeric_keys(entry):
            assert isinstance(sources.get(key), str) and len(sources[key]) > 10, (name, key)
    assert set(RADIO_SOURCES) == set(DEFAULT_RADIO)


def test_catalog_has_required_breadth():
    models = [catalog.model(m) for m in catalog.models()]
    assert len(models) >= 3 and any(m.n_kv_heads < m.n_heads for m in models)
    assert len(catalog.devices()) >= 3
    assert {"fp16", "w8a8", "w4a16"} <= set(catalog.quantizations())


def test_quantization_costs_perplexity_and_saves_bytes():
    fp16, w8, w4 = (catalog.quant(q, "llama-2-7b") for q in ("fp16", "w8a8", "w4a16"))
    assert fp16.ppl_increase == 0 < w8.ppl_increase < w4.ppl_increase
    assert w4.weight_bits < w8.weight_bits < fp16.weight_bits


def test_every_published_combination_solves():
    rng = np.random.default_rng(0)
    from edgellm.system.generate import random_requests

    reqs = random_requests(rng, 6)
    built = served = 0
    for m, q, d in itertools.product(catalog.models(), catalog.quantizations(), catalog.devices()):
        try:
            inst = catalog.build_instance(m, q, d, reqs)
        except InstanceError as e:
            assert "no published perplexity" in str(e) or "peak_flops" in str(e)
            continue
        built += 1
        sol = solve(inst)
        # the solution is feasible, worth what it claims, and at least the best singleton
        ev = evaluate(inst, sol.batch)
        assert ev.feasible and ev.value == sol.value
        alone = [evaluate(inst, [k]).value for k in range(len(reqs))]
        assert sol.value >= max(alone)
        served += sol.value > 0
    assert built >= 40 and served >= built // 2


def test_unknown_names_list_the_known_ones():
    with pytest.raises(InstanceError, match="unknown model 'gpt-5'.*llama-2-7b"):
        catalog.model("gpt-5")
    with pytest.raises(InstanceError, match="radio.bandwidth: unknown key"):
        catalog.build_instance("llama-2-7b", "fp16", "l4", radio={"bandwidth": 1})
