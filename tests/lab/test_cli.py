"""The `jaxopt-edu` command line, run in-process with tiny sizes."""

import csv
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jaxopt_edu
from jaxopt_edu.lab import cli

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    assert matplotlib.image.imread(path).ndim == 3


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".jaxopt_edu-partial")]


def test_problems_lists_every_problem(capsys):
    assert cli.main(["problems"]) == 0
    out = capsys.readouterr().out
    for name in ("rosenbrock", "spirals", "bilinear", "digits"):
        assert name in out


def test_optimizers_lists_every_public_optimizer_with_its_first_docstring_line(capsys):
    assert cli.main(["optimizers"]) == 0
    out = capsys.readouterr().out
    for name in ("adam", "sgd", "rmsprop", "adagrad", "adadelta", "adamw", "nadam"):
        first = inspect.getdoc(getattr(jaxopt_edu, name)).splitlines()[0]
        assert any(line.startswith(name) and first in line for line in out.splitlines()), name
    assert "momentum" in out  # the compare names too


def test_explain_an_alias_prints_its_doc_and_its_transforms_math(capsys):
    assert cli.main(["explain", "adam"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("adam(learning_rate, b1=0.9")
    assert "PyTorch" in out and "Pitfall" in out
    assert "the math: scale_by_adam(" in out


def test_explain_a_transform_and_a_compare_name(capsys):
    assert cli.main(["explain", "scale_by_rms"]) == 0
    assert "the math" not in capsys.readouterr().out
    assert cli.main(["explain", "momentum"]) == 0  # compare's name for sgd(momentum=0.9)
    assert capsys.readouterr().out.startswith("sgd(")


def test_explain_renders_markdown_with_rich_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.setattr(cli, "_use_rich", lambda stream: True)
    assert cli.main(["explain", "rmsprop"]) == 0
    out = capsys.readouterr().out
    assert "rmsprop(" in out and "Pitfall:" in out and "scale_by_rms" in out
    assert "**" not in out  # the Markdown was rendered, not printed


def test_compare_prints_table_and_diagnosis_and_writes_files(capsys, tmp_path):
    out_dir = tmp_path / "run"
    argv = ["compare", "--optimizers", "sgd,adam", "--problem", "rosenbrock", "--steps", "12",
            "--seeds", "2", "--eval-every", "4", "--out", str(out_dir)]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "optimizer" in captured.out and "final loss" in captured.out
    assert "diagnosis (rosenbrock)" in captured.out
    assert "  sgd:" in captured.out and "  adam:" in captured.out
    assert "[1/2] rosenbrock" in captured.err  # plain progress lines when not a terminal
    assert "\x1b[" not in captured.out + captured.err  # no terminal codes in a pipe
    names = {p.name for p in out_dir.iterdir()}
    assert names == {"rosenbrock_losses.png", "rosenbrock_trajectories.png", "results.json",
                     "results.csv"}  # fmt: skip
    assert_png(out_dir / "rosenbrock_losses.png")
    assert_png(out_dir / "rosenbrock_trajectories.png")
    doc = json.loads((out_dir / "results.json").read_text())
    assert doc["results"][0]["problem"] == "rosenbrock" and doc["results"][0]["seeds"] == 2
    rows = list(csv.DictReader((out_dir / "results.csv").read_text().splitlines()))
    assert [r["optimizer"] for r in rows] == ["sgd", "adam"]
    assert leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert out_dir.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0o700


def test_compare_task_with_lr_override_and_no_files(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--optimizers", "adam", "--problem", "logistic_regression",
            "--steps", "10", "--lr", "0.05", "--no-out", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "val_accuracy" in captured.out and "0.05" in captured.out
    assert captured.err == "" and list(tmp_path.iterdir()) == []


def test_compare_defaults_are_the_readme_job():
    args = cli._parser().parse_args(["compare"])
    assert cli._split_names(args.optimizers, cli.MAIN_OPTIMIZERS) == [
        "sgd", "momentum", "rmsprop", "adagrad", "adam"]  # fmt: skip
    assert cli._split_names(args.problem, cli.MAIN_PROBLEMS) == ["rosenbrock", "spirals"]
    assert args.out == "jaxopt_edu_out" and args.steps >= 100
    args = cli._parser().parse_args(["compare", "--problem", "beale,saddle", "--problem", "ackley"])
    assert cli._split_names(args.problem, "") == ["beale", "saddle", "ackley"]


def test_compare_into_an_existing_folder_keeps_other_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--steps", "5",
            "--out", str(tmp_path), "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "beale_trajectories.png").exists() and leftovers(tmp_path) == []


def test_a_failing_run_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    from jaxopt_edu.lab import plots

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(plots, "plot_trajectories", broken)
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--steps", "5",
            "--out", str(tmp_path / "run"), "-q"]  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(argv)
    assert list(tmp_path.iterdir()) == []


def test_sweep_prints_the_best_and_draws_a_heat_map(capsys, tmp_path):
    argv = ["sweep", "--optimizer", "adam", "--grid", "learning_rate=1e-3:1e-1:3:log,b1=0.8,0.9",
            "--problem", "rosenbrock", "--steps", "8", "--out", str(tmp_path / "s")]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "best: learning_rate=" in out and "6 points" in out
    assert_png(tmp_path / "s" / "sweep.png")
    doc = json.loads((tmp_path / "s" / "sweep_results.json").read_text())
    assert doc["names"] == ["learning_rate", "b1"] and len(doc["values"][0]) == 3
    assert (
        len(list(csv.DictReader((tmp_path / "s" / "sweep_results.csv").read_text().splitlines())))
        == 6
    )


def test_lr_find_suggests_a_learning_rate_and_plots_it(capsys, tmp_path):
    argv = ["lr-find", "--optimizer", "rmsprop", "--problem", "rosenbrock", "--steps", "20",
            "--min-lr", "1e-5", "--max-lr", "1", "--out", str(tmp_path / "f")]  # fmt: skip
    assert cli.main(argv) == 0
    assert "suggested learning rate:" in capsys.readouterr().out
    assert_png(tmp_path / "f" / "lr_find.png")
    assert (
        json.loads((tmp_path / "f" / "lr_find_results.json").read_text())["optimizer"] == "rmsprop"
    )


def test_parse_grid_reads_lists_and_ranges():
    grid = cli.parse_grid("learning_rate=1e-4:1e-1:4:log,b1=0.8,0.9,0.99")
    assert grid["b1"] == [0.8, 0.9, 0.99]
    assert grid["learning_rate"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert cli.parse_grid(["eps=0:1:3", "b2=0.9"]) == {"eps": [0.0, 0.5, 1.0], "b2": [0.9]}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("1e-3,1e-2", "must start with NAME="),
        ("learning_rate=", "empty value"),
        ("learning_rate=abc", "cannot read 'abc'"),
        ("learning_rate=1e-3:1e-1:x:log", "START:STOP:NUM"),
        ("learning_rate=0:1:3:log", "positive ends"),
        ("b1=0.9,b1=0.8", "twice"),
        ("=0.9", "not a hyperparameter name"),
    ],
)
def test_parse_grid_rejects_malformed_grids(spec, message):
    with pytest.raises(ValueError, match=message):
        cli.parse_grid(spec)


BAD_INPUT = [
    (["compare", "--optimizers", "sgd,fancy"], ["unknown optimizer 'fancy'", "adam, adamw"]),
    (["compare", "--problem", "moon"], ["unknown problem 'moon'", "rosenbrock", "spirals"]),
    (["compare", "--steps", "-3"], ["--steps", "must be a positive integer"]),
    (["compare", "--steps", "0"], ["--steps", "must be a positive integer"]),
    (["compare", "--seeds", "two"], ["--seeds", "must be a positive integer"]),
    (["compare", "--lr", "-1"], ["--lr", "must be a positive number"]),
    (["sweep", "--grid", "learning_rate=fast"], ["malformed --grid", "START:STOP:NUM"]),
    (["sweep", "--grid", "0.1,0.2"], ["malformed --grid", "NAME="]),
    (["sweep", "--optimizer", "sgd", "--grid", "b1=0.9"], ["'b1' is not a hyperparameter",
                                                           "choose from: learning_rate"]),
    (["sweep", "--grid", "b1=0.5,1.5"], ["grid value b1=1.5", "b1"]),
    (["sweep", "--optimizer", "adamm"], ["unknown optimizer 'adamm'", "adam"]),
    (["lr-find", "--min-lr", "1", "--max-lr", "0.1"], ["--max-lr (0.1) must be larger"]),
    (["lr-find", "--steps", "2"], ["at least 3"]),
    (["lr-find", "--seed", "-1"], ["--seed", "must be an integer >= 0"]),
    (["explain", "adamm"], ["nothing called 'adamm'", "Did you mean: adam", "scale_by_adam"]),
    (["fly"], ["invalid choice: 'fly'", "compare"]),
]  # fmt: skip


@pytest.mark.parametrize("argv, messages", BAD_INPUT, ids=lambda x: " ".join(x)[:40])
def test_bad_input_exits_2_with_the_valid_choices_and_writes_nothing(argv, messages, tmp_path,
                                                                      capsys):  # fmt: skip
    out_dir = tmp_path / "out"
    extra = ["--out", str(out_dir)] if argv[0] in ("compare", "sweep", "lr-find") else []
    assert cli.main(argv + extra) == 2
    err = capsys.readouterr().err
    for m in messages:
        assert m in err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_exits_2_before_running(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker / "out", blocker):
        argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--out", str(out)]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "--out" in err and "not a directory" in err
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_read_only_out_exits_2(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--out", str(locked / "o")]
    assert cli.main(argv) == 2
    assert "cannot write there" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


def test_an_out_folder_that_refuses_writes_exits_2(tmp_path, capsys, monkeypatch):
    def refuse(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "mkdtemp", refuse)
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    assert "cannot write there (Permission denied)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_tables_use_rich_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.setattr(cli, "_use_rich", lambda stream: True)
    assert cli.main(["problems"]) == 0
    out = capsys.readouterr().out
    assert "rosenbrock" in out and "two-spirals MLP classifier" in out


def test_python_dash_m_runs_the_command_line():
    root = str(Path(jaxopt_edu.__file__).parents[1])
    env = os.environ | {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "jaxopt_edu", *argv], capture_output=True,
                              text=True, timeout=120, env=env, cwd=root)  # fmt: skip

    bad = run("compare", "--steps", "-1")
    assert bad.returncode == 2 and "positive integer" in bad.stderr
    ok = run("--help")
    assert ok.returncode == 0 and "compare" in ok.stdout and "lr-find" in ok.stdout
