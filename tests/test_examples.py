"""The shipped examples run and learn (short runs)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


@pytest.mark.parametrize("module", ["quickstart", "flat_training"])
def test_example_trains(module, capsys):
    mod = __import__(module)
    final = mod.main(steps=300)
    out = capsys.readouterr().out
    first = float(out.split("loss ")[1].split()[0])  # the loss printed at step 0
    assert final < 0.1 * first, (first, final)
