"""Bad input never ends in a traceback: every flag with wrong types and out-of-range values, and every file
input (checkpoint, YAML config, data files, results.csv and allocations under --resume) empty, truncated,
corrupt or of the wrong kind, gives one line naming the flag and the file, exit 2, and writes nothing."""
import dataclasses
import gzip
import hashlib
from pathlib import Path

import pytest
import torch

import noisesim.models.zoo
from noisesim.experiment.config import ExperimentConfig
from noisesim.experiment.main import main
from tests.helpers import make_fashion_mnist

OUT_OF_RANGE = ("-1", "0", "-0.5", "1e7", "1e40")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp("fmnist"), n_train=64, n_test=32)


def fails_cleanly(capsys, tmp_path, argv, *names) -> str:
    """main(argv) exits 2 with one stderr line that contains every name, and leaves --log_dir untouched."""
    logs = tmp_path / "logs"
    before = _snapshot(logs)
    code = main(["--config", "none", "--log_dir", str(logs), "--no-progress", "--no_plot", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and err.startswith("main.py: error:"), err
    assert "Traceback" not in err and "weights_only=False" not in err
    for name in names:
        assert str(name) in err, (name, err)
    assert _snapshot(logs) == before, "a failed run wrote files"
    return err


def _snapshot(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _fields(kind):
    return [f for f in dataclasses.fields(ExperimentConfig) if f.metadata["parse"] is kind]


@pytest.mark.parametrize("field", _fields(int) + _fields(float), ids=lambda f: f.name)
def test_every_numeric_flag_rejects_text_nan_inf_and_out_of_range(tmp_path, capsys, data, field):
    flag = f"--{field.name}"
    base = ["--data_path", str(data)]
    bad = ["abc", "1.5x"] + (["nan", "inf", "-inf"] if field.metadata["parse"] is float else ["2.5"])
    for value in bad:
        fails_cleanly(capsys, tmp_path, [*base, flag, value], flag)
    if field.metadata["check"] is not None:  # every range-checked flag rejects at least one value outside it
        rejected = []
        for value in OUT_OF_RANGE:
            try:
                ExperimentConfig.from_dict({field.name: [float(value)] if field.metadata["sweep"] else
                                            field.metadata["parse"](float(value))})
            except Exception:
                rejected.append(value)
        assert rejected, f"{flag} accepts every one of {OUT_OF_RANGE}"
        fails_cleanly(capsys, tmp_path, [*base, flag, rejected[0]], flag)


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(ExperimentConfig) if f.metadata["choices"]],
                         ids=lambda f: f.name)
def test_every_choice_flag_names_its_choices(tmp_path, capsys, data, field):
    flag = f"--{field.name}"
    err = fails_cleanly(capsys, tmp_path, ["--data_path", str(data), flag, "no_such_choice"], flag)
    assert str(field.metadata["choices"]()[0]) in err


def test_regressions_named_in_the_issue(tmp_path, capsys, data):
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--lr", "nan"], "--lr")
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--lambd", "inf"], "--lambd")
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--log_dir", ""], "--log_dir")


def test_bit_budgets_that_cannot_be_allocated(tmp_path, capsys, data):
    base = ["--data_path", str(data), "--allocation", "greedy"]
    fails_cleanly(capsys, tmp_path, [*base, "--quantity", "act_bits"], "--quantity act_bits", "--target_act_bits")
    fails_cleanly(capsys, tmp_path, [*base, "--quantity", "weights_and_act_bits", "--target_act_bits", "3"],
                  "--target_weight_bits")
    fails_cleanly(capsys, tmp_path, [*base, "--quantity", "act_bits", "--target_act_bits", "3", "--act_bits", "none"],
                  "--act_bits")
    fails_cleanly(capsys, tmp_path, [*base, "--quantity", "act_bits", "--target_act_bits", "3", "--greedy_bits", "2",
                                     "4"], "--greedy_bits 2 4", "HIGH > LOW")
    fails_cleanly(capsys, tmp_path, [*base, "--quantity", "act_bits", "--target_act_bits", "0.5"],
                  "--target_act_bits 0.5")


def test_hardware_flags_and_noise_sums(tmp_path, capsys, data):
    base = ["--data_path", str(data)]
    fails_cleanly(capsys, tmp_path, [*base, "--tile_rows", "0"], "--tile_rows 0", ">= 1")
    fails_cleanly(capsys, tmp_path, [*base, "--tile_rows", "many"], "--tile_rows")
    fails_cleanly(capsys, tmp_path, [*base, "--adc_bits", "1"], "--adc_bits 1")
    fails_cleanly(capsys, tmp_path, [*base, "--noise_type", "thermal+bogus"], "--noise_type thermal+bogus", "bogus")
    fails_cleanly(capsys, tmp_path, [*base, "--noise_type", "thermal+thermal"], "--noise_type", "twice")
    fails_cleanly(capsys, tmp_path, [*base, "--noise_type", "thermal+shot", "--noise_sigma", "0.02"],
                  "--noise_sigma", "thermal+shot")
    fails_cleanly(capsys, tmp_path, [*base, "--noise_type", "shot", "--act_bits", "none", "--adc_bits", "6",
                                     "--adc_range", "full_scale"], "--adc_range", "act_bits")
    fails_cleanly(capsys, tmp_path, [*base, "--hardware", "no_such_preset"], "--hardware no_such_preset", "photonic")
    for text, why in (("tile_rows: 64\nadc_bits: 6\nadc_fom:\ndac_fom: 3\n", "no value for adc_fom"),
                      ("tile_rows: 64\nadc_bits: 6\nadc_fom: lots\ndac_fom: 3\n", "adc_fom"),
                      ("tile_rows: 64\nadc_bits: 6\nadc_fom: 10\ndac_fom: 3\nwavelength: 1550\n", "wavelength")):
        preset = tmp_path / "preset.yaml"
        preset.write_text(text)
        fails_cleanly(capsys, tmp_path, [*base, "--hardware", str(preset)], "--hardware", why)


def test_devices_folders_and_files_that_are_not_what_the_flag_needs(tmp_path, capsys, data):
    if not torch.cuda.is_available():
        fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--device", "cuda"], "--device cuda", "use cpu")
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--device", f"cuda:{torch.cuda.device_count() + 3}"],
                  "--device cuda:")
    empty = tmp_path / "no_data_here"
    empty.mkdir()
    fails_cleanly(capsys, tmp_path, ["--data_path", str(empty)], "--data_path", empty, "download failed")
    assert not any(empty.iterdir())  # the failed download left the folder as it was
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--checkpoint_path", "/dev/null"],
                  "--checkpoint_path /dev/null", "not a regular file")
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--checkpoint_path", str(tmp_path)],
                  "--checkpoint_path", "a folder")


