"""A model, a data set, a noise model and an allocation method from outside the package: installed
(entry points) or named by import path, through main.py; bad plugins end in one line."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_bad_input import fails_cleanly

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"
QUIET = ["--config", "none", "--no-progress", "--no_plot"]


def run(argv, pythonpath, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example plugin pip-installed (from a copy, so the source tree stays clean) into a folder of its
    own, and a broken package beside it: its entry point's module raises on import."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "--target", str(target), str(tmp / "src")], check=True, capture_output=True)
    (target / "broken_plugin.py").write_text("raise ImportError('this package is broken on purpose')\n")
    info = target / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[noisesim.models]\nbroken = broken_plugin:factory\n")
    return target


@pytest.fixture(scope="module")
def trained(installed, tmp_path_factory):
    """The plugin's model trained on the plugin's data by `noisesim pretrain` (a few seconds)."""
    out = tmp_path_factory.mktemp("weights") / "tiny_cnn.pt"
    r = run(["pretrain", "--model", "tiny_cnn", "--dataset", "blobs", "--epochs", "3", "--out", str(out)], installed)
    assert r.returncode == 0, r.stderr
    return out


def test_installed_plugins_run_through_main_and_a_broken_one_only_warns(installed, trained, tmp_path):
    """All four from entry points in one run; the equal-SNR allocation (E_l ~ D_l) must beat uniform energies
    under thermal noise (sigma ~ sqrt(D/E)), which only a working plugin allocator and noise path can do."""
    r = run(["--config", "none", "--no-progress", "--model", "tiny_cnn", "--dataset", "blobs",
             "--checkpoint_path", str(trained),
             "--noise_type", "readout", "thermal", "--allocation", "uniform", "equal_snr", "--target_emac", "0.01",
             "--log_dir", str(tmp_path), "--run_name", "run"], installed)
    assert r.returncode == 0, r.stderr
    assert "entry point broken = broken_plugin:factory" in r.stderr and "left out: ImportError" in r.stderr
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(df["model"]) == {"tiny_cnn"} and set(df["dataset"]) == {"blobs"}
    assert set(df["noise_type"]) == {"readout", "thermal"} and set(df["allocation"]) == {"uniform", "equal_snr"}
    assert df["float_accuracy"].iloc[0] > 0.95
    acc = df.set_index(["noise_type", "allocation"])["accuracy"]
    assert acc["readout", "uniform"] < 0.9  # the plugin's noise is on
    assert acc["thermal", "equal_snr"] > acc["thermal", "uniform"] + 0.08
    row = df[(df["allocation"] == "equal_snr") & (df["noise_type"] == "thermal")].iloc[0]
    layers = pd.read_csv(tmp_path / "run" / "layers" / f"{row['point_id']}.csv")
    assert np.allclose(layers["e_mac"] / layers["fan_in"], layers["e_mac"].iloc[0] / layers["fan_in"].iloc[0])
    assert np.average(layers["e_mac"], weights=layers["macs"]) == pytest.approx(0.01)
    assert (tmp_path / "run" / "energy_by_layer.png").is_file()  # the plots read layers named "0", "4"
    help_text = run(["--help"], installed).stdout
    for name in ("tiny_cnn", "blobs", "readout", "equal_snr"):
        assert name in help_text


def test_import_paths_need_no_installation(tmp_path):
    pkg = "noisesim_example_plugin"
    r = run([*QUIET, "--model", f"{pkg}.models:tiny_cnn", "--dataset", f"{pkg}.data:blobs", "--eval_batches", "1",
             "--noise_type", f"{pkg}.noise:ReadoutNoise", "--allocation", f"{pkg}.allocators:EqualSNRAllocator",
             "--target_emac", "2", "--model_options", '{"width": 4}', "--log_dir", str(tmp_path),
             "--run_name", "run"], PLUGIN)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(df["allocation"]) == [f"{pkg}.allocators:EqualSNRAllocator"]
    assert df["avg_emac"].iloc[0] == pytest.approx(2.0)


BAD = textwrap.dedent("""
    import torch
    from noisesim.allocate import Allocator

    not_callable = 3

    def raises(num_classes=4, in_channels=1):
        raise RuntimeError("broken on purpose")

    def returns_text(num_classes=4, in_channels=1):
        return "a network"

    def returns_list(options):
        return [1, 2]

    def loader_raises(options):
        raise KeyError("no such split")

    class NotANoise:
        pass

    class NeedsArguments(Allocator):
        def __init__(self, budget):
            self.budget = budget

        def allocate(self, problem):
            return None

    class ReturnsNothing(Allocator):
        def allocate(self, problem):
            return None
