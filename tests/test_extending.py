"""docs/extending.md: its example is examples/klpg.py, which trains from outside the package
(``module:attribute``) through the CLI and the runner, and learns."""
import os
import re
import sys

import numpy as np
import pytest

from purejaxpg import cli
from purejaxpg.analysis import stats
from purejaxpg.engine import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    yield
    sys.modules.pop("klpg", None)


def test_the_page_shows_the_example_file():
    doc = open(os.path.join(ROOT, "docs", "extending.md")).read()
    block = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    assert block == open(os.path.join(ROOT, "examples", "klpg.py")).read()


def test_example_algorithm_lists_validates_and_learns(examples_on_path, capsys, tmp_path):
    assert cli.main(["list", "klpg:ALGORITHM"]) == 0
    listing = capsys.readouterr().out
    assert "kl_coef" in listing and "traced; in [0, inf); default 1" in listing
    assert cli.main(["train", "klpg:ALGORITHM", "--kl-coef=-1"]) == 2
    assert "kl_coef must lie in [0, inf)" in capsys.readouterr().err
    assert cli.main(["train", "no_such_module:ALGORITHM"]) == 2
    assert "cannot load algorithm" in capsys.readouterr().err
    # 4 seeds x 6e4 env steps in one program: a uniform policy scores about 22 on CartPole
    r, = runner.train("klpg:ALGORITHM", {"total_timesteps": 60_000}, num_seeds=4, quiet=True).groups
    first = np.nanmean(r.metrics["episode_return"][0][:, :3])
    assert first < 40 and stats.iqm(r.final[0]) >= 80, (first, r.final)
