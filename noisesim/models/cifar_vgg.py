"""VGG16 for 32x32 (and 28x28) images (Simonyan & Zisserman 2015, the common CIFAR variant with BN).

Thirteen 3x3 conv + BN + ReLU layers in five stages separated by 2x2 max pooling (ceil mode, so
that 28x28 inputs reach 1x1 as 32x32 ones do), then a 512 -> num_classes classifier.

A *chokepoint* narrows one conv to ``choke_channels`` inputs and outputs so that it fits a C x C
systolic array exactly: with ``chokepoint=i`` (1-12, counting the convs from 0) conv i-1 outputs C
channels, conv i maps C -> C, and conv i+1 takes C (the classic course-project VGG16 squeezes a
stage-4 conv to 8 channels for an 8 x 8 array). ``widths`` overrides the thirteen conv widths.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
STAGES = (2, 2, 3, 3, 3)  # convs per stage; a max-pool follows each stage


def vgg16_widths(chokepoint: Optional[int] = None, choke_channels: int = 8,
                 widths: Sequence[int] = WIDTHS) -> tuple[int, ...]:
    """The thirteen conv output widths, with a chokepoint at conv ``chokepoint`` if given."""
    widths = list(widths)
    if len(widths) != 13:
        raise ValueError(f"VGG16 has 13 convs, got {len(widths)} widths")
    if chokepoint is not None:
        if not 1 <= chokepoint <= 12:
            raise ValueError(f"chokepoint {chokepoint}: must be a conv index in 1-12 (its input comes from conv "
                             "chokepoint-1)")
        if choke_channels < 1:
            raise ValueError(f"choke_channels {choke_channels}: must be >= 1")
        widths[chokepoint - 1] = widths[chokepoint] = choke_channels
    return tuple(widths)


class CifarVGG16(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, chokepoint: Optional[int] = None,
                 choke_channels: int = 8, widths: Sequence[int] = WIDTHS):
        super().__init__()
        self.widths = vgg16_widths(chokepoint, choke_channels, widths)
        self.chokepoint, self.choke_channels = chokepoint, choke_channels
        layers: list[nn.Module] = []
        c, i = in_channels, 0
        for n in STAGES:
            for _ in range(n):
                v = self.widths[i]
                layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c, i = v, i + 1
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def conv_names(self) -> list[str]:
        """Module paths of the thirteen convs (``features.<index>``), in order."""
        return [f"features.{i}" for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
