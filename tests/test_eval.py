"""Eval on the env: fairness, determinism, resume, errors, files, CLI, sweep."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgellm.agents import POLICIES, make_policy, users_to_indices
from edgellm.cli import main
from edgellm.dftsp import solve
from edgellm.envs import SCENARIOS, EdgeLLMEnv
from edgellm.errors import EdgeLLMError
from edgellm.eval.report import TIMING_COLUMNS
from edgellm.eval.runner import EvalSpec, OptimumCache, run_episode, run_eval, scenario_config
from edgellm.eval.sweep import SweepSpec, run_sweep
from edgellm.system import evaluate

SMALL = {"n_users": 6}
ALL = tuple(POLICIES)


def spec(**kw) -> EvalSpec:
    base = dict(scenario="default", policies=("oracle", "fcfs", "edf", "random"), episodes=2,
                seed=3, slots=6, overrides=SMALL)
    return EvalSpec(**{**base, **kw})


def rows_without_timing(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS}
                for r in csv.DictReader(f)]


def deterministic_json(path: Path) -> dict:
    d = json.loads(path.read_text())
    d.pop("timing")
    return d


# ----------------------------------------------------------------------------- fairness
@pytest.mark.parametrize("scenario", ["default", "paper", "memory-tight"])
def test_on_env_states_oracle_dominates_and_every_batch_is_feasible(scenario):
    """On the states an FCFS run visits, every policy's batch is feasible and the oracle's
    value is never below any heuristic's."""
    env = EdgeLLMEnv(scenario, n_users=10, max_slots=12)
    env.reset(seed=11)
    policies = {n: make_policy(n) for n in ALL}
    for p in policies.values():
        p.reset(5)
    driver = make_policy("fcfs")
    done = False
    while not done:
        view = env.unwrapped.slot_view()
        best = solve(view.prepared).value
        for name, pol in policies.items():
            ev = evaluate(view.prepared, users_to_indices(view, pol.select(view)))
            assert ev.feasible, (name, ev.reason)
            assert ev.value <= best, name
            if name == "oracle":
                assert ev.value == best
        done = driver.play_slot(env, None).truncated


def test_regret_is_zero_for_the_oracle_and_never_negative():
    cfg = scenario_config(spec())
    for name in ALL:
        rec = run_episode(make_policy(name), cfg, seed=1, action_mode="subset",
                          optimum=OptimumCache())
        ps = rec["per_slot"]
        regret = np.subtract(ps["opt_value"], ps["value"])
        assert (regret >= 0).all(), name
        assert rec["invalid_actions"] == 0 and rec["repaired"] == 0, name
        if name == "oracle":
            assert not regret.any()


def test_state_policies_act_identically_in_every_action_mode():
    cfg = scenario_config(spec())
    for name in ("edf", "random", "oracle"):
        runs = {mode: run_episode(make_policy(name), cfg, seed=2, action_mode=mode)
                for mode in ("subset", "sequential", "priority")}
        values = {m: r["per_slot"]["value"] for m, r in runs.items()}
        assert values["subset"] == values["sequential"] == values["priority"], name
        assert all(r["invalid_actions"] == 0 for r in runs.values())


def test_all_policies_face_identical_traffic():
    """Common random numbers: the first slot's candidates are the same for every policy,
    and the oracle's optimum there too."""
    cfg = scenario_config(spec())
    first = {n: run_episode(make_policy(n), cfg, seed=4, action_mode="subset")
             for n in ("fcfs", "sjf")}
    a, b = first["fcfs"]["per_slot"], first["sjf"]["per_slot"]
    assert a["candidates"][0] == b["candidates"][0]


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_tables(tmp_path):
    s1 = run_eval(spec(), tmp_path / "a", progress=False, plots=False)
    s2 = run_eval(spec(), tmp_path / "b", progress=False, plots=False)
    assert rows_without_timing(tmp_path / "a/summary.csv") == \
        rows_without_timing(tmp_path / "b/summary.csv")
    assert deterministic_json(tmp_path / "a/summary.json") == \
        deterministic_json(tmp_path / "b/summary.json")
    assert s1["policies"] == s2["policies"]
    s3 = run_eval(spec(seed=4), tmp_path / "c", progress=False, plots=False)
    assert s3["policies"] != s1["policies"]


