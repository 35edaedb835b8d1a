"""Bad input to the other commands (export, plot, precision, pretrain, the MiniLM head) is one line on stderr, exit
2, and nothing written; the export's psum overflow policy is stated and applied."""
import hashlib
import json
from pathlib import Path

import pytest

from noisesim.commands import main as command
from noisesim.experiment.main import main as run_main
from tests.helpers import make_fashion_mnist


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp("fmnist"), n_train=64, n_test=32)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A one-point W8A8 run of ResNet-20 (its 8-bit psums need more than 16 bits)."""
    logs = tmp_path_factory.mktemp("logs")
    assert run_main(["--config", "none", "--data_path", str(data), "--log_dir", str(logs), "--run_name", "r",
                     "--noise_type", "none", "--no_plot", "--no-progress", "--val_batch_size", "16"]) == 0
    return logs / "r"


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))} if folder.exists() else {}


def fails_cleanly(capsys, watched: Path, argv: list, *names) -> str:
    """``noisesim ARGV`` exits 2 with one stderr line naming every one of ``names``, and ``watched`` is unchanged."""
    before = _snapshot(watched)
    code = command([str(a) for a in argv], prog="noisesim")
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and err.startswith(f"noisesim {argv[0]}: error:"), err
    for name in names:
        assert str(name) in err, (name, err)
    assert _snapshot(watched) == before, "a failed command wrote files"
    return err


EXPORT_CASES = [
    (["--array", 1], ["--array 1", ">= 2"]),
    (["--psum_bits", 1], ["--psum_bits 1"]),
    (["--itile", -1], ["--itile -1"]),
    (["--sample", -2], ["--sample -2"]),
    (["--tolerance", 0], ["--tolerance 0"]),
    (["--point", "no-such-point"], ["--point no-such-point", "not a point"]),
    (["--layer", "no.such.layer", "--psum_bits", 32], ["--layer no.such.layer"]),
    (["--layer", "layer2.0.conv2", "--itile", 9, "--psum_bits", 32], ["tile (9, 0)", "outside"]),
    (["--layer", "conv1", "--psum_bits", 32], ["conv1", "unsigned inputs"]),  # an image is signed
    (["--layer", "layer2.0.conv2", "--psum_bits", 32, "--sample", 999], ["--sample 999"]),
    ([], ["--psum_bits 16", "do not fit", "--psum_overflow"]),  # the default policy stops the export
    (["--psum_overflow", "clip"], ["--psum_overflow", "wrap", "saturate"]),
    (["--array", "eight"], ["--array", "eight"]),
]


@pytest.mark.parametrize("flags,names", EXPORT_CASES, ids=[" ".join(map(str, f)) or "overflow" for f, _ in
                                                            EXPORT_CASES])
def test_export_refuses_bad_flags_and_writes_nothing(capsys, run, flags, names):
    fails_cleanly(capsys, run, ["export", run, *flags], *names)


def test_export_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    fails_cleanly(capsys, tmp_path, ["export", tmp_path / "missing"], "missing")
    (tmp_path / "config.json").write_text("{ not json")
    fails_cleanly(capsys, tmp_path, ["export", tmp_path], "config.json")


@pytest.mark.parametrize("policy", ["wrap", "saturate"])
def test_export_states_how_psums_that_overflow_were_written(capsys, run, tmp_path, policy):
    out = tmp_path / policy
    assert command(["export", str(run), "--out", str(out), "--psum_overflow", policy, "--layer", "layer2.0.conv2",
                    "--psum_bits", "12"], prog="noisesim") == 0
    text = capsys.readouterr().out
    assert f"written {'wrapped' if policy == 'wrap' else 'saturated'}" in text
    assert json.loads((out / "manifest.json").read_text())["psum_overflow"] == policy
    assert f"psums that do not fit: {policy}" in (out / "hardware" / "psum.txt").read_text()


def test_plot_refuses_bad_flags_and_files(capsys, run, tmp_path):
    fails_cleanly(capsys, run, ["plot", run, "--acc_drop", 2], "--acc_drop 2")
    fails_cleanly(capsys, run, ["plot", run, "--bootstrap", 0], "--bootstrap 0")
    fails_cleanly(capsys, run, ["plot", run, "--curve_fit", "spline"], "--curve_fit", "spline")
    fails_cleanly(capsys, run, ["plot", run, run], "--out")
    fails_cleanly(capsys, tmp_path, ["plot", tmp_path], "results.csv", "not found")
    for content, why in ((b"\x00\xff\xfe garbage", "UnicodeDecodeError"), (b"a,b\n1,2\n", "no column")):
        bad = tmp_path / why
        bad.mkdir()
        (bad / "results.csv").write_bytes(content)
        fails_cleanly(capsys, bad, ["plot", bad], why)


PRECISION_CASES = [
    (["--epochs", 0], ["--epochs 0"]),
    (["--min_bits", 9, "--initial_bits", 8], ["--min_bits 9", "--initial_bits 8"]),
    (["--bits", 8, 1], ["--bits 1"]),
    (["--bits", 8, 8], ["--bits 8 8"]),
    (["--probabilities", 1, 1], ["--probabilities"]),
    (["--cpt_low", 9, "--cpt_high", 8], ["--cpt_low 9"]),
    (["--val_samples", 0], ["--val_samples 0"]),
    (["--val_samples", 10 ** 6], ["--val_samples 1000000"]),
    (["--method", "magic"], ["--method", "magic"]),
]


@pytest.mark.parametrize("flags,names", PRECISION_CASES, ids=[" ".join(map(str, f)) for f, _ in PRECISION_CASES])
def test_precision_refuses_bad_flags_and_writes_nothing(capsys, tmp_path, data, flags, names):
    fails_cleanly(capsys, tmp_path, ["precision", "--data_path", data, "--out", tmp_path / "out", *flags], *names)


def test_precision_without_data_or_out(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    fails_cleanly(capsys, tmp_path, ["precision", "--data_path", tmp_path / "empty", "--out", tmp_path / "out"],
                  "--data_path")
    fails_cleanly(capsys, tmp_path, ["precision"], "--out")


PRETRAIN_CASES = [
    (["--model_options", "{bad"], ["--model_options", "not JSON"]),
    (["--model_options", "[1, 2]"], ["--model_options", "JSON object"]),
    (["--model_options", '{"colour": 1}'], ["--model_options", "does not take"]),
    (["--epochs", 0], ["--epochs 0"]),
    (["--lr", -1], ["--lr -1"]),
    (["--model", "resnet9000"], ["--model", "resnet9000"]),
]


@pytest.mark.parametrize("flags,names", PRETRAIN_CASES, ids=[" ".join(map(str, f)) for f, _ in PRETRAIN_CASES])
def test_pretrain_refuses_bad_flags_and_writes_nothing(capsys, tmp_path, data, flags, names):
    fails_cleanly(capsys, tmp_path, ["pretrain", "--data_path", data, "--out", tmp_path / "w.pt", *flags], *names)


def test_pretrain_needs_a_file_to_write_and_data_to_read(capsys, tmp_path, data):
    fails_cleanly(capsys, tmp_path, ["pretrain", "--data_path", data, "--out", tmp_path], "--out", "a folder")
    (tmp_path / "empty").mkdir()
    fails_cleanly(capsys, tmp_path, ["pretrain", "--data_path", tmp_path / "empty", "--out", tmp_path / "w.pt"],
                  "--data_path")


def test_the_minilm_head_trainer_reads_its_flags_and_never_writes_into_the_package(capsys):
    from noisesim.models.minilm import HEAD_FILE
    from noisesim.train import minilm_head as minilm

    shipped = HEAD_FILE.read_bytes()
    assert minilm.main([]) == 2 and "--out" in capsys.readouterr().err
    assert minilm.main(["--out", "h.pt", "--steps", "0"]) == 2 and "--steps 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        minilm.main(["--help"])
    assert done.value.code == 0 and "--n_train" in capsys.readouterr().out
    assert HEAD_FILE.read_bytes() == shipped
