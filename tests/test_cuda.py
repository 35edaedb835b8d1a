"""The GPU path (skipped without CUDA): prepare, calibrate, noise statistics and a main.py run on the device."""
import pytest
import torch

import noisesim

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_noise_on_the_gpu_matches_the_formula_and_is_seeded():
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 16).cuda()
    x = torch.randn(16384, 256, device="cuda")
    sim = noisesim.prepare(layer, noisesim.SimConfig(noise_type="thermal", e_mac=7.0, seed=1))
    noisesim.calibrate(sim, [x])
    with torch.no_grad():
        noisy = sim(x)
        with noisesim.noise_disabled(sim):
            delta = noisy - sim(x)
    r_w = 2 * sim.weight.abs().max()
    r_x = x.max() - torch.clamp(x.min(), max=0)
    expected = (0.01 * r_w * r_x * (256 / 7.0) ** 0.5).item()
    assert delta.std().item() == pytest.approx(expected, rel=0.03) and delta.device.type == "cuda"
    assert len(sim.noise.sampler._gens(x.device)) == 1  # one seeded generator per layer on the device


def test_main_runs_on_the_gpu(tmp_path):
    import pandas as pd

    from noisesim.experiment.main import main
    from tests.helpers import make_fashion_mnist

    data = make_fashion_mnist(tmp_path / "fm", n_train=128, n_test=64)
    assert main(["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path), "--run_name", "g",
                 "--device", "cuda", "--noise_type", "thermal", "--target_emac", "5", "--allocation", "uniform",
                 "trained", "--train_batches", "4", "--no_plot", "--no-progress"]) == 0
    df = pd.read_csv(tmp_path / "g" / "results.csv")
    assert len(df) == 2 and df["device"].str.startswith("cuda").all()