def _checkpoints(root: Path) -> dict[str, Path]:
    real = Path(noisesim.models.zoo.embedded_checkpoint("resnet20", "fashion_mnist")).read_bytes()
    files = {"garbage": b"not a checkpoint at all", "empty": b"", "truncated": real[: len(real) // 2]}
    out = {}
    for name, content in files.items():
        out[name] = root / f"{name}.pt"
        out[name].write_bytes(content)
    out["wrong_keys"] = root / "wrong_keys.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, out["wrong_keys"])
    out["wrong_shape"] = root / "wrong_shape.pt"
    state = torch.load(noisesim.models.zoo.embedded_checkpoint("resnet20", "fashion_mnist"), weights_only=True)
    state = state.get("state_dict", state)
    torch.save({k: v[:1] if k == "fc.weight" else v for k, v in state.items()}, out["wrong_shape"])
    out["a_list"] = root / "a_list.pt"
    torch.save([1, 2, 3], out["a_list"])
    return out


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "wrong_keys", "wrong_shape", "a_list"])
def test_bad_checkpoint_files(tmp_path, capsys, data, kind):
    path = _checkpoints(tmp_path)[kind]
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--checkpoint_path", str(path)],
                  "--checkpoint_path", path)


@pytest.mark.parametrize("content,why", [(b"\x00\xff\xfe\x80", "not valid YAML"), (b"- 1\n- 2\n", "mapping"),
                                         (b"weight_bitz: 4\n", "unknown keys"), (b"lr: nan\n", "--lr"),
                                         (b"noise_type: [pink]\n", "pink")])
