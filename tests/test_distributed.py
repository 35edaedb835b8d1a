"""Data parallelism: two CPU processes with gloo give the single-process evaluation exactly, train in lockstep,
and under torchrun only process 0 writes the run folder."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import noisesim
from noisesim import distributed
from noisesim.data.tasks import Classification
from noisesim.data.tensors import TensorBatches
from noisesim.train.loop import TrainConfig, evaluate_outcomes, train

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup():
    torch.manual_seed(0)
    x, y = torch.randn(700, 32), torch.randint(0, 4, (700,))
    net = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    sim = noisesim.prepare(net, noisesim.SimConfig(noise_type="thermal", e_mac=0.5, seed=3))
    noisesim.calibrate(sim, [x[:200]])
    return sim, TensorBatches(x, y, 64)  # 11 batches: an odd count, the last one short


def _worker(rank: int, port: int, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    sim, batches = _setup()
    outcomes, targets = evaluate_outcomes(sim, batches, Classification(), batch_seed=5)
    params = [m.log_energy for m in sim.modules() if isinstance(m, noisesim.noise.NoiseModel)]
    for p in params:
        p.requires_grad_(True)
    train(sim, params, batches, Classification(), TrainConfig(steps=6, lr=0.1, progress=False))
    energies = torch.cat([p.detach().reshape(-1) for p in params])
    gathered = [None, None]
    dist.all_gather_object(gathered, energies)
    if rank == 0:
        torch.save({"outcomes": outcomes, "targets": targets, "energies": gathered}, out)
    dist.destroy_process_group()


def test_two_processes_evaluate_exactly_as_one_and_train_in_lockstep(tmp_path):
    out = str(tmp_path / "dist.pt")
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    got = torch.load(out, weights_only=False)
    sim, batches = _setup()
    outcomes, targets = evaluate_outcomes(sim, batches, Classification(), batch_seed=5)
    assert not distributed.active()
    assert np.array_equal(got["outcomes"], outcomes) and np.array_equal(got["targets"], targets)
    assert len(outcomes) == 700 and 0.2 < outcomes.mean() < 0.95  # noisy enough that seeds matter
    other, _ = evaluate_outcomes(sim, batches, Classification(), batch_seed=6)
    assert not np.array_equal(other, outcomes)  # another draw is another draw
    e0, e1 = got["energies"]
    assert torch.equal(e0, e1) and not torch.allclose(e0, torch.full_like(e0, np.log(0.5)))


@pytest.mark.slow
def test_torchrun_main_writes_only_from_process_zero(tmp_path):
    from tests.helpers import make_fashion_mnist

    data = make_fashion_mnist(tmp_path / "fm", n_train=128, n_test=64)
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), str(ROOT / "main.py"), "--config", "none", "--data_path", str(data), "--log_dir",
           str(logs), "--run_name", "ddp", "--noise_type", "thermal", "--target_emac", "3", "30", "--allocation",
           "uniform", "trained", "--train_batches", "4", "--train_batch_size", "32", "--val_batch_size", "16",
           "--calibration_batches", "1", "--no_plot", "--no-progress", "--mc_repeats", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(logs / "ddp" / "results.csv")
    assert len(df) == 4 and df["point_id"].is_unique and df["examples"].eq(64).all() and df["draws"].eq(2).all()
    assert proc.stdout.count("results:") == 1  # process 1 prints nothing
