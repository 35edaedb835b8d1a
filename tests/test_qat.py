"""Quantization-aware training: LSQ and PACT gradients by their papers' formulas, QAT recovering what
post-training quantization loses, resuming, partial loading, the VGG16 chokepoint, and the driver's QAT path."""
import pytest
import torch

import noisesim
from noisesim.config import QuantConfig
from noisesim.data.tasks import Classification
from noisesim.data.tensors import hold_out
from noisesim.io import load_partial
from noisesim.models.cifar_vgg import CifarVGG16
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.train.loop import evaluate
from noisesim.train.qat import QATConfig, quantization_aware_training
from tests.helpers import separable_task


def _calibrated(cfg: QuantConfig, x: torch.Tensor) -> FakeQuantize:
    q = FakeQuantize(cfg)
    q.start_calibration()
    q(x)
    q.stop_calibration()
    return q


def test_lsq_step_gradient_is_the_papers_formula_times_its_scale():
    torch.manual_seed(0)
    x = torch.randn(1000) * 2
    q = _calibrated(QuantConfig(bits=4, symmetric=True, learnable_range=True, learning="lsq"), x)
    q(x).sum().backward()
    s = float(torch.maximum(q.lo.abs(), q.hi.abs()).detach()) / 7
    v = x / s
    # Esser et al. 2020, eq. 3: d x_hat / d s = -v + round(v) inside the range, q_n or q_p outside
    per_value = torch.where(v <= -7, torch.tensor(-7.0), torch.where(v >= 7, torch.tensor(7.0), v.round() - v))
    g = 1 / (1000 * 7) ** 0.5
    expected = per_value.sum() * g / 7  # s = max(|lo|, |hi|) / 7: the gradient reaches hi (the larger end) / 7
    got = q.hi.grad if abs(q.hi.item()) >= abs(q.lo.item()) else -q.lo.grad
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)


def test_pact_clip_gradient_counts_the_clipped_values_and_ignores_relu_zeros():
    torch.manual_seed(0)
    x = torch.relu(torch.randn(5000))  # about half exact zeros
    q = _calibrated(QuantConfig(bits=4, learnable_range=True, learning="pact"), x)
    with torch.no_grad():
        q.hi.fill_(1.0)
    q.touch()
    x.requires_grad_(True)
    q(x).sum().backward()
    assert q.hi.grad.item() == pytest.approx(float((x > 1.0).sum()))  # d y / d alpha = 1 where x > alpha
    assert q.lo.grad.item() == 0.0  # ties at lo = 0 (the ReLU zeros) do not move it
    inside = (x > 0) & (x < 1.0)
    assert torch.equal(x.grad[inside], torch.ones(int(inside.sum()))) and (x.grad[x > 1.0] == 0).all()


def _toy_task(seed: int = 0):
    return separable_task(seed)


@pytest.mark.parametrize("act_learning,weight_learning", [("none", "none"), ("pact", "none"), ("lsq", "lsq")])
def test_qat_recovers_what_two_bit_quantization_loses(act_learning, weight_learning):
    torch.manual_seed(0)
    net, train, test = _toy_task()
    task = Classification()
    float_acc = evaluate(net, test, task)
    cfg = noisesim.SimConfig(weight_bits=2, act_bits=2, act_learning=act_learning, weight_learning=weight_learning)
    sim = noisesim.prepare(net, cfg)
    noisesim.calibrate(sim, train, max_batches=4)
    ptq = evaluate(sim, test, task)
    rest, val = hold_out(train, 400)
    result = quantization_aware_training(sim, rest, val, task, QATConfig(epochs=8, lr=0.02, progress=False))
    qat = evaluate(sim, test, task)
    assert qat >= ptq + 0.5 and qat >= float_acc - 0.08, (float_acc, ptq, qat)
    assert 1 <= result.best_epoch <= 8 and result.steps_per_epoch == len(rest)
    assert not any(p.requires_grad for p in sim.parameters())


def test_noise_aware_training_lowers_the_accuracy_loss_under_noise():
    torch.manual_seed(0)
    net, train, test = _toy_task()
    task = Classification()
    cfg = noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type="thermal", e_mac=0.01, seed=0)
    plain = noisesim.prepare(net, cfg)
    noisesim.calibrate(plain, train, max_batches=4)
    aware = noisesim.prepare(net, cfg)
    noisesim.calibrate(aware, train, max_batches=4)
    quantization_aware_training(aware, train, None, task, QATConfig(epochs=6, lr=0.01, noise=True, progress=False))
    acc = lambda m: sum(evaluate(m, test, task) for _ in range(5)) / 5  # noqa: E731  (5 noise draws)
    assert acc(aware) >= acc(plain) + 0.1  # measured: 33% -> 51%


