"""Precision that moves during training: AdaptiveDPC's rule and bounds, the CPT schedule, and Double Rounding's
bit switching from stored integers."""
import re

import numpy as np
import pytest
import torch
from torch import nn

import noisesim
from noisesim.data.tasks import Classification
from noisesim.stats import binomial_interval
from noisesim.precision.adaptive import AdaptiveDPC, CyclicPrecision, cosine_similarity, train_with_adaptive_dpc
from noisesim.precision.subnets import search_subnets
from noisesim.precision.double_rounding import DoubleRoundingConfig, MultiPrecision, double_round, train_double_rounding
from noisesim.train.loop import evaluate
from tests.helpers import separable_task


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))


def _toy(seed=0):
    return separable_task(seed, n=2400, n_train=1800)


def _prepared(net, train, **kw):
    sim = noisesim.prepare(net, noisesim.SimConfig(weight_bits=8, act_bits=8, weight_per_channel=True, **kw))
    noisesim.calibrate(sim, train, max_batches=2)
    return sim


# -- AdaptiveDPC ---------------------------------------------------------------------------------------------
def test_adaptive_dpc_follows_its_rule_and_stays_within_bounds():
    net, train, _ = _toy()
    sim = _prepared(net, train)
    dpc = AdaptiveDPC(sim, initial_bits=8, min_bits=4, delta=0.5, cosine_threshold=0.0)
    names = list(dpc.bit_widths)
    stats = {names[0]: {"variance": 1.0}, names[1]: {"variance": 0.25}, names[2]: {"variance": 1e-9}}
    bits = dpc.update_precision(stats)
    # the most active layer keeps 8; a 4x smaller statistic costs delta * 2 = 1 bit; a tiny one hits min_bits
    assert bits == {names[0]: 8, names[1]: 7, names[2]: 4}
    aggressive = AdaptiveDPC(sim, initial_bits=8, min_bits=2, delta=1.0, cosine_threshold=0.0)
    assert aggressive.update_precision(stats)[names[1]] == 6  # higher delta: lower bits
    more_active = {**stats, names[1]: {"variance": 2.0}}
    assert dpc.update_precision(more_active)[names[1]] == 8  # larger gradients: more bits


def test_cosine_guard_raises_bits_until_the_weights_are_recognisable():
    net, train, _ = _toy()
    sim = _prepared(net, train)
    dpc = AdaptiveDPC(sim, initial_bits=8, min_bits=2, delta=10.0, cosine_threshold=0.99)
    names = list(dpc.bit_widths)
    bits = dpc.update_precision({n: {"variance": 1.0 if i == 0 else 1e-6} for i, n in enumerate(names)})
    for n in names[1:]:
        assert cosine_similarity(dpc.layers[n], bits[n]) >= 0.99
        assert bits[n] == 2 or cosine_similarity(dpc.layers[n], bits[n] - 1) < 0.99  # the least that passes


def _bits_in_use(sim):
    """Record, at every training forward, the weight bits each layer computes with."""
    used = []
    layers = noisesim.sim_layers(sim)

    def record(module, inputs):
        if module.training:
            used.append([layer.weight_bit_width() for layer in layers])
    return used, sim.register_forward_pre_hook(record)


