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


# ------------------------------------------------------------------ problem options


def test_problem_specs_split_on_commas_before_a_name_and_read_numbers():
    specs = cli._parse_problem_specs(
        ["rosenbrock,spirals:dropout=0.1,l2=1e-4,hidden=8,beale", "rastrigin:dim=1e1"], ""
    )
    assert [(n, o) for n, o, _ in specs] == [
        ("rosenbrock", {}),
        ("spirals", {"dropout": 0.1, "l2": 1e-4, "hidden": 8}),
        ("beale", {}),
        ("rastrigin", {"dim": 10}),
    ]
    assert type(specs[1][1]["hidden"]) is int and type(specs[3][1]["dim"]) is int
    assert specs[1][2] == "spirals:dropout=0.1,l2=1e-4,hidden=8"
    # a float option stays a float even when integral; a repeated --problem is the same
    (spec,) = cli._parse_problem_specs(["ill_conditioned_quadratic:dim=3,condition_number=1000"],
                                       "")  # fmt: skip
    assert spec[1] == {"dim": 3, "condition_number": 1000.0}
    assert type(spec[1]["condition_number"]) is float


def test_compare_with_problem_options_comma_and_repeated(capsys, tmp_path):
    argv = ["compare", "--optimizers", "sgd", "--problem", "rastrigin:dim=3,beale",
            "--problem", "ill_conditioned_quadratic:dim=4,condition_number=10", "--steps", "4",
            "--out", str(tmp_path / "o"), "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "rastrigin(dim=3)" in out and "diagnosis (beale)" in out
    assert "ill_conditioned_quadratic(dim=4, condition_number=10.0)" in out
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["problem"] for r in doc["results"]] == [
        "rastrigin", "beale", "ill_conditioned_quadratic"]  # fmt: skip
    assert doc["results"][0]["problem_options"] == {"dim": 3}
    names = {p.name for p in (tmp_path / "o").iterdir()}
    assert "rastrigin_dim3_losses.png" in names and "beale_trajectories.png" in names
    assert sorted(doc["files"]) == sorted(names)


