"""Ray: eval and sweep with ``--backend ray``, RLlib PPO with action masks, rl-zoo3, and the
clear errors of a missing ``[ray]`` extra and of a failing worker (issue 12).

Every client path runs end to end from a folder outside the repository (``tmp_path``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgellm.cli import main
from edgellm.errors import EdgeLLMError
from edgellm.eval.runner import EvalSpec, run_eval
from edgellm.eval.store import without_timing

SMALL = {"n_users": 5}


def _records(out: Path) -> dict:
    """Every episode record without its timing entries."""
    recs = {}
    for p in sorted((out / "episodes").rglob("*.json")):
        recs[str(p.relative_to(out))] = without_timing(json.loads(p.read_text()))
    return recs


def _summary(out: Path) -> list:
    from edgellm.eval.report import TIMING_COLUMNS

    rows = json.loads((out / "summary.json").read_text())["policies"]
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def test_eval_ray_backend_equals_local_and_resumes(tmp_path, monkeypatch):
    """Ray tasks give the local backend's records; a run cut short locally resumes on Ray
    (only the missing episodes run) to the same files."""
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    spec = EvalSpec(scenario="default", policies=("oracle", "sjf", "random"), episodes=2,
                    seed=4, slots=5, overrides=SMALL)
    run_eval(spec, "local", progress=False, plots=False)
    assert run_eval(spec, "mixed", progress=False, plots=False, max_new_episodes=2) is None
    first = {p: p.stat().st_mtime_ns for p in Path("mixed/episodes").rglob("*.json")}
    assert len(first) == 2
    run_eval(spec, "mixed", progress=False, plots=False, backend="ray")
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # not redone
    assert _records(Path("mixed")) == _records(Path("local"))
    assert len(_records(Path("local"))) == 6
    assert _summary(Path("mixed")) == _summary(Path("local"))


def test_worker_error_is_one_clear_message():
    ray = pytest.importorskip("ray")
    from edgellm import distributed

    distributed.init()

    def boom(x):
        raise ValueError(f"bad value {x}")

    refs = {"a": ray.remote(max_retries=0)(boom).remote(7)}
    with pytest.raises(EdgeLLMError, match=r"^task a failed in a Ray worker: "
                                           r"ValueError: bad value 7$"):
        list(distributed.gather(ray, refs, lambda k: f"task {k}"))


def test_missing_ray_extra_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.chdir(tmp_path)
    argvs = [["eval", "--policies", "fcfs", "--episodes", "1", "--slots", "2", "--backend",
              "ray", "--quiet", "--no-plots", "--set", "n_users=3"],
             ["sweep", "--experiments", "users", "--users", "3", "--episodes", "1",
              "--slots", "2", "--policies", "fcfs", "--backend", "ray", "--quiet"],
             ["train", "--algo", "rllib-ppo", "--timesteps", "10", "--quiet"]]
    for argv in argvs:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "needs Ray" in err[0] and "edgellm-gym[ray]" in err[0], err
    assert not Path("runs").exists()  # train failed before writing anything
    # an RLlib policy file names the extra too
    (tmp_path / "rl_module").mkdir()
    (tmp_path / "model.json").write_text(json.dumps(
        {"schema": "edgellm.policy/1", "algo": "rllib-ppo", "action_mode": "sequential",
         "scenario": "default"}))
    from edgellm.agents import make_policy

    with pytest.raises(EdgeLLMError, match=r"\(format rllib\) needs Ray, which is not "
                                           r"installed: pip install 'edgellm-gym\[ray\]'"):
        make_policy("learned:model.json")


@pytest.mark.slow
def test_sweep_ray_backend_equals_local(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    common = ["sweep", "--experiments", "users,bandwidth", "--users", "3,5",
              "--bandwidth-mhz", "0.1", "--episodes", "2", "--slots", "4", "--policies",
              "oracle,edf", "--quiet"]
    assert main([*common, "--out", "loc"]) == 0
    assert main([*common, "--out", "ray", "--backend", "ray"]) == 0
    for exp in ("users", "bandwidth"):
        assert Path(f"loc/{exp}.csv").read_text() == Path(f"ray/{exp}.csv").read_text()


@pytest.mark.slow
def test_rllib_ppo_with_masks_trains_then_eval_loads_it(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    train = ["train", "--algo", "rllib-ppo", "--set", "n_users=4", "--set", "max_slots=20",
             "--eval-freq", "200", "--eval-episodes", "1", "--eval-slots", "5",
             "--final-eval-episodes", "1", "--final-eval-slots", "5", "--quiet",
             "--hyperparams", "train_batch_size=100", "minibatch_size=50", "num_epochs=2",
             "n_envs=2", "net_arch=[32,32]"]
    assert main([*train, "--timesteps", "300"]) == 0
    run = Path("runs/rllib-ppo-default-s0")
    meta = json.loads((run / "model.json").read_text())
    assert meta["format"] == "rllib" and meta["action_mode"] == "sequential"
    assert (run / "rl_module").is_dir() and list((run / "checkpoints").glob("step_*"))
    assert json.loads((run / "eval.json").read_text())["num_timesteps"] >= 300
    tags = set()
    for f in (run / "tb").rglob("events.out.tfevents.*"):
        ea = EventAccumulator(str(f))
        ea.Reload()
        tags |= set(ea.Tags()["scalars"])
    assert {"slot/served_per_slot", "slot/dropped_per_slot", "eval/oracle_ratio",
            "eval/served_per_slot", "eval/value_per_slot"} <= tags
    # edgellm eval loads it (in another folder: the path is relative to the cwd)
    assert main(["eval", "--policies", f"oracle,learned:{run}/model.json", "--episodes", "2",
                 "--slots", "6", "--set", "n_users=4", "--out", "ev", "--quiet",
                 "--no-plots"]) == 0
    recs = [json.loads(p.read_text()) for p in Path("ev/episodes").rglob("*.json")]
    learned = [r for r in recs if r["policy"].startswith("learned:")]
    assert len(learned) == 2 and all(r["invalid_actions"] == 0 for r in learned)
    # the Ray backend loads it in workers and gives the same records
    assert main(["eval", "--policies", f"learned:{run}/model.json", "--episodes", "2",
                 "--slots", "6", "--set", "n_users=4", "--out", "ev-ray", "--quiet",
                 "--no-plots", "--backend", "ray"]) == 0
    ray_recs = _records(Path("ev-ray"))
    assert ray_recs and all(v == _records(Path("ev"))[k] for k, v in ray_recs.items())
    # --resume continues the step count from the last checkpoint
    assert main([*train, "--timesteps", "500", "--resume"]) == 0
    steps = json.loads((run / "eval.json").read_text())["num_timesteps"]
    assert 500 <= steps < 600
    assert max(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*")) == steps


def test_rllib_module_never_picks_a_masked_action():
    pytest.importorskip("ray")
    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns

    from edgellm.envs import EdgeLLMEnv
    from edgellm.train.rllib import MaskedObservation
    from edgellm.train.rllib_module import MaskedPPOModule

    env = MaskedObservation(EdgeLLMEnv("default", action_mode="sequential", n_users=4))
    module = MaskedPPOModule(observation_space=env.observation_space,
                             action_space=env.action_space,
                             model_config={"fcnet_hiddens": [8], "fcnet_activation": "relu"})
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = (rng.random(5) < 0.3).astype(np.float32)
        mask[rng.integers(5)] = 1.0
        batch = {Columns.OBS: {"action_mask": torch.as_tensor(mask)[None],
                               "observations": torch.as_tensor(obs["observations"])[None]}}
        for fwd in (module.forward_inference, module.forward_exploration):
            logits = fwd(batch)[Columns.ACTION_DIST_INPUTS][0].detach().numpy()
            assert mask[int(np.argmax(logits))] == 1.0
            assert (logits[mask == 0] < -1e8).all()
    assert set(obs) == {"action_mask", "observations"}
    assert np.array_equal(obs["action_mask"] > 0, env.unwrapped.action_masks())


@pytest.mark.slow
def test_rl_zoo3_trains_with_the_project_yaml(tmp_path):
    pytest.importorskip("rl_zoo3")
    import edgellm.train

    conf = Path(edgellm.train.__file__).parent / "hyperparams" / "ppo.yml"
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--gym-packages", "edgellm.envs",
           "--env", "EdgeLLM-Sequential-v0", "--algo", "ppo", "--conf-file", str(conf),
           "-n", "128", "--hyperparams", "n_steps:32", "n_envs:2", "batch_size:32",
           "n_epochs:1", "--env-kwargs", "n_users:4", "max_slots:8", "--eval-freq", "-1",
           "--log-folder", "zoo", "--seed", "0", "--vec-env", "dummy"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    saved = list((tmp_path / "zoo" / "ppo").rglob("EdgeLLM-Sequential-v0.zip"))
    assert len(saved) == 1
    from stable_baselines3 import PPO

    assert PPO.load(saved[0], device="cpu").num_timesteps == 128


def test_masked_vector_wrapper_matches_the_single_env_observations():
    """The wrapper that serves RLlib the native vector env (the env ids have a
    vector_entry_point) gives the same Dict observations as MaskedObservation per env."""
    import numpy as np

    from edgellm.envs import EdgeLLMEnv
    from edgellm.envs.vector import EdgeLLMVectorEnv
    from edgellm.train.rllib import MaskedObservation, _MaskedVector, vectorize_mode

    assert vectorize_mode() == "vector_entry_point"
    small = dict(n_users=4, max_slots=5)

    def make():
        return EdgeLLMEnv("default", action_mode="sequential", **small)

    venv = _MaskedVector(EdgeLLMVectorEnv(2, "default", action_mode="sequential", **small))
    singles = [MaskedObservation(make()) for _ in range(2)]
    obs, _ = venv.reset(seed=7)
    ref = [e.reset(seed=7 + i)[0] for i, e in enumerate(singles)]
    assert venv.single_observation_space == singles[0].observation_space
    for _ in range(6):
        for i in range(2):
            for key in ("action_mask", "observations"):
                assert np.array_equal(obs[key][i], ref[i][key])
        actions = np.array([int(np.flatnonzero(r["action_mask"])[0]) for r in ref])
        obs, *_ = venv.step(actions)
        ref = [e.step(int(a))[0] for e, a in zip(singles, actions)]


@pytest.mark.slow
def test_eval_joins_a_running_cluster_with_ray_address(tmp_path):
    """--ray-address: this process runs a Ray head; the CLI, in another process, joins it."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        address = ray.get_runtime_context().gcs_address
        argv = ["eval", "--policies", "oracle,fcfs", "--episodes", "2", "--slots", "4",
                "--set", "n_users=4", "--quiet", "--no-plots", "--backend", "ray",
                "--ray-address", address, "--out", "cluster"]
        res = subprocess.run([sys.executable, "-m", "edgellm.cli", *argv], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        ray.shutdown()
    local = tmp_path / "local"
    run_eval(EvalSpec(scenario="default", policies=("oracle", "fcfs"), episodes=2, slots=4,
                      overrides={"n_users": 4}), local, progress=False, plots=False)
    assert _records(tmp_path / "cluster") == _records(local)
