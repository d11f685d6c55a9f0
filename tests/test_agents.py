"""Policies: feasibility, oracle dominance per slot, ordering rules, registry, learned loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgellm.agents import (
    HEURISTICS,
    POLICIES,
    StaticView,
    greedy_fill,
    make_policy,
    parse_policy_list,
    users_to_indices,
)
from edgellm.dftsp import solve
from edgellm.errors import EdgeLLMError
from edgellm.system import check_rows, evaluate
from edgellm.system.feasibility import OK
from edgellm.system.generate import random_instance


def random_views(n: int, seed: int = 0, kmax: int = 14):
    """Random slot states: random K, sparse user ids, arrival slots, varied systems."""
    rng = np.random.default_rng(seed)
    systems = [dict(), dict(quant="fp16"), dict(quant="w8a8", kv_cache="exact"),
               dict(objective="tokens"), dict(radio={"uplink_hz": 1e6, "downlink_hz": 1e6,
                                                     "noise_psd_w_per_hz": 10 ** (-20.5),
                                                     "en_power_w": 10.0,
                                                     "bits_per_token": 32.0})]
    for t in range(n):
        k = int(rng.integers(1, kmax + 1))
        inst = random_instance(rng, k, **systems[t % len(systems)])
        users = tuple(sorted(rng.choice(64, k, replace=False).tolist()))
        arrivals = tuple(rng.integers(0, 20, k).tolist())
        yield StaticView(inst, users=users, slot=20, request_ids=arrivals)


def value_of(view, users) -> int:
    ev = evaluate(view.prepared, users_to_indices(view, users))
    assert ev.feasible, ev.reason
    return ev.value


def test_every_policy_feasible_and_oracle_dominates():
    policies = {name: make_policy(name) for name in POLICIES}
    for view in random_views(80, seed=1):
        for p in policies.values():
            p.reset(7)
        best = value_of(view, policies["oracle"].select(view))
        assert best == solve(view.prepared, "bruteforce").value
        for name in HEURISTICS:
            batch = policies[name].select(view)
            assert set(batch) <= set(view.users), name
            assert len(set(batch)) == len(batch)
            assert value_of(view, batch) <= best, name


def test_greedy_fill_matches_one_at_a_time_greedy():
    rng = np.random.default_rng(3)
    for view in random_views(60, seed=2):
        order = rng.permutation(len(view.users))
        naive: list[int] = []
        for j in order:
            trial = np.array([naive + [int(j)]])
            if check_rows(view.prepared, trial).code[0] == OK:
                naive.append(int(j))
        assert greedy_fill(view.prepared, order) == naive


def test_heuristic_batches_are_maximal_and_respect_their_order():
    """A greedy batch cannot take one more candidate, and it holds the first candidate (in
    the policy's order) that is feasible alone."""
    for view in random_views(60, seed=4):
        p = view.prepared
        alone = check_rows(p, np.arange(len(view.users))[:, None]).code == OK
        for name in ("fcfs", "sjf", "edf", "best-channel"):
            pol = make_policy(name)
            idx = list(users_to_indices(view, pol.select(view)))
            rest = [j for j in range(len(view.users)) if j not in idx]
            if rest and idx:
                rows = np.array([idx + [j] for j in rest])
                assert not (check_rows(p, rows).code == OK).any(), name
            order = pol.order(view)
            first = next((int(j) for j in order if alone[j]), None)
            if first is not None:
                assert first in idx, name


def test_orders_follow_their_keys():
    for view in random_views(20, seed=6):
        users = np.asarray(view.users)
        sjf = make_policy("sjf").order(view)
        tok = view.prepared.prefill_tokens + view.prepared.output_tokens
        assert np.all(np.diff(tok[sjf]) >= 0)
        edf = make_policy("edf").order(view)
        dl = np.array([r.deadline_s for r in view.instance.requests])
        assert np.all(np.diff(dl[edf]) >= 0)
        fcfs = make_policy("fcfs").order(view)
        arr = np.asarray(view.request_ids)
        assert np.all(np.diff(arr[fcfs]) >= 0)
        ties = arr[fcfs][1:] == arr[fcfs][:-1]
        assert np.all(np.diff(users[fcfs])[ties] > 0)  # ties by user id
        bc = make_policy("best-channel").order(view)
        assert np.all(np.diff(view.prepared.snr_hz[bc]) <= 0)


def test_static_batch_caps_the_batch_size():
    for view in random_views(40, seed=8):
        for b in (1, 2, 3):
            batch = make_policy("static-batch", batch_size=b).select(view)
            assert len(batch) <= b
            value_of(view, batch)
    with pytest.raises(EdgeLLMError, match="batch_size"):
        make_policy("static-batch", batch_size=0)


def test_random_policy_is_seeded():
    views = list(random_views(30, seed=9))
    a, b, c = make_policy("random"), make_policy("random"), make_policy("random")
    a.reset(1), b.reset(1), c.reset(2)
    ra = [a.select(v) for v in views]
    assert ra == [b.select(v) for v in views]
    assert ra != [c.select(v) for v in views]


def test_empty_slot_gives_empty_batch():
    inst = random_instance(np.random.default_rng(0), 0)
    view = StaticView(inst)
    for name in POLICIES:
        assert make_policy(name).select(view) == ()


def test_unknown_policy_lists_valid_names():
    with pytest.raises(EdgeLLMError) as e:
        make_policy("shortest")
    for name in [*POLICIES, "learned:PATH"]:
        assert name in str(e.value)
    with pytest.raises(EdgeLLMError, match="unknown policies 'a', 'b'; valid: oracle"):
        parse_policy_list("oracle,a,b")
    assert parse_policy_list(" edf,oracle,edf ") == ["edf", "oracle"]
    with pytest.raises(EdgeLLMError, match="sidecar"):
        make_policy("learned:/nonexistent/model.zip")


# ----------------------------------------------------------------------------- learned
def _save_mlp(tmp_path, obs_dim: int, out_dim: int, mode: str, **meta):
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(obs_dim, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, out_dim))
    torch.save(net.state_dict(), tmp_path / "bc.pt")
    side = {"schema": "edgellm.policy/1", "algo": "bc", "action_mode": mode,
            "scenario": "default", "net": {"hidden": [8], "activation": "relu"}, **meta}
    (tmp_path / "bc.json").write_text(json.dumps(side))
    return net


