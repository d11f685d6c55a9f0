"""Real traces (SPEC 9), 3GPP path loss and per-link noise (SPEC 2.3, 6)."""

from __future__ import annotations

import numpy as np
import pytest

from edgellm.envs import EdgeLLMEnv, get_scenario
from edgellm.envs.traffic import Traffic
from edgellm.errors import EdgeLLMError
from edgellm.system import catalog, channel, traces


# --------------------------------------------------------------------------- loader
@pytest.mark.parametrize("name, n, prompt, output", [
    ("azure-conversation-2023", 19366, 1020, 129),
    ("azure-code-2023", 8819, 1469, 13),
])
def test_shipped_trace_medians(name, n, prompt, output):
    tr = traces.load_trace(name)
    assert tr.n == n
    assert np.median(tr.prompt) == prompt and np.median(tr.output) == output
    assert tr.time_s[0] == 0.0 and np.all(np.diff(tr.time_s) >= 0)
    assert 3400 < tr.time_s[-1] < 3600  # one hour of trace
    # the catalog's statistics of the same traces agree with the data
    assert catalog.traces()[name]["prompt_tokens_median"] == prompt


def test_trace_ships_with_licence_and_attribution():
    from importlib import resources

    folder = resources.files("edgellm.system").joinpath("data", "traces")
    assert "Creative Commons" in folder.joinpath("LICENSE").read_text()
    assert "Splitwise" in folder.joinpath("README.md").read_text()


@pytest.mark.parametrize("body, line, named", [
    ("2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:50.99,396\n", 3, "3 comma-separated"),
    ("2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:50.99,x,109\n", 3, "ContextTokens"),
    ("2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:50.99,396,0\n", 3, "GeneratedTokens"),
    ("2023-11-16 18:15:46.68,374,44\nyesterday,396,109\n", 3, "TIMESTAMP"),
    ("2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:40.00,396,109\n", 3, "time order"),
])
def test_malformed_trace_names_the_line(tmp_path, body, line, named):
    path = tmp_path / "bad.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + body)
    with pytest.raises(traces.TraceError) as err:
        traces.load_trace(str(path))
    msg = str(err.value)
    assert f"bad.csv, line {line}:" in msg and named in msg and "\n" not in msg


