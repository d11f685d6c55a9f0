"""Slot instance files: JSON round trip and one clear error per schema violation (SPEC 2.5)."""

from __future__ import annotations

import copy
import json
import math

import pytest

from edgellm.dftsp.cli import example_instance
from edgellm.system import InstanceError, SlotInstance


@pytest.fixture
def doc():
    return example_instance(5, seed=3).to_dict()


def test_json_round_trip(tmp_path, doc):
    inst = SlotInstance.from_dict(doc)
    path = tmp_path / "inst.json"
    inst.to_json(path)
    back = SlotInstance.from_json(path)
    assert back == inst
    assert back.to_dict() == doc
    assert json.loads(path.read_text())["schema"] == "edgellm.slot-instance/2"


def _broken(doc, path, value=None, delete=False):
    d = copy.deepcopy(doc)
    *head, last = path
    node = d
    for k in head:
        node = node[k]
    if delete:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("path,value,delete,named", [
    (("model", "n_layers"), None, True, "model.n_layers: missing key"),
    (("requests", 2, "deadline_s"), None, True, "requests[2].deadline_s: missing key"),
    (("slot_s",), None, True, "slot_s: missing key"),
    (("model", "d_model"), "4096", False, "model.d_model"),
    (("model", "n_layers"), 3.5, False, "model.n_layers"),
    (("requests", 0, "prompt_tokens"), True, False, "requests[0].prompt_tokens"),
    (("requests", 1, "deadline_s"), -1.0, False, "requests[1].deadline_s"),
    (("requests", 1, "ppl_tolerance"), -0.1, False, "requests[1].ppl_tolerance"),
    (("radio", "uplink_hz"), -5.0, False, "radio.uplink_hz"),
    (("radio", "noise_psd_w_per_hz"), math.nan, False, "radio.noise_psd_w_per_hz"),
    (("device", "mem_bandwidth"), math.inf, False, "device.mem_bandwidth"),
    (("device", "compute_efficiency"), 1.5, False, "device.compute_efficiency"),
    (("quant", "compute"), "fp13", False, "quant.compute"),
    (("device", "peak_flops"), {"fp64": 1e12}, False, "device.peak_flops"),
    (("quant", "compute"), "int8", False, "quant.compute"),  # device lacks an int8 peak
    (("kv_cache",), "paged", False, "kv_cache"),
    (("objective",), "latency", False, "objective"),
    (("schema",), "edgellm.slot-instance/3", False, "schema"),
    (("requests",), {"a": 1}, False, "requests"),
    (("model", "n_kv_heads"), 5, False, "model.n_kv_heads"),
    (("device", "reserved_bytes"), 1e15, False, "device.reserved_bytes"),
    (("model", "extra"), 1, False, "model.extra: unknown key"),
])
def test_schema_violations_name_the_key(doc, path, value, delete, named):
    if path == ("quant", "compute") and value == "int8":
        doc["device"]["peak_flops"] = {"fp16": 1e14}
    with pytest.raises(InstanceError) as err:
        SlotInstance.from_dict(_broken(doc, path, value, delete))
    assert named in str(err.value)


def test_empty_model_names_a_key(doc):
    doc["model"] = {}
    with pytest.raises(InstanceError, match=r"^model\.name: missing key"):
        SlotInstance.from_dict(doc)


def test_errors_are_single_line_and_name_the_file(tmp_path, doc):
    doc["requests"][0]["output_tokens"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InstanceError) as err:
        SlotInstance.from_json(path)
    msg = str(err.value)
    assert str(path) in msg and "requests[0].output_tokens" in msg and "\n" not in msg
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(InstanceError, match="junk.json: not valid JSON"):
        SlotInstance.from_json(tmp_path / "junk.json")
    with pytest.raises(InstanceError, match="cannot read"):
        SlotInstance.from_json(tmp_path / "missing.json")


def test_integral_floats_accepted_for_counts(doc):
    doc["model"]["n_layers"] = 32.0
    assert SlotInstance.from_dict(doc).model.n_layers == 32


def test_optional_weight_and_noise_keys(doc):
    # catalog instances carry the optional keys and round-trip them
    assert doc["model"]["vocab_size"] == 32000 and doc["model"]["tied_embeddings"] is False
    assert doc["quant"]["covers"] == "blocks" and doc["quant"]["group_size"] == 128
    assert SlotInstance.from_dict(doc).to_dict() == doc
    # a version-0.1 file (no optional keys) keeps W = P * weight_bits / 8 and P
    from edgellm.system.feasibility import prepare

    old = copy.deepcopy(doc)
    for k in ("vocab_size", "tied_embeddings"):
        del old["model"][k]
    for k in ("covers", "group_size", "scale_bits", "zero_bits"):
        old["quant"].pop(k, None)
    inst = SlotInstance.from_dict(old)
    assert inst.to_dict() == old
    p = prepare(inst)
    assert p.weight_bytes == old["model"]["n_params"] * old["quant"]["weight_bits"] / 8
    assert p.n_params == old["model"]["n_params"]
    # per-link noise: the legacy key means both links; each link may override it
    assert (inst.radio.uplink_noise, inst.radio.downlink_noise) == (
        old["radio"]["noise_psd_w_per_hz"],) * 2
    old["radio"]["uplink_noise_psd_w_per_hz"] = 1e-21
    assert SlotInstance.from_dict(old).radio.uplink_noise == 1e-21


@pytest.mark.parametrize("part, key, value, named", [
    ("model", "vocab_size", 0, "model.vocab_size"),
    ("model", "tied_embeddings", "yes", "model.tied_embeddings"),
    ("quant", "covers", "embeddings", "quant.covers"),
    ("quant", "group_size", -1, "quant.group_size"),
    ("quant", "zero_bits", math.inf, "quant.zero_bits"),
    ("radio", "downlink_noise_psd_w_per_hz", -1.0, "radio.downlink_noise_psd_w_per_hz"),
])
def test_optional_keys_are_validated(doc, part, key, value, named):
    doc[part][key] = value
    with pytest.raises(InstanceError, match=named):
        SlotInstance.from_dict(doc)


def test_blocks_only_quant_needs_a_vocabulary(doc):
    del doc["model"]["vocab_size"]
    with pytest.raises(InstanceError, match="vocab_size"):
        SlotInstance.from_dict(doc)  # the pair is incomplete
    del doc["model"]["tied_embeddings"]
    with pytest.raises(InstanceError, match=r"model\.vocab_size: missing key"):
        SlotInstance.from_dict(doc)  # covers 'blocks' needs it