def test_training_moves_each_layer_to_the_bits_its_gradients_call_for_under_the_cpt_cap(capsys):
    """Epoch 1 runs at 8 bits capped by CPT's schedule; its gradients (recorded here, independently) set each layer's
    bits by the rule; epoch 2 runs at those bits, capped again, step by step."""
    net, train, test = _toy()
    sim = _prepared(net, train)
    dpc = AdaptiveDPC(sim, initial_bits=8, min_bits=3, delta=1.5, cosine_threshold=0.0)
    layers = noisesim.sim_layers(sim)
    variances = {m.name: [] for m in layers}
    grads = [m.weight.register_hook(lambda g, n=m.name: variances[n].append(g.float().var(unbiased=False).item()))
             for m in layers]
    used, hook = _bits_in_use(sim)
    cpt = CyclicPrecision(4, 8, cycles=2)
    opt = torch.optim.SGD([p for p in sim.parameters() if p.dtype.is_floating_point], lr=1e-3, momentum=0.9)
    history = train_with_adaptive_dpc(sim, train, test, nn.CrossEntropyLoss(), opt, dpc=dpc, epochs=2, cpt=cpt)
    for h in grads + [hook]:
        h.remove()
    steps = len(train)
    schedule = cpt.schedule(2 * steps)
    assert used[:steps] == [[cap] * len(layers) for cap in schedule[:steps]]
    epoch1 = {n: np.mean(v[:steps]) for n, v in variances.items()}
    expected = dpc.target_bits(epoch1)
    assert history[0]["bit_widths"] == expected and len(set(expected.values())) > 1  # the layers part ways
    assert used[steps:] == [[min(expected[m.name], cap) for m in layers] for cap in schedule[steps:]]
    assert history[0]["accuracy"] > 0.8 and "epoch 2:" in capsys.readouterr().out
    layer = layers[0]
    layer.set_bit_width(32)
    assert not layer.weight_quant.enabled and layer.weight_bit_width() == 32


def test_cpt_schedule_is_the_documented_cosine_cycle():
    cpt = CyclicPrecision(low=2, high=8, cycles=2)
    assert cpt.schedule(8) == [2, 3, 5, 8, 2, 3, 5, 8]  # ceil(2 + 6 (1 - cos(pi u)) / 2), u = 0, 1/4, 1/2, 3/4
    long = CyclicPrecision(3, 8, cycles=4).schedule(400)
    assert min(long) == 3 and max(long) == 8 and long[0] == long[100] == 3 and long[99] == 8
    with pytest.raises(ValueError):
        CyclicPrecision(8, 4)


# -- Double Rounding -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [6, 4, 2])
def test_switching_from_stored_integers_equals_direct_quantization_where_theory_says(bits):
    torch.manual_seed(0)
    step = 0.01
    w = torch.randn(200_000) * 0.3
    q8 = torch.round(w / step).clamp(-127, 127)
    switched = double_round(q8, 8, bits)
    k, qmax = 8 - bits, 2 ** (bits - 1) - 1
    direct = torch.round(w / (step * 2 ** k)).clamp(-qmax, qmax)
    x = (w / step / 2 ** k).abs()
    near_half = (x - x.floor() - 0.5).abs() < 2 ** -(k + 1)  # the first rounding can cross the second's boundary
    assert torch.equal(switched[~near_half], direct[~near_half])
    assert (switched - direct).abs().max() <= 1 and near_half.float().mean() < 2 ** -k + 0.01


def test_multi_precision_model_keeps_only_integers_and_switches_exactly(tmp_path):
    net, train, test = _toy()
    sim = _prepared(net, train)
    mp = MultiPrecision(sim, bits=(8, 6, 4, 2))
    x = next(iter(test))[0]
    outs = {}
    with torch.no_grad():
        for b in mp.bits:
            mp.set_bit_width(b)
            outs[b] = sim(x)
    size = mp.save_integers(tmp_path / "ints.pt")
    float_bytes = sum(m.weight.numel() * 4 for m in mp.layers.values())
    assert size < 0.6 * float_bytes + 4096
    state = torch.load(tmp_path / "ints.pt", weights_only=True)
    assert all(d["weight_int"].dtype == torch.int8 for d in state["layers"].values())
    fresh = MultiPrecision(_prepared(_net(seed=5), train), bits=(8, 6, 4, 2))  # other weights and ranges
    fresh.load_integers(tmp_path / "ints.pt")
    with torch.no_grad():
        for b in mp.bits:
            fresh.set_bit_width(b)
            assert torch.allclose(fresh.model(x), outs[b], atol=1e-5)
    mp.set_bit_width({name: 2 for name in list(mp.layers)[:1]})
    assert list(mp.bit_widths().values())[:2] == [2, 2]


