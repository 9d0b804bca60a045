"""examples/sweep_to_pandas.py at a small budget (examples/klpg.py and examples/point_mass.py are
trained in test_extending.py and test_api.py)."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sweep_into_pandas(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    import sweep_to_pandas

    finals = sweep_to_pandas.main(str(tmp_path / "sw"), total_timesteps=4096)
    assert len(finals) == 6 * 4 and set(finals.columns) == {"name", "lr", "ent_coef", "seed", "final_return"}
    assert sorted(finals.lr.unique()) == [3e-4, 1e-3, 3e-3]
    assert "last_training_return" in capsys.readouterr().out