@pytest.mark.parametrize("mode", ["sequential", "subset", "priority"])
def test_torch_mlp_loader_predicts_in_every_mode(tmp_path, mode):
    import torch

    k = 4
    net = _save_mlp(tmp_path, 10, k + 1 if mode == "sequential" else k, mode)
    pol = make_policy(f"learned:{tmp_path / 'bc.pt'}")
    assert pol.action_mode == mode
    obs = np.linspace(0, 1, 10, dtype=np.float32)
    raw = net(torch.as_tensor(obs)[None])[0].detach().numpy()
    act, _ = pol.model.predict(obs, deterministic=True,
                               action_masks=np.array([True, False, True, True, True])
                               if mode == "sequential" else None)
    if mode == "sequential":
        masked = np.where([True, False, True, True, True], raw, -np.inf)
        assert act == int(np.argmax(masked))
    elif mode == "subset":
        assert np.array_equal(act, (raw > 0).astype(np.int8))
    else:
        assert np.allclose(act, np.clip(raw, -1, 1))


def test_sidecar_errors_name_the_key(tmp_path):
    _save_mlp(tmp_path, 4, 3, "subset")
    side = tmp_path / "bc.json"
    meta = json.loads(side.read_text())
    for key, bad, msg in (("algo", "sac", "algo: must be one of"),
                          ("action_mode", "joint", "action_mode: must be one of"),
                          ("schema", "x", "schema: must be")):
        side.write_text(json.dumps({**meta, key: bad}))
        with pytest.raises(EdgeLLMError, match=msg):
            make_policy(f"learned:{side}")
    side.write_text(json.dumps({k: v for k, v in meta.items() if k != "scenario"}))
    with pytest.raises(EdgeLLMError, match="scenario: missing key"):
        make_policy(f"learned:{tmp_path / 'bc'}")
    side.write_text(json.dumps({**meta, "weights": "other.pt"}))
    with pytest.raises(EdgeLLMError, match="not found"):
        make_policy(f"learned:{side}")


def test_oracle_time_limit():
    """A limited oracle serves feasible batches, never above the optimum, and says whether
    it proved them optimal; with a generous limit it serves the exact oracle's batches."""
    exact, quick, ample = (make_policy("oracle"), make_policy("oracle", time_limit=1e-9),
                           make_policy("oracle", time_limit=60.0))
    for view in random_views(30, seed=5, kmax=40):
        best = exact.select(view)
        b = quick.select(view)
        assert value_of(view, b) <= value_of(view, best)
        assert quick.last.status in ("optimal", "time_limit")
        assert quick.last.upper_bound >= value_of(view, best)
        assert ample.select(view) == best and ample.last.status == "optimal"