def test_weights_and_energies_train_together_toward_the_energy_target():
    from noisesim.energy import average_energy

    torch.manual_seed(0)
    net, train, _ = _toy_task()
    sim = noisesim.prepare(net, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type="thermal", e_mac=1.0,
                                                   seed=0))
    noisesim.calibrate(sim, train, max_batches=4)
    weights = [m.weight.detach().clone() for m in noisesim.sim_layers(sim)]
    quantization_aware_training(sim, train, None, Classification(), QATConfig(
        epochs=6, lr=0.05, noise=True, energies=True, target_emac=0.25, lambd=5.0, progress=False))
    # from 1.0 into the budget (no final rescaling: the constrained loss did it), without collapsing below half of
    # it (the task loss holds the energy up; momentum carries it 1-30% below the target, depending on the noise)
    assert 0.125 < float(average_energy(sim)) <= 0.25 * 1.01
    assert any(not torch.equal(w, m.weight) for w, m in zip(weights, noisesim.sim_layers(sim)))


def test_interrupted_training_resumes_where_it_stopped(tmp_path, monkeypatch):
    import noisesim.train.qat as qat

    torch.manual_seed(0)
    net, train, test = _toy_task()
    sim = noisesim.prepare(net, noisesim.SimConfig(weight_bits=4, act_bits=4))
    noisesim.calibrate(sim, train, max_batches=2)
    state = tmp_path / "qat.resume.pt"
    real_save, calls = qat.save_checkpoint, []

    def save_then_crash(path, obj):
        real_save(path, obj)
        calls.append(obj["step"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the machine went down after the second epoch was saved

    monkeypatch.setattr(qat, "save_checkpoint", save_then_crash)
    cfg = QATConfig(epochs=4, lr=0.01, progress=False)
    with pytest.raises(KeyboardInterrupt):
        quantization_aware_training(sim, train, test, Classification(), cfg, state_path=state)
    monkeypatch.setattr(qat, "save_checkpoint", real_save)
    fresh = noisesim.prepare(net, noisesim.SimConfig(weight_bits=4, act_bits=4))
    noisesim.calibrate(fresh, train, max_batches=2)
    result = quantization_aware_training(fresh, train, test, Classification(), cfg, state_path=state)
    steps = [h["step"] for h in result.train.history]
    assert result.resumed_from_step == 2 * len(train) and steps == list(range(1, 4 * len(train) + 1))
    state.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="cannot resume"):
        quantization_aware_training(fresh, train, test, Classification(), cfg, state_path=state)


def test_partial_loading_reports_exactly_the_mismatched_keys():
    full, choked = CifarVGG16(10, 1), CifarVGG16(10, 1, chokepoint=8, choke_channels=8)
    report = load_partial(choked, full.state_dict())
    narrowed = {"features.24", "features.25", "features.27", "features.28", "features.30"}  # convs 7, 8, 9 and BNs
    mismatched = {k for k, _, _ in report["mismatched"]}
    assert {k.rsplit(".", 1)[0] for k in mismatched} == narrowed
    assert report["missing"] == [] and report["unexpected"] == []
    assert set(report["loaded"]) == set(full.state_dict()) - mismatched
    assert torch.equal(choked.state_dict()["features.0.weight"], full.state_dict()["features.0.weight"])


def test_vgg16_chokepoint_fits_the_array():
    m = CifarVGG16(10, 1, chokepoint=8, choke_channels=16).eval()
    conv = m.features[27]
    assert (conv.in_channels, conv.out_channels) == (16, 16) and m.conv_names()[8] == "features.27"
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10) and CifarVGG16()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="chokepoint 0"):
        CifarVGG16(chokepoint=0)


def test_driver_trains_once_per_setting_and_reuses_it(tmp_path):
    import pandas as pd

    from noisesim.experiment.main import main
    from tests.helpers import make_fashion_mnist

    data = make_fashion_mnist(tmp_path / "fm", n_train=256, n_test=64)
    flags = ["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path / "logs"), "--run_name", "q",
             "--train_batch_size", "32", "--val_batch_size", "64", "--calibration_batches", "1", "--no-progress",
             "--no_plot", "--qat", "--qat_epochs", "1", "--qat_val_samples", "64", "--weight_bits", "4",
             "--act_bits", "4", "--act_learning", "pact", "--noise_type", "thermal", "--e_mac", "10", "30",
             "--qat_emac", "10"]
    assert main(flags) == 0
    df = pd.read_csv(tmp_path / "logs/q/results.csv")
    assert len(df) == 2 and df["qat_key"].nunique() == 1 and df["qat_best_epoch"].eq(1).all()
    assert len(list((tmp_path / "logs/q/qat").glob("qat-*.pt"))) == 2  # the network and its info
    kept = next(p for p in (tmp_path / "logs/q/qat").glob("qat-*.pt") if not p.name.endswith(".info.pt"))
    # warm start: the W4A4 network trains on at W4A2
    assert main(flags + ["--run_name", "q2", "--qat_init", str(kept), "--act_bits", "2"]) == 0
    assert pd.read_csv(tmp_path / "logs/q2/results.csv")["act_bits"].eq(2).all()