def test_interrupted_run_resumes_without_redoing_episodes(tmp_path, monkeypatch):
    full = run_eval(spec(), tmp_path / "full", progress=False, plots=False)
    out = tmp_path / "part"
    assert run_eval(spec(), out, progress=False, plots=False, max_new_episodes=3) is None
    done = sorted(out.glob("episodes/*/seed-*.json"))
    assert len(done) == 3 and not (out / "summary.csv").exists()
    # a half-written temp file from a kill mid-write is ignored
    (done[0].parent / f".{done[0].name}.abc.tmp").write_text("{")
    stamps = {p: p.stat().st_mtime_ns for p in done}
    import edgellm.eval.runner as runner

    calls = []
    real = runner.run_episode
    monkeypatch.setattr(runner, "run_episode",
                        lambda pol, *a, **k: calls.append(pol.name) or real(pol, *a, **k))
    run_eval(spec(), out, progress=False, plots=False)
    assert len(calls) == 2 * 4 - 3
    assert all(p.stat().st_mtime_ns == stamps[p] for p in done)
    assert rows_without_timing(out / "summary.csv") == \
        rows_without_timing(tmp_path / "full/summary.csv")
    # more episodes later: only the new ones run
    calls.clear()
    run_eval(spec(episodes=3), out, progress=False, plots=False)
    assert len(calls) == 4
    del full