def test_double_rounding_training_serves_every_precision_and_the_search_meets_budgets():
    net, train, test = _toy()
    task = Classification()
    sim = _prepared(net, train, act_learning="pact")
    mp = MultiPrecision(sim, bits=(8, 4, 2))
    before = {b: _acc(mp, b, test, task) for b in mp.bits}
    out = train_double_rounding(mp, train, test, task, DoubleRoundingConfig(epochs=12, lr=0.002, progress=False))
    assert out["drawn"] == {b: 12 * len(train) for b in mp.bits}  # joint: every precision at every step
    # measured: 8 / 4 / 2 bits 99.5 / 99.5 / 84.8% before, 99.5 / 99.5 / 94.3% after
    assert out["val"][8] > 0.95 and out["val"][4] > 0.95 and out["val"][2] >= before[2] + 0.03, (before, out["val"])
    supernet = MultiPrecision(_prepared(net, train), bits=(8, 4, 2))
    train_double_rounding(supernet, train, None, task, DoubleRoundingConfig(epochs=3, lr=0.002, mixed=True,
                                                                             progress=False))
    found = search_subnets(supernet, train, test, task, budgets=(3.0, 5.0, 8.0))
    assert all(r["average_bits"] <= r["budget"] + 1e-9 for r in found)
    assert found[-1]["accuracy"] >= found[0]["accuracy"] - 0.02


def test_each_precision_has_its_own_activation_range_and_sampled_training_draws_them():
    net, train, test = _toy()
    sim = _prepared(net, train, act_learning="pact")
    mp = MultiPrecision(sim, bits=(8, 2))
    switch = next(iter(mp.layers.values())).act_quant
    mp.set_bit_width(2)
    assert switch.current == "2" and switch.cfg.bits == 2 and switch.full_range().numel() == 1
    with torch.no_grad():
        switch.copies["2"].hi.mul_(0.5)
    assert switch.copies["8"].hi.item() == pytest.approx(2 * switch.copies["2"].hi.item())
    out = train_double_rounding(mp, train, None, Classification(), DoubleRoundingConfig(
        epochs=1, lr=0.002, joint=False, probabilities=(0.75, 0.25), progress=False))
    assert sum(out["drawn"].values()) == len(train) and out["drawn"][8] > out["drawn"][2] > 0


def _acc(mp, b, batches, task):
    mp.set_bit_width(b)
    with torch.no_grad():
        return evaluate(mp.model, batches, task)


def test_precision_command_writes_results_integers_and_plots(tmp_path, capsys):
    import json

    from noisesim.experiment.precision import main
    from noisesim.reports.docs import markdown_rows
    from tests.helpers import make_fashion_mnist

    data = make_fashion_mnist(tmp_path / "fm", n_train=300, n_test=64)
    out = tmp_path / "dr"
    assert main(["--data_path", str(data), "--method", "double_rounding", "--bits", "8", "4", "--epochs", "1",
                 "--val_samples", "64", "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())
    assert [r["bits"] for r in record["results"]] == [8, 4] and record["integers_bytes"] < record["float32_weight_bytes"]
    assert record["test_examples"] == 64
    for r in record["results"]:  # each accuracy with the Wilson interval of its 64 test examples, not of another n
        assert (r["test_low"], r["test_high"]) == pytest.approx(binomial_interval(r["test_accuracy"], 64))
        assert r["test_high"] - r["test_low"] > 0.1  # 64 examples: wide
    assert (out / "accuracy_by_precision.png").is_file() and (out / "integers.pt").is_file()
    table = markdown_rows((out / "results.md").read_text())  # what the docs read: the same numbers, rounded
    assert [(t["bits"], t["test accuracy [95% CI]"]) for t in table] == [
        (str(r["bits"]), f"{r['test_accuracy'] * 100:.2f}% [{r['test_low'] * 100:.2f}, {r['test_high'] * 100:.2f}]")
        for r in record["results"]]
    assert f"{record['integers_bytes'] / 1000:.0f} kB" in (out / "results.md").read_text()
    assert re.search(r"Command: `[^`\[]* --method double_rounding --bits 8 4 ", (out / "results.md").read_text())
    assert main(["--method", "cpt", "--epochs", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--epochs 0" in capsys.readouterr().err