""")
GOOD_MODEL = ["--model", "noisesim_example_plugin.models:tiny_cnn"]
GOOD_DATA = ["--dataset", "noisesim_example_plugin.data:blobs"]


@pytest.fixture
def bad_plugins(tmp_path, monkeypatch):
    (tmp_path / "badplug.py").write_text(BAD)
    (tmp_path / "badimport.py").write_text("import torch\ndef (:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN))


@pytest.mark.parametrize("argv, words", [
    (["--model", "nosuch_pkg.nets:f", *GOOD_DATA], ["--model nosuch_pkg.nets:f", "cannot import nosuch_pkg.nets"]),
    (["--model", "badimport:f", *GOOD_DATA], ["--model badimport:f", "cannot import badimport (SyntaxError"]),
    (["--model", "badplug:missing", *GOOD_DATA], ["--model badplug:missing", "has no attribute missing"]),
    (["--model", "badplug", *GOOD_DATA], ["--model badplug", "unknown"]),
    (["--model", "badplug:not_callable", *GOOD_DATA], ["--model badplug:not_callable", "not a model factory"]),
    (["--model", "badplug:raises", *GOOD_DATA], ["--model badplug:raises", "raised RuntimeError: broken on purpose"]),
    (["--model", "badplug:returns_text", *GOOD_DATA], ["--model badplug:returns_text", "returned str"]),
    ([*GOOD_MODEL, "--dataset", "badplug:returns_list"], ["--dataset badplug:returns_list", "returned list"]),
    ([*GOOD_MODEL, "--dataset", "badplug:loader_raises"], ["--dataset badplug:loader_raises", "raised KeyError"]),
    ([*GOOD_MODEL, *GOOD_DATA, "--noise_type", "badplug:NotANoise"], ["--noise_type badplug:NotANoise",
                                                                       "not a subclass of noisesim.noise.NoiseModel"]),
    ([*GOOD_MODEL, *GOOD_DATA, "--allocation", "badplug:NotANoise"], ["--allocation badplug:NotANoise",
                                                                       "not a subclass of noisesim.allocate.Allocator"]),
    ([*GOOD_MODEL, *GOOD_DATA, "--allocation", "badplug:ReturnsNothing", "--weight_bits", "8", "--act_bits", "8",
      "--quantity", "act_bits", "--target_act_bits", "3"],  # a method that does not declare activation bits
     ["--allocation badplug:ReturnsNothing", "allocates energy or weight_bits only, not --quantity act_bits"]),
], ids=lambda v: v[1] if isinstance(v, list) and v and v[0].startswith("--") else None)
def test_a_bad_plugin_is_one_line_naming_its_flag(bad_plugins, tmp_path, capsys, argv, words):
    fails_cleanly(capsys, tmp_path, [*argv, "--eval_batches", "1"], *words)


@pytest.mark.parametrize("method, words", [("NeedsArguments", "cannot be made from its settings"),
                                           ("ReturnsNothing", "allocate() returned NoneType, not an Allocation")])
def test_an_allocator_failing_mid_run_is_one_line(bad_plugins, tmp_path, capsys, method, words):
    from noisesim.experiment.main import main

    code = main([*QUIET, *GOOD_MODEL, *GOOD_DATA, "--eval_batches", "1", "--allocation", f"badplug:{method}",
                 "--target_emac", "1", "--log_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"--allocation badplug:{method}: {words}" in err[0], err