def test_killed_eval_process_resumes_to_the_same_result(tmp_path):
    args = ["eval", "--scenario", "default", "--set", "n_users=6", "--slots", "15",
            "--episodes", "4", "--seed", "1", "--policies", "oracle,sjf,random", "--quiet",
            "--no-plots"]
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert main([*args, "--out", str(ref)]) == 0
    # the child kills itself (SIGKILL: no clean-up) right after its third episode record
    code = """
import os, signal, sys
import edgellm.eval.runner as runner
from edgellm.cli import main
written, real = [], runner.write_json
def write_then_die(path, data):
    real(path, data)
    written.append(path)
    if len(written) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
runner.write_json = write_then_die
sys.exit(main(sys.argv[1:]))
"""
    proc = subprocess.run([sys.executable, "-c", code, *args, "--out", str(out)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert len(list(out.glob("episodes/*/seed-*.json"))) == 3
    assert not (out / "summary.csv").exists()
    assert main([*args, "--out", str(out)]) == 0
    assert rows_without_timing(out / "summary.csv") == rows_without_timing(ref / "summary.csv")


def test_resume_refuses_another_configuration(tmp_path):
    run_eval(spec(episodes=1), tmp_path, progress=False, plots=False)
    with pytest.raises(EdgeLLMError, match="another configuration"):
        run_eval(spec(episodes=1, overrides={"n_users": 5}), tmp_path, progress=False,
                 plots=False)
    run_eval(spec(episodes=1, overrides={"n_users": 5}), tmp_path, progress=False,
             plots=False, fresh=True)


# ----------------------------------------------------------------------------- errors
def test_unknown_policy_or_scenario_is_one_clear_error(tmp_path, capsys):
    base = ["eval", "--slots", "2", "--episodes", "1", "--out", str(tmp_path), "--quiet"]
    assert main([*base, "--policies", "oracle,lifo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'lifo'" in err
    assert all(n in err for n in POLICIES)
    assert main([*base, "--scenario", "rush-hour"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'rush-hour'" in err
    assert all(n in err for n in SCENARIOS)
    assert main([*base, "--set", "n_userz=3"]) == 2
    assert "n_userz" in capsys.readouterr().err
    assert main([*base, "--episodes", "0"]) == 2
    assert "--episodes" in capsys.readouterr().err


# ----------------------------------------------------------------------------- outputs
def test_cli_eval_writes_table_csv_json_and_plots(tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["eval", "--scenario", "paper", "--set", "n_users=5", "--slots", "4",
               "--episodes", "2", "--policies", ",".join(ALL), "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    for name in ALL:
        assert name in text
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["policy"] for r in rows] == list(ALL)
    oracle = rows[0]
    assert float(oracle["ratio_to_oracle"]) == 1.0 and float(oracle["regret_per_slot"]) == 0
    for r in rows:  # the optimum of a policy's own states bounds what it serves in them
        value, opt = float(r["value_per_slot"]), float(r["opt_value_per_slot"])
        assert float(r["regret_per_slot"]) >= 0 and value <= opt + 1e-6
        assert float(r["regret_per_slot"]) == pytest.approx(opt - value, abs=2e-6)
    assert float(oracle["value_per_slot"]) == float(oracle["opt_value_per_slot"])
    js = json.loads((out / "summary.json").read_text())
    assert js["seeds"] == [0, 1] and len(js["policies"]) == len(ALL)
    for name in ("throughput", "regret", "drops", "decision_time"):
        png = out / f"{name}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    assert not list(out.glob("**/*.tmp"))


def test_ratio_is_not_clipped_at_one(tmp_path):
    """A policy may beat the myopic oracle over an episode; the ratio must show it."""
    from edgellm.eval.report import format_table, summarize

    def rec(values):
        n = len(values)
        return {"per_slot": {"value": values, "served": values, "served_tokens": values,
                             "opt_value": [max(values)] * n, "candidates": [3] * n,
                             "decision_s": [0.001] * n, "deadline_misses": [0] * n,
                             "dropped": [0] * n},
                "dropped": {}, "invalid_actions": 0, "repaired": 0}

    sp = EvalSpec(policies=("oracle", "fcfs"), episodes=1, seed=0)
    s = summarize(sp, {}, "h", {("oracle", 0): rec([1, 1]), ("fcfs", 0): rec([2, 2])})
    assert s["policies"][1]["ratio_to_oracle"] == 2.0
    assert s["policies"][1]["episodes_above_oracle"] == 1
    assert "not proven optimal" not in format_table(s)
    late = rec([2, 2]) | {"opt_unproven": 3}
    s = summarize(sp, {}, "h", {("oracle", 0): rec([1, 1]), ("fcfs", 0): late})
    assert s["policies"][1]["opt_unproven"] == 3
    assert "3 slot states not proven optimal" in format_table(s)


def test_learned_policy_runs_in_eval(tmp_path):
    from stable_baselines3 import PPO

    env = EdgeLLMEnv("default", action_mode="subset", **SMALL)
    PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0).save(tmp_path / "ppo.zip")
    (tmp_path / "ppo.json").write_text(json.dumps(
        {"schema": "edgellm.policy/1", "algo": "ppo", "action_mode": "subset",
         "scenario": "default", "n_users": 6}))
    name = f"learned:{tmp_path / 'ppo.zip'}"
    s = run_eval(spec(policies=("oracle", name), episodes=1), tmp_path / "out",
                 progress=False, plots=False)
    row = s["policies"][1]
    assert row["policy"] == name and row["regret_per_slot"] >= 0
    with pytest.raises(EdgeLLMError, match="trained with 6 users"):
        run_eval(spec(policies=(name,), episodes=1, overrides={"n_users": 4}),
                 tmp_path / "out2", progress=False, plots=False)


def test_sweep_writes_csv_and_figures(tmp_path, monkeypatch):
    sw = SweepSpec(scenario="paper", policies=("oracle", "fcfs", "static-batch"),
                   episodes=1, slots=3, users=(2, 4), bandwidth_mhz=(5.0, 20.0),
                   quants=("fp16", "w4a16"), nodes_k=(4, 6), nodes_instances=3)
    written = run_sweep(sw, tmp_path, progress=False)
    assert set(written) == {"users", "bandwidth", "quant", "nodes"}
    users = list(csv.DictReader(open(written["users"])))
    assert {(r["users"], r["policy"]) for r in users} == {
        (u, p) for u in ("2", "4") for p in sw.policies}
    nodes = list(csv.DictReader(open(written["nodes"])))
    assert all(r["agree_with_bruteforce"] == "3/3" for r in nodes)
    bf = [r for r in nodes if r["method"] == "bruteforce"]
    assert [float(r["nodes_mean"]) for r in bf] == [16.0, 64.0]
    for png in ("users", "users_tokens", "bandwidth", "quant", "nodes", "nodes_time"):
        data = (tmp_path / f"{png}.png").read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 5000, png
    # an unchanged rerun reuses every finished point: no episode runs again
    import edgellm.eval.runner as runner

    calls = []
    real = runner.run_episode
    monkeypatch.setattr(runner, "run_episode",
                        lambda pol, *a, **k: calls.append(pol.name) or real(pol, *a, **k))
    run_sweep(SweepSpec(**{**sw.__dict__, "experiments": ("users",)}), tmp_path,
              progress=False)
    assert calls == []
