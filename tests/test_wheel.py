"""What users install is what is tested: the sdist and wheel build from the tracked files, the wheel holds every
package and data file (check-wheel-contents), and, installed (not editable) into a fresh virtual environment,
its ``noisesim`` script answers every command's --help and runs a one-point study.

The fresh environment takes noisesim from the wheel alone; its dependencies (torch and the rest, gigabytes) come
from this environment's site-packages through a path file, whose own path files (this checkout's editable
install among them) Python does not read.
"""
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import make_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["precision"], ["export"], ["plot"], ["pretrain"], ["migrate"], ["study"], ["query"]]


def _run(*argv, cwd, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel) built with ``python -m build`` from a copy of the checkout's files (ignored ones left out)."""
    tmp = tmp_path_factory.mktemp("build")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    src = tmp / "src"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp / "dist", src, cwd=tmp)
    sdist, wheel = sorted((tmp / "dist").glob("*.tar.gz")), sorted((tmp / "dist").glob("*.whl"))
    assert len(sdist) == 1 and len(wheel) == 1
    return sdist[0], wheel[0]


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh virtual environment with the wheel installed (not editable); returns its bin folder."""
    env = tmp_path_factory.mktemp("venv") / "env"
    _run(sys.executable, "-m", "venv", "--without-pip", env, cwd=env.parent)
    python = env / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=env).stdout
                .strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet",
         built[1], cwd=env.parent)
    return env / "bin"


def test_the_wheel_holds_every_package_and_data_file(built):
    _run(sys.executable, "-m", "check_wheel_contents", built[1], cwd=built[1].parent)
    names = set(zipfile.ZipFile(built[1]).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "noisesim").rglob("*.py")}
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"folders of Python files that are not packages in the wheel: {missing}"
    for data in ("noisesim/configs/default_study.yaml", "noisesim/models/weights/resnet20_fashion_mnist.pt"):
        assert data in names
    with tarfile.open(built[0]) as sdist:  # the sdist builds the same wheel: it carries the same files
        inside = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {f"{p}/__init__.py" for p in packages} | {"setup.cfg", "pyproject.toml", "README.md"} <= inside


@pytest.mark.slow
def test_the_installed_wheel_runs_every_command(venv, tmp_path):
    where = _run(venv / "python", "-c", "import noisesim; print(noisesim.__file__)", cwd=tmp_path).stdout
    assert str(venv.parent) in where, f"noisesim came from {where}, not the installed wheel"
    helps = [subprocess.Popen([str(venv / "noisesim"), *cmd, "--help"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cmd in COMMANDS]
    helps.append(subprocess.Popen([str(venv / "python"), "-m", "noisesim", "--help"], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    bad = subprocess.Popen([str(venv / "noisesim"), "--lr", "nan"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    for cmd, p in zip(COMMANDS + [["-m noisesim"]], helps):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "usage:" in out, (cmd, err[-2000:])
    _, err = bad.communicate(timeout=300)
    assert bad.returncode == 2 and err.strip() == "noisesim: error: --lr nan: must be in (0, 100]", err
    data = make_fashion_mnist(tmp_path / "fmnist", n_train=64, n_test=32)
    _run(venv / "noisesim", "--config", "none", "--data_path", data, "--eval_batches", "1", "--val_batch_size", "16",
         "--calibration_batches", "1", "--noise_type", "thermal", "--e_mac", "5", "--no_plot", "--no-progress",
         "--log_dir", tmp_path / "logs", "--run_name", "one", cwd=tmp_path)
    rows = (tmp_path / "logs" / "one" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and "accuracy" in rows[0]
    studies = _run(venv / "noisesim", "study", "--list", cwd=tmp_path).stdout  # the study files ship
    assert "thermal " in studies and "allocation_methods_bits " in studies
    assert "--resume --mc_repeats 1" in _run(venv / "noisesim", "study", "thermal", "--presets", "fmnist", "--dry_run",
                                       "--", "--mc_repeats", "1", cwd=tmp_path).stdout
