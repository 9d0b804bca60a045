"""Population-based training and successive halving (engine.population, search.pbt,
search.halving): exploit copies exactly the chosen member's state, explored values stay in
their ranges, PBT with exploit and explore off is a plain sweep bit for bit, a population
stopped after a chunk and resumed is bit-identical, bad input is one line."""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import cli
from purejaxpg.algos import get_algo
from purejaxpg.engine import plan as plans
from purejaxpg.engine import population, runner, search

# pytest-xdist: this module's tests share module-scoped work, so one worker runs them all
pytestmark = pytest.mark.xdist_group("population")

# 6 updates of 64 env steps: ready steps after updates 2 and 4
TINY = {"env": "CartPole-v1", "num_envs": 4, "num_steps": 16, "total_timesteps": 384, "hidden": (8,),
        "update_epochs": 1, "num_minibatches": 2, "num_eval_episodes": 2}
LR = {"lr": (1e-4, 1e-2, "log")}


@pytest.fixture(autouse=True, scope="module")
def compilation_cache(tmp_path_factory):
    """A persistent compilation cache for this module: the runs of a test that build the
    same program again (stopped, resumed) compile it once."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax-cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for n, v in old.items():
        jax.config.update(n, v)
    from jax.experimental.compilation_cache import compilation_cache as cc

    cc.reset_cache()  # the modules after this one compile as before


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


# ---- the pure pieces -------------------------------------------------------------------

def numpy_truncation(scores, q, picks):
    """Reference: the k lowest (NaN lowest, ties by index) take top[picks]."""
    P = len(scores)
    k = int(q * P)
    s = np.where(np.isnan(scores), -np.inf, scores)
    order = sorted(range(P), key=lambda m: (s[m], m))
    source = np.arange(P)
    for j, m in enumerate(order[:k]):
        source[m] = order[P - k:][picks[j]]
    return source


@pytest.mark.parametrize("P,q", [(4, 0.25), (8, 0.5), (16, 0.25), (5, 0.4)])
def test_truncation_matches_numpy(P, q):
    rng = np.random.default_rng(P)
    scores = rng.normal(size=P).astype(np.float32)
    scores[1] = np.nan
    scores[2] = scores[3]  # a tie
    key = jax.random.PRNGKey(P)
    k = int(q * P)
    picks = np.asarray(jax.random.randint(key, (k,), 0, k))
    got = np.asarray(population.truncation(jnp.asarray(scores), q, key))
    np.testing.assert_array_equal(got, numpy_truncation(scores, q, picks))
    assert got.dtype == np.int32


def test_explored_values_stay_inside_their_ranges():
    """Perturb by large factors and resample, from values at and near the bounds, over
    many keys: every value stays in [low, high]; unmoved members keep theirs exactly."""
    ranges = {"lr": (1e-4, 1e-2, "log"), "clip_eps": (0.1, 0.3, "lin")}
    P = 64
    hp = {"lr": jnp.asarray(np.geomspace(1e-4, 1e-2, P), jnp.float32),
          "clip_eps": jnp.asarray(np.linspace(0.1, 0.3, P), jnp.float32),
          "gamma": jnp.full((P,), 0.99, jnp.float32)}
    moved = jnp.arange(P) % 3 != 0
    for kind, args in [("perturb", (0.1, 10.0)), ("perturb", (0.8, 1.2)), ("resample", (0.5,)), ("resample", (1.0,))]:
        for seed in range(5):
            out = population.explore(hp, moved, jax.random.PRNGKey(seed), ranges, kind, args)
            for name, (lo, hi, _) in ranges.items():
                v = np.asarray(out[name])
                assert (v >= np.float32(lo)).all() and (v <= np.float32(hi)).all(), (kind, name, v.min(), v.max())
                np.testing.assert_array_equal(v[~np.asarray(moved)], np.asarray(hp[name])[~np.asarray(moved)])
                assert (v[np.asarray(moved)] != np.asarray(hp[name])[np.asarray(moved)]).any()
            np.testing.assert_array_equal(out["gamma"], hp["gamma"])  # not ranged: never explored
    drawn = jax.vmap(lambda k: population.draw(k, ranges))(jax.random.split(jax.random.PRNGKey(0), 256))
    for name, (lo, hi, _) in ranges.items():
        assert (np.asarray(drawn[name]) >= np.float32(lo)).all() and (np.asarray(drawn[name]) <= np.float32(hi)).all()


def test_exploit_copies_exactly_the_chosen_members_state():
    """The population step on a real PPO population (observation normaliser and reward
    scaling on, so every kind of state is there) after two updates: every batched leaf of
    each member's carry is the NumPy-indexed leaf of the member it chose (``pbt_parent``),
    except the PRNG keys, which stay its own; its hyperparameters were the parent's before
    exploring; members not chosen keep everything."""
    config, hp0 = get_algo("ppo").resolve({**TINY, "normalize_obs": True, "scale_rewards": True})
    program = population.wrap(get_algo("ppo").make_program(config), LR)
    P = 8
    settings = {"population": P, "ready_every": 2, "exploit": "truncation:0.5", "explore": "perturb:0.5,2.0",
                "ranges": LR}
    ready, step = population.mixer(settings, program.num_updates, 0, P)
    keys = jax.random.split(jax.random.PRNGKey(1), P)
    hp = {k: jnp.full((P,), v, jnp.float32) for k, v in hp0.items()}
    update = jax.jit(jax.vmap(program.update, (0, 0, None)))
    carry = jax.jit(jax.vmap(program.init))(keys, hp)
    for i in range(2):
        carry, metrics = update(carry, hp, jnp.int32(i))
    assert bool(ready(jnp.int32(1))) and not bool(ready(jnp.int32(0)))
    axes = program.axes(jax.tree_util.tree_map(lambda x: x[0], carry))
    new, m = jax.jit(lambda c, m: step(c, m, jnp.int32(1), axes))(carry, metrics)
    source = np.asarray(m["pbt_parent"])
    assert (source != np.arange(P)).sum() == P // 2  # truncation:0.5 moves half
    before, after = carry["inner"], new["inner"]
    flat_b = jax.tree_util.tree_flatten_with_path(before)[0]
    flat_a = jax.tree_util.tree_leaves(after)
    kinds = set()
    for (path, b), a in zip(flat_b, flat_a):
        b, a = np.asarray(b), np.asarray(a)
        if b.dtype == np.uint32:  # PRNG keys: each member's own
            np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
            kinds.add("key")
        else:
            np.testing.assert_array_equal(a, b[source], err_msg=jax.tree_util.keystr(path))
            kinds.add(jax.tree_util.keystr(path).split(".")[0])
    assert len(flat_a) > 20 and "key" in kinds
    lr_before, lr_after = np.asarray(carry["hp"]["lr"]), np.asarray(new["hp"]["lr"])
    moved = source != np.arange(P)
    np.testing.assert_array_equal(lr_after[~moved], lr_before[~moved])
    ratio = lr_after[moved] / lr_before[source[moved]]
    clipped = (lr_after[moved] == np.float32(1e-4)) | (lr_after[moved] == np.float32(1e-2))
    assert np.all(np.isclose(ratio, 0.5, rtol=1e-6) | np.isclose(ratio, 2.0, rtol=1e-6) | clipped), ratio
    np.testing.assert_array_equal(new["hp"]["gamma"], np.asarray(carry["hp"]["gamma"])[source])
    np.testing.assert_array_equal(new["window_episodes"], 0)


def test_halving_schedule():
    assert plans.halving_rungs(27, 3, 27_000, 100) == [(27, 1000), (9, 3000), (3, 9000), (1, 27000)]
    assert plans.halving_rungs(27, 3, 27_000, 100, rungs=3) == [(27, 3000), (9, 9000), (3, 27000)]
    # the first rung would be shorter than an update: fewer rungs by default, refused when asked for
    assert plans.halving_rungs(27, 3, 800, 100) == [(27, 200), (9, 800)]
    with pytest.raises(ValueError, match="less than one update"):
        plans.halving_rungs(27, 3, 800, 100, rungs=3)
    assert plans.parse_halving("eta=3") == (3, 0) and plans.parse_halving("eta=2,rungs=5") == (2, 5)
    # env steps of 27 configurations at eta=3, 3 rungs, each rung from scratch: 9/27 of the grid
    s = plans.halving_rungs(27, 3, 27_000, 100, rungs=3)
    assert sum(c * n for c, n in s) / (27 * 27_000) == pytest.approx(1 / 3)


# ---- bad input ---------------------------------------------------------------------------

BAD = [
    (["pbt", "ppo", "--range", "num_envs=2:8"], "--range num_envs: a static setting"),
    (["pbt", "ppo", "--range", "hidden=2:8"], "--range needs a numeric setting"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--exploit", "truncation:0.75"], "--exploit expects truncation:Q"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--exploit", "best"], "--exploit expects truncation:Q"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--explore", "perturb:0.8,x"], "--explore expects perturb:F1,F2"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--explore", "resample:2"], "--explore expects perturb:F1,F2"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--population", "1"], "--population must be an integer >= 2"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--population", "2"], "moves no member"),
    (["pbt", "ppo", "--range", "lr=1e-4:1e-2", "--lr", "0.001"], "given both as a setting and as --range"),
    (["pbt", "ppo", "--num-seeds", "4"], "unrecognized arguments: --num-seeds"),
    (["sweep", "ppo", "--grid", "lr=1e-3,1e-2", "--halving", "eta=1"], "--halving expects eta=E[,rungs=R]"),
    (["sweep", "ppo", "--grid", "lr=1e-3,1e-2", "--halving", "3"], "--halving expects eta=E[,rungs=R]"),
    (["sweep", "ppo", "--grid", "lr=1e-3,1e-2", "--halving", "eta=3,rungs=9"], "less than one update"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_is_one_line_exit_2(argv, message, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the compile/run stage")

    monkeypatch.setattr(runner, "prepare", refuse)
    t0 = time.process_time()
    assert cli.main(argv + ["--out", "/nonexistent/never-written"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("purejaxpg: error: "), err
    assert message in err, err
    assert time.process_time() - t0 < 10.0


# ---- through the runner ----------------------------------------------------------------------

def test_pbt_with_exploit_and_explore_off_is_a_plain_sweep(tmp_path):
    """Members drawn from the range, never exploited nor explored: member m is the sweep's
    configuration (its drawn hyperparameters) m with seed m, bit for bit (block=1: one run
    per vmap in both programs, so XLA's code does not depend on how many runs there are)."""
    P = 3
    pop = search.pbt("ppo", None, TINY, P, LR, ready_every=2, exploit="none", explore="none", quiet=True, block=1)
    r, = pop.groups
    lrs = r.metrics["hp_lr"][0, :, 0]
    assert (r.metrics["hp_lr"][0] == lrs[:, None]).all() and len(set(lrs)) == P
    assert (r.metrics["pbt_parent"][0][:, [1, 3]] == np.arange(P)[:, None]).all()
    sweep = runner.sweep("ppo", None, TINY, {"lr": [float(v) for v in lrs]}, num_seeds=P, quiet=True, block=1)
    s, = sweep.groups
    for m in range(P):
        for k in s.metrics:
            np.testing.assert_array_equal(r.metrics[k][0, m], s.metrics[k][m, m], err_msg=k)
        np.testing.assert_array_equal(r.final[0, m], s.final[m, m])
        for a, b in zip(_leaves(r.batch.run_carry(r.carry, 0, m)["inner"]), _leaves(s.batch.run_carry(s.carry, m, m))):
            np.testing.assert_array_equal(a, b)


def test_pbt_cli_writes_lineage_and_resumes_bit_identically(tmp_path, capsys):
    """``purejaxpg pbt`` in 3 chunks, stopped after the first (SIGINT's path: stop_after) and
    resumed, equals the uninterrupted run: metrics (hyperparameters and parents included),
    final returns, lineage.json; it writes lineage.json, pbt.png and summary.json."""
    args = ["pbt", "ppo", "--env", "CartPole-v1", "--num-envs", "4", "--num-steps", "16", "--total-timesteps", "384",
            "--hidden", "8", "--update-epochs", "1", "--num-minibatches", "2", "--num-eval-episodes", "2",
            "--population", "4", "--ready-every", "2", "--range", "lr=1e-4:1e-2:log", "--range", "ent_coef=0:0.05",
            "--chunks", "3", "--quiet"]
    assert cli.main(args + ["--out", str(tmp_path / "full")]) == 0
    out = capsys.readouterr().out
    assert "best member" in out and "lineage.json" in out
    for f in ("lineage.json", "pbt.png", "summary.json", "metrics.npz", "run.json"):
        assert (tmp_path / "full" / f).exists(), f
    part = search.pbt("ppo", str(tmp_path / "part"), TINY,
                      4, {"lr": (1e-4, 1e-2, "log"), "ent_coef": (0.0, 0.05, "lin")}, ready_every=2, quiet=True,
                      chunks=3, stop_after=1)
    assert part.stopped and not (tmp_path / "part" / "lineage.json").exists()
    assert cli.main(["pbt", "--resume", str(tmp_path / "part"), "--quiet"]) == 0
    a, b = np.load(tmp_path / "full" / "metrics.npz"), np.load(tmp_path / "part" / "metrics.npz")
    assert set(a.files) >= {"hp_lr", "hp_ent_coef", "pbt_parent", "episode_return"}
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    la, lb = (json.load(open(tmp_path / d / "lineage.json")) for d in ("full", "part"))
    assert la == lb
    assert la["ready_updates"] == [2, 4] and len(la["members"]) == 4
    parents = np.asarray([[p["parent"] for p in m["parents"]] for m in la["members"]])
    assert (parents != np.arange(4)[:, None]).sum(0).tolist() == [1, 1]  # truncation:0.25 of 4: one per ready step
    for m in la["members"]:
        assert all(1e-4 <= v <= 1e-2 for v in m["hparams"]["lr"]) and len(m["hparams"]["lr"]) == 6
    s = json.load(open(tmp_path / "full" / "summary.json"))
    assert s["pbt"]["population"] == 4 and s["pbt"]["exploited"] == 2 and len(s["pbt"]["final_return_per_member"]) == 4


def test_halving_keeps_the_best_third_and_counts_env_steps(tmp_path, monkeypatch, capsys):
    """``sweep --halving`` through the CLI with each rung's sweep replaced by a stand-in whose
    IQM is known (the closer lr is to 3e-3 and the longer the run, the better): 9
    configurations at eta=3 keep the 3 best, then the best; the table and halving.json say
    each configuration's last rung, the env steps are counted from the rungs' programs."""
    from types import SimpleNamespace

    seen = []

    def fake_execute(plan, out_dir, *args):
        config = get_algo(plan.algo).resolve(plan.base)[0]
        seen.append((len(plan.points), config.total_timesteps, plan.num_seeds))
        rows = []
        for j, p in enumerate(plan.points):
            iqm = config.total_timesteps / 1000 - abs(np.log(p["lr"] / 3e-3))
            rows.append({"name": plans.config_name(p, j), "swept": p, "iqm": iqm, "iqm_ci95": [iqm - 1, iqm + 1],
                         "mean": iqm, "mean_ci95": [iqm - 1, iqm + 1], "num_diverged": 0})
        rows.sort(key=lambda r: -r["iqm"])
        return SimpleNamespace(stopped=False, table=rows, groups=[SimpleNamespace(group=SimpleNamespace(config=config))])

    monkeypatch.setattr(runner, "execute", fake_execute)
    lrs = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2, 1e-1]
    argv = ["sweep", "ppo", "--total-timesteps", "9216", "--grid", "lr=" + ",".join(map(str, lrs)), "--num-seeds", "4",
            "--halving", "eta=3", "--out", str(tmp_path / "h")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "last_rung" in out and "successive halving, 3 rungs" in out
    # ppo's defaults: 4 envs x 128 steps = 512 env steps per update; 9216 / 9 = 1024
    assert seen == [(9, 1024, 4), (3, 3072, 4), (1, 9216, 4)]
    h = json.load(open(tmp_path / "h" / "halving.json"))
    assert h["best"] == plans.config_name({"lr": 3e-3}, 4)
    last = {row["swept"]["lr"]: row["last_rung"] for row in h["table"]}
    assert last == {1e-4: 0, 3e-4: 0, 1e-3: 0, 2e-3: 1, 3e-3: 2, 5e-3: 1, 1e-2: 0, 3e-2: 0, 1e-1: 0}
    assert [row["last_rung"] for row in h["table"]] == [2, 1, 1, 0, 0, 0, 0, 0, 0]
    assert h["env_steps"] == 4 * (9 * 1024 + 3 * 3072 + 9216) and h["full_grid_env_steps"] == 4 * 9 * 9216
    assert h["fraction_of_full_grid"] == pytest.approx(1 / 3)


@pytest.mark.slow
def test_halving_runs_survivors_longer_and_the_table_says_their_last_rung(tmp_path, capsys):
    """The same with real rungs (about 30 s of CPU)."""
    argv = ["sweep", "ppo", "--env", "CartPole-v1", "--num-envs", "4", "--num-steps", "16", "--total-timesteps", "256",
            "--hidden", "8", "--update-epochs", "1", "--num-minibatches", "2", "--num-eval-episodes", "2",
            "--grid", "lr=1e-4,3e-3,1e-2", "--num-seeds", "2", "--halving", "eta=3", "--quiet",
            "--out", str(tmp_path / "h")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "last_rung" in out and "successive halving, 2 rungs" in out
    assert "rows: the configurations that reached the last rung first" in out  # why a lower IQM can rank higher
    h = json.load(open(tmp_path / "h" / "halving.json"))
    assert [r["configurations"] for r in h["schedule"]] == [3, 1]
    assert [r["env_steps_per_run"] for r in h["schedule"]] == [64, 256]  # 256 / 3 rounded down to whole updates of 64
    assert sorted(row["last_rung"] for row in h["table"]) == [0, 0, 1] and h["table"][0]["last_rung"] == 1
    assert h["env_steps"] == 3 * 2 * 64 + 1 * 2 * 256 and h["full_grid_env_steps"] == 3 * 2 * 256
    # the survivor is the rung-0 configuration with the best IQM
    rung0 = json.load(open(tmp_path / "h" / "rung0" / "sweep.json"))["table"]
    best0 = rung0[0]["swept"]["lr"]
    assert h["table"][0]["swept"]["lr"] == best0
    assert os.path.exists(tmp_path / "h" / "rung1" / "sweep.json") and (tmp_path / "h" / "table.txt").exists()
    assert cli.main(argv) == 2  # a second run into the same --out is refused without --overwrite
    assert "holds another halving run" in capsys.readouterr().err


DEVICES_SCRIPT = """
import sys, numpy as np
from purejaxpg.engine import runner
TINY = %r
r = search.pbt("ppo", None, TINY, 5, {"lr": (1e-4, 1e-2, "log")}, ready_every=2, exploit="truncation:0.4", quiet=True,
               block=1)
g = r.groups[0]
np.savez(sys.argv[1], final=g.final, padded=g.batch.padded, **g.metrics)
""" % (TINY,)


@pytest.mark.slow
def test_population_sharded_over_two_devices_equals_one_device(tmp_path):
    """5 members on 2 devices (padded to 6: the step gathers every member from both devices)
    == on 1 device, bit for bit (block=1). About 40 s of CPU in two processes."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(DEVICES_SCRIPT)
    for d in (1, 2):
        env = {**os.environ, "PUREJAXPG_HOST_DEVICES": str(d),
               "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
        subprocess.run([sys.executable, str(script), str(tmp_path / f"d{d}.npz")], check=True, env=env)
    a, b = np.load(tmp_path / "d1.npz"), np.load(tmp_path / "d2.npz")
    assert int(a["padded"]) == 5 and int(b["padded"]) == 6
    for k in a.files:
        if k != "padded":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (a["pbt_parent"][0][:, 1] != np.arange(5)).sum() == 2


def test_docs_commands_parse(monkeypatch):
    """Every command in docs/pbt-and-halving.md's code blocks goes through the CLI to the
    runner with the values written there (the runner replaced: nothing trains)."""
    import shlex

    calls = []

    class Stop(Exception):
        pass

    def capture(name):
        def f(*args, **kwargs):
            calls.append((name, args, kwargs))
            raise Stop

        return f

    for module, name in ((search, "pbt"), (search, "halving"), (runner, "resume")):
        monkeypatch.setattr(module, name, capture(name))
    doc = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                            "pbt-and-halving.md")).read()
    blocks = doc.split("```")[1::2]
    commands = [line for b in blocks for line in b.splitlines() if line.startswith("purejaxpg ")]
    assert len(commands) == 3
    for c in commands:
        with pytest.raises(Stop):
            cli.main(shlex.split(c)[1:])
    (_, a, k), (_, ra, _), (_, h, hk) = calls
    assert a[0] == "ppo" and a[3] == 16 and a[4] == {"lr": (1e-4, 1e-2, "log")} and a[2]["total_timesteps"] == "3e5"
    assert (a[5], a[6], a[7]) == (0, "truncation:0.25", "perturb:0.8,1.2")
    assert ra == ("runs/pbt",)
    assert len(h[3]) == 3 and h[6] == 4 and (h[7], h[8]) == (3, 0) and h[2]["total_timesteps"] == "1e5"
