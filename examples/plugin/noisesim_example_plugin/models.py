"""A small CNN: what a factory for noisesim's ``--model`` looks like."""
from torch import nn


def tiny_cnn(num_classes: int = 4, in_channels: int = 1, width: int = 8) -> nn.Module:
    """conv 3x3 -> ReLU -> 4x4 average pool -> linear; ``width`` is an option (``--model_options
    '{"width": 16}'``). noisesim passes ``num_classes`` and ``in_channels`` from the data set."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(width * 16, num_classes))