def test_bad_config_files(tmp_path, capsys, data, content, why):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--config", str(path)], why)


def _corrupt_fashion_mnist(root: Path, data: Path, kind: str) -> Path:
    root.mkdir()
    for f in data.iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    target = root / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(target.read_bytes())
    content = {"not_gzip": b"plain bytes", "empty": b"", "truncated_gzip": target.read_bytes()[:40],
               "wrong_magic": gzip.compress(b"\x01\x02" + raw[2:]),
               "short_data": gzip.compress(raw[: len(raw) // 2])}[kind]
    target.write_bytes(content)
    return root


@pytest.mark.parametrize("kind", ["not_gzip", "empty", "truncated_gzip", "wrong_magic", "short_data"])
def test_bad_data_files(tmp_path, capsys, data, kind):
    root = _corrupt_fashion_mnist(tmp_path / "fm", data, kind)
    fails_cleanly(capsys, tmp_path, ["--data_path", str(root)], "--data_path", "fashion_mnist")


@pytest.mark.parametrize("name,content,why", [
    ("results.csv", b"\x00\xff\xfe\x80garbage", "results.csv"),
    ("results.csv", b"a,b\n1,2\n", "point_id"),
    ("allocations/p1.json", b'{"layers": {', "p1.json"),
    ("allocations/p1.json", b"[1, 2]", "p1.json"),
    ("allocations/p1.json", b'{"layers": {"fc": {"bogus": 1}}}', "p1.json"),
])
def test_bad_files_under_resume(tmp_path, capsys, data, name, content, why):
    path = tmp_path / "logs" / "run" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    fails_cleanly(capsys, tmp_path, ["--data_path", str(data), "--run_name", "run", "--resume"], "--resume", why)


def _corrupt_other_format(root: Path, kind: str) -> tuple[str, Path]:
    """A data set of another format with one file damaged: (dataset name, --data_path)."""
    from noisesim.data.criteo import write_synthetic_criteo
    from tests.helpers import make_cifar10

    if kind.startswith("cifar10"):
        make_cifar10(root)
        batch = root / "cifar-10-batches-py" / "test_batch"
        batch.write_bytes(batch.read_bytes()[:100] if kind == "cifar10_truncated" else b"")
        return "cifar10", root
    if kind.startswith("criteo"):
        path = write_synthetic_criteo(root / "train.txt", rows=200, seed=0)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:50] + ["1\tnot\ta\tcriteo\trow"] + lines[50:]) + "\n"
                        if kind == "criteo_short_row" else "")
        return "criteo", root
    (root / "SST-2").mkdir(parents=True)
    for split in ("train", "dev"):
        (root / "SST-2" / f"{split}.tsv").write_text("sentence\tscore\nthe film\t1\n" if kind == "sst2_columns"
                                                      else "\x00\x01")
    return "sst2", root


@pytest.mark.parametrize("kind", ["cifar10_truncated", "cifar10_empty", "criteo_short_row", "criteo_empty",
                                  "sst2_columns", "sst2_binary"])
def test_other_formats_name_the_file_they_cannot_read(tmp_path, kind):
    from noisesim.data.registry import DataFileError, build_data

    dataset, root = _corrupt_other_format(tmp_path / "data", kind)
    with pytest.raises(DataFileError) as err:
        build_data(dataset, str(root), tokenizer_name=str(tmp_path / "no-tokenizer"))
    message = str(err.value)
    assert message.startswith("--data_path ") and str(root) in message and len(message.splitlines()) == 1


def test_a_corrupt_image_found_mid_run_is_one_line_naming_it(tmp_path, capsys):
    from tests.helpers import make_imagenet

    root = make_imagenet(tmp_path / "imagenet", per_class=2)
    bad = root / "val" / "n01443537" / "img_1.JPEG"
    bad.write_bytes(b"not a jpeg")
    code = main(["--config", "none", "--log_dir", str(tmp_path / "logs"), "--no-progress", "--no_plot",
                 "--model", "resnet18", "--dataset", "imagenet", "--data_path", str(root),
                 "--noise_type", "none", "--calibration_batches", "1", "--val_batch_size", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("main.py: error: --data_path ") and str(bad) in err[-1]
    assert "Traceback" not in "\n".join(err)
