"""Every code block of README.md and docs/*.md runs (Sybil reads them), so no snippet can go stale.

Python blocks run in order, one namespace per document, seeded with small stand-ins for the names a snippet
takes as given (``model``, ``images``, ``train_loader``, ``sim``, ...): a ResNet-18 on 32 x 32 images.

Shell blocks are checked command by command, the way each can be without starting an hour-long study:

* ``python main.py ...`` / ``noisesim ...`` (an experiment): parsed and validated as the command would be, with
  every flag, value and combination checked by ``ExperimentConfig``; ``--help`` is printed.
* ``export`` and ``plot``: run for real on a small run of the default study (``logs/<run>`` and the other
  run-folder placeholders point at it; ``--out`` into a temporary folder).
* ``study``: ``--list`` run, a study dry-run (every run's flags validated).
* ``precision`` and ``pretrain``: parsed and validated (they train for minutes to hours); an empty file stands in
  for the weights ``pretrain --out`` would write.
* ``VAR=... run_noise/x.sh ARGS``, ``bash FILE``: the script exists, ``bash -n`` accepts it, every variable set
  before it is one the script (or the ``common.sh`` it sources) reads, and a script that runs a study accepts
  ``ARGS`` (a dry run of ``main.py study``).
* ``torchrun ... main.py FLAGS``: the flags are parsed (``...`` stands for any further flags).
* ``PYTHONPATH=DIR command``: the command is checked with ``DIR`` importable (plugins named by import path).
* ``pip install examples/plugin``: the plugin is installed into a temporary folder, and the block's later commands
  are checked in a fresh interpreter that sees it (its entry points then name models, data sets, ...).
* ``toml`` blocks: copied verbatim from the example plugin's ``pyproject.toml``.
* ``python -m pytest``: this suite itself.

A block that is a synopsis rather than a command is fenced as ``text``.
"""
import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = ("python", "python3", ".venv/bin/python")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default study (``python main.py``), small: 2 targets, 64 test images."""
    from noisesim.experiment.main import main

    logs = tmp_path_factory.mktemp("logs")
    assert main(["--log_dir", str(logs), "--run_name", "default", "--target_emac", "2", "20", "--train_batches",
                 "2", "--eval_batches", "1", "--val_batch_size", "64", "--calibration_batches", "1",
                 "--bootstrap", "50", "--no-progress", "--no_plot"]) == 0
    return logs / "default"


def _namespace() -> dict:
    """The names the Python snippets take as given."""
    import numpy
    import torchvision
    from torch import nn

    import noisesim
    from noisesim.data.tasks import Classification
    from noisesim.data.tensors import TensorBatches
    from noisesim.train.qat import qat_parameters

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    batches = TensorBatches(images, labels, 8)
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type="thermal"))
    noisesim.calibrate(sim, batches, max_batches=1)
    other_sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal", noise_per_channel=True))
    noisesim.calibrate(other_sim, batches, max_batches=1)
    optimizer = torch.optim.SGD(qat_parameters(sim), lr=1e-3)
    return dict(model=model, images=images[:8], calibration_batches=batches, train_loader=batches,
                train_batches=batches, val_loader=batches, val_batches=batches, test_loader=batches,
                task=Classification(), Classification=Classification, sim=sim, other_sim=other_sim,
                optimizer=optimizer, scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10),
                nn=nn, numpy=numpy, torch=torch, noisesim=noisesim)


def _with_sources(script: Path, seen: frozenset = frozenset()) -> str:
    """The script's text and that of every script it sources (``source "$(dirname "$0")/x.sh"``, ``source dir/x.sh``)."""
    text = script.read_text()
    for name in re.findall(r'^\s*(?:source|\.)\s+"?(?:\$\(dirname "\$0"\)/)?([\w./-]+)"?', text, re.M):
        path = script.parent / name if (script.parent / name).is_file() else ROOT / name
        if path.is_file() and path not in seen:
            text += _with_sources(path, seen | {script})
    return text


