"""engine/host.py: one XLA device per core on a CPU, unless the user chose otherwise; JAX's
Threefry hash as straight-line code on the CPU."""
import json
import os
import subprocess
import sys

import pytest
from children import child_env

from purejaxpg.engine import compat, host


@pytest.fixture
def fresh_cpu(monkeypatch):
    """As if JAX's CPU backend had not started yet, with no XLA flags set."""
    monkeypatch.setattr(compat, "backends_started", lambda: False)
    monkeypatch.setattr(compat, "default_platform", lambda start_backend=False: "cpu")
    monkeypatch.setattr(compat, "configure", lambda: {})
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv(host.DEVICES_ENV, raising=False)
    monkeypatch.setattr(host, "cores", lambda: 4)


def test_one_device_per_core_unless_chosen(fresh_cpu, monkeypatch):
    assert host.configure() == {"host_devices": 4}
    assert os.environ["XLA_FLAGS"] == f"{host.DEVICE_FLAG}=4"
    assert host.configure(devices=8) == {}  # the flag is set now: never twice, never overridden
    monkeypatch.setenv("XLA_FLAGS", f"{host.DEVICE_FLAG}=3")  # the user's own choice stays
    assert host.configure() == {} and os.environ["XLA_FLAGS"] == f"{host.DEVICE_FLAG}=3"
    monkeypatch.delenv("XLA_FLAGS")
    assert host.configure(devices=1) == {} and "XLA_FLAGS" not in os.environ  # --host-devices 1
    monkeypatch.setenv(host.DEVICES_ENV, "2")
    assert host.configure() == {"host_devices": 2}


def test_nothing_changes_off_the_cpu_or_after_the_backend_started(fresh_cpu, monkeypatch):
    monkeypatch.setattr(compat, "default_platform", lambda start_backend=False: "gpu")
    assert host.configure() == {}
    monkeypatch.setattr(compat, "default_platform", lambda start_backend=False: "cpu")
    monkeypatch.setattr(compat, "backends_started", lambda: True)
    assert host.configure() == {}
    with pytest.warns(RuntimeWarning, match="3 host devices were asked for after JAX's backend started"):
        host.configure(devices=3)
    assert "XLA_FLAGS" not in os.environ


def test_the_command_line_uses_every_core():
    code = ("import sys, jax\nfrom purejaxpg import cli\nassert cli.main(['list']) == 0\n"
            "print('DEVICES', jax.device_count())\n")
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(drop=("XLA_FLAGS", host.DEVICES_ENV)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"DEVICES {host.cores()}" in proc.stdout


_THREEFRY = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
if sys.argv[1] == "straight":
    from purejaxpg.engine import host
    assert host.straight_threefry()
key = jax.random.key(20261207)
draws = jax.jit(lambda k: (jax.random.bits(k, (4099,)), jax.random.key_data(jax.random.split(k, 5)),
                           jax.random.normal(jax.random.fold_in(k, 3), (7, 3))))
text = draws.lower(key).as_text()
from jax.extend.random import threefry_2x32
raw = threefry_2x32(np.uint32([0x13198A2E, 0x03707344]), np.uint32([0x243F6A88, 0x85A308D3]))
print(json.dumps({"loop": "while" in text, "known_answer": [int(x) for x in raw],
                  "draws": [np.asarray(x).view(np.uint32).tolist() for x in draws(key)]}))
"""


def test_threefry_as_straight_line_code_draws_the_same_bits():
    """In fresh processes, JAX's CPU default (a loop of rounds) and ``straight_threefry``:
    the lowered program has no loop with it, and the bits are the same (draws, splits and a
    normal sample), both matching Threefry-2x32's published known answer (Salmon et al.,
    2011: key 13198a2e 03707344, counter 243f6a88 85a308d3 -> c4923a9c 483df7a0)."""
    out = {}
    for mode in ("default", "straight"):
        proc = subprocess.run([sys.executable, "-c", _THREEFRY, mode], env=child_env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[mode] = json.loads(proc.stdout)
    assert out["default"]["loop"] and not out["straight"]["loop"]
    assert out["default"]["known_answer"] == out["straight"]["known_answer"] == [0xC4923A9C, 0x483DF7A0]
    assert out["default"]["draws"] == out["straight"]["draws"]
