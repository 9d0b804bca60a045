"""Every command in README.md and docs/*.md runs here, at a small budget, so the docs cannot
drift from the code.

Each page's fenced ``bash`` blocks are read line by line (a trailing backslash continues a
line; ``#`` starts a comment; ``&&`` separates commands) and its ``python`` blocks as a
whole; a page's commands and blocks run in their order, in a fresh directory per page
(``tests/docs_runner.py``):

* ``purejaxpg ...`` runs in that process (``purejaxpg.cli.main``) and must exit 0. Every run
  is cut to 4 updates after its warm-up (an off-policy warm-up of random actions to one
  update) and the lab to 4 batches without its
  natural-gradient and off-policy sections (``tests/test_lab_natural.py`` runs those);
* ``VAR=value`` before a command: ``PYTHONPATH`` entries go on ``sys.path`` (relative to the
  repository), other variables into the environment for that command;
* ``python examples/...`` runs in that process (``runpy``), with the same budget;
* ``python benchmarks/...``, ``python scripts/...``, ``python -m benchmarks`` run in a child
  process with ``--smoke`` added (every step of the benchmark at its smallest budget, its
  results written to the page's directory; a script without ``--smoke`` fails here), and
  ``bash benchmarks/gpu.sh STAGE`` with ``SMOKE=1``; each must exit 0;
* ``python3 -m venv``, ``. .venv/bin/activate``, ``pip install`` and ``pytest``: README's two
  commands, which ``../shared/tools/fresh-clone-check`` runs on a fresh clone; here the
  extras they name must exist in pyproject.toml.

A ``text`` block is not run (the multi-process commands of sweeps-and-devices.md, which
``tests/test_distributed.py`` runs as two processes).

Commands on MuJoCo physics (``playground/``, ``brax/`` envs, the physics benchmark and
acceptance scripts) run in ``test_the_physics_commands_run`` (``-m slow``): MJX and
brax.training programs take minutes to compile on a CPU, more than the default run's budget
on 2 cores; the default run checks them without training (``tests/test_physics_doc.py``) and
trains CartpoleBalance (``tests/test_physics_learning.py``).

Each page runs in its own process with XLA's backend optimisations off: what is checked is
that the commands run, not their numbers, and that about halves the compile time of each
(PPO on CartPole, 8 seeds: 127 and 138 s against 73 and 48 s on 2 cores under load 12); the
physics commands keep them on (MJX's contact physics runs about 50x slower without them).
``PUREJAXPG_DOCS_TIMES=FILE`` appends each command's time to FILE.
"""
import os
import subprocess
import sys

import pytest
from docs_runner import FAST_COMPILE, PHYSICS, ROOT, SKIPPED, blocks

PAGES = ["README.md"] + sorted(os.path.join("docs", p) for p in os.listdir(os.path.join(ROOT, "docs"))
                               if p.endswith(".md"))
PHYSICS_PAGES = [p for p in PAGES if any(kind == "bash" and any(PHYSICS.search(" ".join(w)) for w in content)
                                         for kind, content in blocks(p))]


def run_page(page: str, directory, which: str) -> None:
    # no FAST_COMPILE for MJX: its contact physics then runs ~50x slower (brax/hopper: 58 env steps/s)
    fast = FAST_COMPILE if which == "rest" else ""
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {fast}".strip()}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "docs_runner.py"), page, str(directory), which],
                          env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    skipped = [line[len(SKIPPED):] for line in proc.stdout.splitlines() if line.startswith(SKIPPED)]
    if skipped:  # the physics commands, without the mujoco extra
        pytest.skip("not run: " + "; ".join(skipped))


def test_the_reader_finds_the_commands():
    readme = [c for kind, c in blocks("README.md") if kind == "bash"]
    assert readme[0][-1][:3] == ["purejaxpg", "train", "ppo"] and readme[1][-1] == ["pytest"]
    assert blocks("docs/sweeps-and-devices.md")[0][1][0][:2] == ["purejaxpg", "sweep"]
    for page in PAGES:
        if page not in ("docs/extending.md", "docs/development.md"):
            assert any(content for _, content in blocks(page)), f"{page}: no command to run"


@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_the_page_runs(page, tmp_path):
    run_page(page, tmp_path, "rest")


@pytest.mark.slow
@pytest.mark.parametrize("page", PHYSICS_PAGES)
def test_the_physics_commands_run(page, tmp_path):
    run_page(page, tmp_path, "physics")
