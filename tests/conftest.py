import os
from pathlib import Path

import pytest
import torch

# With pytest -n 2 --dist loadfile each file runs whole on one worker, in collection order: the longest files go
# first, so that no long file starts while the other worker has nothing left to do.
LONGEST_FIRST = ("test_cli.py", "test_docs.py", "test_zoo.py", "test_reports.py", "test_allocate.py", "test_stats.py",
                 "test_methods_cli.py", "test_wheel.py", "test_examples.py", "test_export.py", "test_onnx.py",
                 "test_distributed.py", "test_plugins.py", "test_bad_input.py", "test_sampler.py")

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: N processes share the cores, one thread each
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))  # stable within each file