def test_sweep_and_lr_find_take_problem_options(capsys, tmp_path):
    argv = ["sweep", "--grid", "learning_rate=1e-2,1e-1", "--problem",
            "spirals:dropout=0.1,l2=1e-4,hidden=4", "--steps", "3", "--no-out", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "spirals(dropout=0.1, l2=0.0001, hidden=4)" in capsys.readouterr().out
    argv = ["lr-find", "--problem", "rastrigin:dim=3", "--steps", "5",
            "--out", str(tmp_path / "f"), "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "rastrigin(dim=3)" in capsys.readouterr().out
    doc = json.loads((tmp_path / "f" / "lr_find_results.json").read_text())
    assert doc["problem_options"] == {"dim": 3}
    assert sorted(doc["files"]) == ["lr_find.png", "lr_find_results.csv", "lr_find_results.json"]


BAD_PROBLEMS = [
    (["compare", "--problem", "rastrigin:depth=3"], ["unknown option `depth`", "dim"]),
    (["compare", "--problem", "spirals:dropout=1.5"], ["`dropout` must be in [0, 1)"]),
    (["compare", "--problem", "rastrigin:dim=2.5"], ["`dim` must be an integer"]),
    (["compare", "--problem", "spirals:dropout=lots"], ["cannot read 'lots'", "dropout"]),
    (["compare", "--problem", "dim=3"], ["before any problem name"]),
    (["compare", "--problem", "beale:a=1"], ["unknown option `a`", "no options"]),
    (["compare", "--problem", "spirals:l2"], ["OPTION=VALUE"]),
    (["sweep", "--problem", "rastrigin:dim=0"], ["`dim` must be an integer >= 1"]),
    (["sweep", "--problem", "beale,rosenbrock"], ["sweep runs one problem"]),
    (["lr-find", "--problem", "spirals:hidden=0"], ["`hidden` must be an integer >= 1"]),
]  # fmt: skip


@pytest.mark.parametrize("argv, messages", BAD_PROBLEMS, ids=lambda x: " ".join(x)[:40])
def test_bad_problem_options_exit_2_with_the_valid_ones(argv, messages, tmp_path, capsys):
    assert cli.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for m in messages:
        assert m in err
    assert list(tmp_path.iterdir()) == []


def test_problems_lists_each_problems_options(capsys):
    assert cli.main(["problems"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("rastrigin") and "dim=2" in line for line in lines)
    quad = next(line for line in lines if line.startswith("ill_conditioned_quadratic"))
    assert "dim=10" in quad and "condition_number=100.0" in quad
    assert any(line.startswith("spirals") and "dropout=0.0" in line for line in lines)


def test_help_documents_the_problem_syntax(capsys):
    for command in ("compare", "sweep", "lr-find"):
        assert cli.main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "NAME[:OPTION=VALUE" in out and "repeat --problem" in out
        assert '"files"' in out


# ------------------------------------------------------------------ diagnosis of the game


@pytest.mark.parametrize("accepts", [True, False])
def test_bilinear_is_diagnosed_as_a_gradient_field_when_diagnose_accepts_it(
    accepts, monkeypatch, capsys
):
    from jaxopt_edu.lab import diagnostics

    calls = []

    def fake_with(history, *, lr=None, reference_loss=None, val_mode="min",
                  gradient_field=False):  # fmt: skip
        calls.append(gradient_field)
        return []

    def fake_without(history, *, lr=None, reference_loss=None, val_mode="min"):
        calls.append(None)
        return []

    monkeypatch.setattr(diagnostics, "diagnose", fake_with if accepts else fake_without)
    monkeypatch.setattr(diagnostics, "format_findings", lambda found: "no trap found")
    argv = ["compare", "--optimizers", "sgd", "--problem", "bilinear,beale", "--steps", "4",
            "--no-out", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    assert calls == ([True, False] if accepts else [None, None])


# ------------------------------------------------------------------ the --out folder


def test_a_directory_where_a_file_goes_exits_2_before_running(tmp_path, capsys, monkeypatch):
    import importlib

    def never(*args, **kwargs):
        raise AssertionError("ran")

    monkeypatch.setattr(importlib.import_module("jaxopt_edu.lab.compare"), "compare", never)
    out = tmp_path / "o2"
    (out / "results.json").mkdir(parents=True)
    (out / "mine.txt").write_text("mine")
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "results.json is a directory" in err and "Nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o2"]
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "results.json"]


def test_a_failing_move_restores_the_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.csv").write_text("old")
    real = os.replace
    moved = []

    def flaky(src, dst):
        if Path(dst).name == "results.json" and Path(dst).parent == out:
            raise OSError(28, "No space left on device")
        moved.append(Path(dst).name)
        return real(src, dst)

    monkeypatch.setattr(cli.os, "replace", flaky)
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--steps", "3",
            "--out", str(out), "-q"]  # fmt: skip
    with pytest.raises(OSError, match="No space"):
        cli.main(argv)
    assert "beale_losses.png" in moved  # some files had been moved before the failure
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
    assert (out / "results.csv").read_text() == "old"
    assert leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_results_list_exactly_this_runs_files(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--steps", "3",
            "--out", str(out), "-q"]  # fmt: skip
    assert cli.main([*argv, "--gif"]) == 0
    assert (out / "beale_trajectories.gif").exists()
    assert cli.main(argv) == 0  # again, without --gif
    doc = json.loads((out / "results.json").read_text())
    assert sorted(doc["files"]) == ["beale_losses.png", "beale_trajectories.png",
                                    "results.csv", "results.json"]  # fmt: skip
    assert (out / "beale_trajectories.gif").exists()  # an earlier run's file is kept
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ seeds and the trajectory plot


def test_several_seeds_say_the_trajectory_plot_shows_seed_0(tmp_path, capsys, monkeypatch):
    from jaxopt_edu.lab import plots

    argv = ["compare", "--optimizers", "sgd", "--problem", "beale", "--steps", "3",
            "--seeds", "2", "--out", str(tmp_path / "a"), "-q"]  # fmt: skip
    if "title" in inspect.signature(plots.plot_trajectories).parameters:
        titles = []
        real = plots.plot_trajectories

        def spy(*args, **kwargs):
            titles.append(kwargs.get("title"))
            return real(*args, **kwargs)

        monkeypatch.setattr(plots, "plot_trajectories", spy)
        assert cli.main(argv) == 0
        assert titles and "seed 0 of 2" in titles[0]
    else:
        assert cli.main(argv) == 0
        assert "beale_trajectories.png shows seed 0 of 2" in capsys.readouterr().out
    argv[argv.index("--seeds") + 1] = "1"
    argv[argv.index("--out") + 1] = str(tmp_path / "b")
    assert cli.main(argv) == 0
    assert "seed 0" not in capsys.readouterr().out
