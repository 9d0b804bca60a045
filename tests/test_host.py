"""engine/host.py: one XLA device per core on a CPU, unless the user chose otherwise."""
import os
import subprocess
import sys

import pytest

from purejaxpg.engine import compat, host

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", host.DEVICES_ENV)}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"DEVICES {host.cores()}" in proc.stdout