class Shell:
    """The checks of the module docstring, for one shell block."""

    def __init__(self, run: Path, out: Path):
        self.run, self.out = run, out
        self.site = None  # where ``pip install`` put a plugin

    def __call__(self, example) -> None:
        text = example.parsed.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                for part in line.split("&&"):
                    self.command(shlex.split(part))

    def command(self, words: list[str]) -> None:
        env = {}
        while words and "=" in words[0] and not words[0].startswith("-"):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        if words[:2] == ["pip", "install"]:
            return self.pip_install(words[2:])
        if "PYTHONPATH" in env:
            return self.with_path(ROOT / env.pop("PYTHONPATH"), words)
        if self.site is not None:
            return self.in_fresh_interpreter(words)
        if words[0] == "bash" or words[0].endswith(".sh"):
            return self.script(words[1:] if words[0] == "bash" else words, env)
        if words[0] == "torchrun":
            flags = words[words.index("main.py") + 1:]
            return self.experiment([w for w in flags if w != "..."])
        if words[0] in PYTHON and words[1:3] == ["-m", "pytest"]:
            return  # the suite this test belongs to
        if words[0] in PYTHON and words[1].startswith("examples/"):
            assert (ROOT / words[1]).is_file(), f"{words[1]}: no such example"
            return  # tests/test_examples.py runs it
        if words[0] in PYTHON and words[1] == "main.py":
            words = words[2:]
        elif words[0] in PYTHON and words[1] == "-m":
            module, words = words[2], words[3:]
            words = {"noisesim": [], "noisesim.experiment.export": ["export"], "noisesim.reports": ["plot"],
                     "noisesim.experiment.precision": ["precision"], "noisesim.train.pretrain": ["pretrain"]
                     }[module] + words
        elif words[0] == "noisesim":
            words = words[1:]
        else:
            raise AssertionError(f"no rule to check the command {shlex.join(words)!r}")
        sub = words[0] if words and words[0] in ("export", "plot", "precision", "pretrain", "study") else None
        if sub is None:
            return self.experiment(words)
        getattr(self, sub)(words[1:])

    def study(self, args: list[str]) -> None:
        from noisesim.commands import main

        extra = [] if "--list" in args else ["--dry_run", "--log_dir", str(self.out)]
        assert main(["study", *extra, *args]) == 0

    def pip_install(self, args: list[str]) -> None:
        (path,) = args
        assert (ROOT / path / "pyproject.toml").is_file(), f"{path}: not a package to install"
        self.site = self.out / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "--target", str(self.site), str(ROOT / path)], check=True, capture_output=True)

    def with_path(self, folder: Path, words: list[str]) -> None:
        assert folder.is_dir(), f"PYTHONPATH={folder}: no such folder"
        sys.path.insert(0, str(folder))
        try:
            self.command(words)
        finally:
            sys.path.remove(str(folder))

    def in_fresh_interpreter(self, words: list[str]) -> None:
        """The command checked as here, in a new interpreter whose path holds the installed plugin."""
        code = ("import sys; from tests.test_docs import Shell; from pathlib import Path; "
                "Shell(Path(sys.argv[1]), Path(sys.argv[2])).command(sys.argv[3:])")
        r = subprocess.run([sys.executable, "-c", code, str(self.run), str(self.out), *words], cwd=Path.cwd(),
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": f"{self.site}:{ROOT}"})
        assert r.returncode == 0, r.stderr[-2000:]

    def script(self, words: list[str], env: dict) -> None:
        path, args = words[0], words[1:]
        script = ROOT / path
        assert script.is_file(), f"{path}: no such script"
        subprocess.run(["bash", "-n", str(script)], check=True)
        text = _with_sources(script)
        for key in env:
            assert key in text, f"{path} does not read {key}"
        study = re.search(r'^study (\w+) "\$@"', script.read_text(), re.M)
        if study:  # the script runs a study: its arguments are the study command's, checked by a dry run
            from noisesim.commands import main

            args = [str(self.out) if a.startswith("/data/") else a for a in args]  # an ImageNet folder
            assert main(["study", study.group(1), "--dry_run", "--log_dir", str(self.out), *args]) == 0, path

    def experiment(self, argv: list[str]) -> None:
        from noisesim.experiment.cli import parse_args

        if "--help" in argv:
            with pytest.raises(SystemExit) as done:
                parse_args(argv)
            assert done.value.code == 0
            return
        if "--config" in argv:
            at = argv.index("--config") + 1
            argv[at] = argv[at] if argv[at] == "none" else str(ROOT / argv[at])
        parse_args(argv)

    def _runs(self, argv: list[str]) -> list[str]:
        """Run-folder placeholders (``logs/<run>``, ``logs/a``, ``logs/thermal/*``) -> the small run; ``--out`` ->
        a temporary folder."""
        out = []
        for i, w in enumerate(argv):
            if i and argv[i - 1] == "--out":
                out.append(str(self.out / Path(w).name))
            elif w.startswith("logs/") and not glob.glob(str(ROOT / w)):
                out.append(str(self.run))
            else:
                out.append(w)
        return out

    def export(self, argv: list[str]) -> None:
        from noisesim.experiment.export import main

        argv = self._runs(argv)
        assert main(argv + ([] if "--out" in argv else ["--out", str(self.out / "export")])) == 0

    def plot(self, argv: list[str]) -> None:
        from noisesim.reports.__main__ import main

        assert main(self._runs(argv)) == 0

    def precision(self, argv: list[str]) -> None:
        from noisesim.experiment import precision

        precision.parse(argv)

    def pretrain(self, argv: list[str]) -> None:
        from noisesim.train import pretrain

        args = pretrain.parse(argv)
        Path(args.out).touch()  # stands in for the weights, for the block's later commands that load them


def _in_plugin_pyproject(example) -> None:
    assert example.parsed in (ROOT / "examples" / "plugin" / "pyproject.toml").read_text(), \
        "the toml block is not in examples/plugin/pyproject.toml"


def _examples():
    sybil = Sybil(parsers=[PythonCodeBlockParser(), CodeBlockParser("bash"), CodeBlockParser("toml"), SkipParser()])
    out = []
    for path in DOCS:
        document = sybil.parse(path)
        out += [pytest.param(document, example, id=f"{path.name}:{example.line}") for example in document]
    return out


EXAMPLES = _examples()


def test_every_document_has_code_to_check():
    assert {Path(e.values[0].path).name for e in EXAMPLES} >= {"README.md", "api.md", "export.md", "precision.md"}


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_generated_tables_are_what_their_files_give(path):
    """Every table marked as generated is what ``python -m noisesim.reports docs`` makes of the files the runs
    wrote: numbers are never typed."""
    from noisesim.reports.docs import refresh

    text = path.read_text()
    assert refresh(text, ROOT, path.parent) == text, f"{path.name}: run python -m noisesim.reports docs"


@pytest.mark.parametrize("document,example", EXAMPLES)
def test_code_block(document, example, default_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files (alloc.json) write them here
    if not document.namespace.get("_ready"):
        document.namespace.update(_namespace(), _ready=True)
    if example.region.lexemes.get("arguments") == "bash":
        example.region.evaluator = Shell(default_run, tmp_path)
    if example.region.lexemes.get("arguments") == "toml":
        example.region.evaluator = _in_plugin_pyproject
    example.evaluate()