def test_bad_header_and_unknown_trace(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("time,prompt,output\n2023-11-16 18:15:46.68,374,44\n")
    with pytest.raises(traces.TraceError, match="h.csv, line 1: header"):
        traces.load_trace(str(path))
    with pytest.raises(traces.TraceError, match="unknown trace"):
        traces.load_trace("sharegpt")


# --------------------------------------------------------------------------- replay
def _arrivals(rep, slots):
    return [tuple(map(tuple, rep.next_slot())) for _ in range(slots)]


def test_replay_rule_by_hand():
    # rows at t = 0, 1, ..., 9 s: rate (10 - 1) / 9 = 1 request / s; K = 2 users at 0.5
    # per user per slot: 1 arrival per slot, slot(i) = floor((t_i - offset) * 1)
    tr = traces.Trace("t", np.arange(10.0), np.arange(1, 11), np.full(10, 5))
    rep = traces.Replay(tr, 2, 0.5, seed=3, offset_s=4.5)
    slots = _arrivals(rep, 12)
    # rows 5..9 in slots 0..4; the trace starts over 10 s after its start: row 0 at
    # 10 - 4.5 = 5.5 -> slot 5, ..., then row 5 again at 15 - 4.5 -> slot 10
    assert [rows for _, rows in slots] == [(r,) for r in (5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6)]
    # users from the seeded hash: the same row always goes to the same user
    users = [u[0] for u, _ in slots]
    assert users[0] == users[10] and users[1] == users[11]
    # a burst: four rows at t = 0 for K = 2 users: two now (distinct users), two next slot
    burst = traces.Trace("b", np.array([0.0, 0, 0, 0, 3.0]), np.ones(5, int), np.ones(5, int))
    rep = traces.Replay(burst, 2, 0.5, seed=1, offset_s=0.0)  # rate 4/3: scale 4/3
    first, second, third = _arrivals(rep, 3)
    assert first[0] == (0, 1) and sorted(first[1]) == [0, 1]
    assert second[0] == (0, 1) and sorted(second[1]) == [2, 3]
    assert third == ((), ())  # row 4 at 3 * 4/3 = slot 4


def test_replay_is_seeded_and_keeps_the_mean_rate():
    tr = traces.load_trace("azure-code-2023")
    a = _arrivals(traces.Replay(tr, 16, 0.3, seed=7), 300)
    b = _arrivals(traces.Replay(tr, 16, 0.3, seed=7), 300)
    c = _arrivals(traces.Replay(tr, 16, 0.3, seed=8), 300)
    assert a == b and a != c
    total = sum(len(u) for u, _ in a)
    assert total == pytest.approx(16 * 0.3 * 300, rel=0.15)
    for users, _ in a:
        assert len(set(users)) == len(users)  # at most one arrival per user per slot


def test_replay_env_deterministic_and_same_arrivals_for_two_policies():
    cfg = get_scenario("azure-code", max_slots=30)

    def run(policy, seed):
        env = EdgeLLMEnv(cfg, action_mode="subset")
        env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(30):
            act = np.ones(cfg.n_users, np.int8) if policy == "all" else rng.integers(0, 2, 16)
            _, _, _, _, info = env.step(act)
            out.append((info["served"], info["overlength"]))
        return out, env._queues.next_id, dict(env.counts)

    a1, ids1, _ = run("all", 5)
    a2, ids2, _ = run("all", 5)
    assert a1 == a2 and ids1 == ids2
    # a different policy faces the same arrivals (same count of arrived requests)
    _, ids3, _ = run("random", 5)
    assert ids3 == ids1


def test_traffic_replay_lengths_come_from_the_rows():
    cfg = get_scenario("azure-conv", n_users=4, arrival_rate=0.5)
    t = Traffic(cfg, 11)
    tr = traces.load_trace(cfg.trace)
    rows = set(zip(tr.prompt.tolist(), np.minimum(tr.output, cfg.max_output).tolist()))
    ctx = catalog.max_context(cfg.model)
    seen = 0
    for _ in range(50):
        d = t.draw()
        for k in np.flatnonzero(d.arrive):
            s, n = int(d.prompt_tokens[k]), int(d.output_tokens[k])
            assert s + n <= ctx
            assert (s, n) in rows or s == ctx - n  # a row, or a truncated one
            seen += 1
    assert seen > 50


def test_overlength_rule():
    # Llama-2 (4096 context) on the code trace: 14% of rows are longer than the context
    out = {}
    for rule in ("truncate", "reject"):
        cfg = get_scenario("azure-code", model="llama-2-7b", overlength=rule, max_output=512)
        t = Traffic(cfg, 0)
        over = arrived = 0
        for _ in range(100):
            d = t.draw()
            over += d.overlength
            arrived += int(d.arrive.sum())
            assert np.all(d.prompt_tokens[d.arrive] + d.output_tokens[d.arrive] <= 4096)
        out[rule] = (arrived, over)
    assert out["truncate"][1] == out["reject"][1] > 0  # same rows are over-length
    assert out["truncate"][0] == out["reject"][0] + out["reject"][1]  # rejected never arrive


def test_empirical_workload_samples_rows():
    cfg = get_scenario("thin-slice", workload="empirical", trace="azure-code-2023")
    t = Traffic(cfg, 1)
    tr = traces.load_trace("azure-code-2023")
    rows = set(zip(tr.prompt.tolist(), tr.output.tolist()))
    d = t.draw()
    assert all((int(s), int(n)) in rows or s + n == 4096
               for s, n in zip(d.prompt_tokens, d.output_tokens) if n < cfg.max_output)


def test_trace_workload_config_errors():
    with pytest.raises(EdgeLLMError, match="scenario.trace"):
        get_scenario("default", workload="replay", trace="sharegpt")
    with pytest.raises(EdgeLLMError, match="scenario.max_output"):
        get_scenario("azure-conv", max_output=8192)


# --------------------------------------------------------------------------- radio
@pytest.mark.parametrize("model, d, expected", [
    ("3gpp-macro", 1000.0, 128.1),                  # log10(1 km) = 0
    ("3gpp-macro", 100.0, 128.1 - 37.6),            # log10(0.1) = -1: 90.5 dB
    ("3gpp-macro", 10.0, 128.1 + 37.6 * np.log10(0.035)),  # clipped to 35 m
    ("3gpp-pico", 100.0, 140.7 - 36.7),             # 104.0 dB
    ("3gpp-pico", 10.0, 140.7 - 2 * 36.7),          # 67.3 dB at the 10 m minimum
    ("3gpp-pico", 5.0, 140.7 - 2 * 36.7),           # clipped to 10 m
    ("legacy", 20.0, 128.1 + 37.6 * np.log10(0.02)),  # version 0.1: no 35 m minimum
])
def test_path_loss_by_hand(model, d, expected):
    assert channel.path_loss_db(d, model) == pytest.approx(expected, abs=1e-12)


def test_noise_figures_and_distance_range():
    # -174 dBm/Hz + 5 dB = -169 dBm/Hz = 10^(-19.9) W/Hz
    assert channel.noise_psd(5.0) == pytest.approx(10 ** -19.9, rel=1e-12)
    assert channel.noise_psd(9.0) == pytest.approx(10 ** -19.5, rel=1e-12)
    cfg = get_scenario("azure-conv")
    env = EdgeLLMEnv(cfg)
    rad = env._system.radio
    assert rad.uplink_noise == channel.noise_psd(5.0)
    assert rad.downlink_noise == channel.noise_psd(9.0)
    with pytest.raises(EdgeLLMError, match=r"scenario.distance_m.*3gpp-pico.*\[10, 1000\]"):
        get_scenario("azure-conv", distance_m=(5.0, 300.0))


def test_trace_prompts_above_max_prompt_keep_the_observation_in_its_box():
    cfg = get_scenario("default", workload="empirical", trace="azure-code-2023",
                       max_prompt=512, max_slots=20)
    env = EdgeLLMEnv(cfg, action_mode="subset")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(rng.integers(0, 2, cfg.n_users).astype(np.int8))
