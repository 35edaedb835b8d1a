"""DLRM (Naumov et al. 2019) in its standard layout, with instrumentable matmuls.

dense features -> bottom MLP -> x (d); each categorical feature -> EmbeddingBag (d);
dot interaction: Z = T T^T for T = [x, e_1, ..., e_26] (a matmul of two activations, done by
``noisesim.nn.Matmul`` so that it is simulated too), strictly-lower-triangular entries
concatenated with x -> top MLP -> one click logit. Embedding tables are stored and used
fake-quantized to ``embedding_bits`` (asymmetric, one range per row) as deployed DLRMs do.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from noisesim.nn.matmul import Matmul
from noisesim.quant.functional import fake_quant_ste, qparams


def mlp(sizes: Sequence[int], last_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class QuantEmbeddingBag(nn.EmbeddingBag):
    """Sum-pooled embedding bag whose table is fake-quantized row-wise to ``bits`` (None = float)."""

    def __init__(self, num: int, dim: int, bits: Optional[int] = 8):
        super().__init__(num, dim, mode="sum")
        self.bits = bits
        bound = (1.0 / num) ** 0.5  # the reference DLRM's initialisation
        nn.init.uniform_(self.weight, -bound, bound)

    def table(self) -> torch.Tensor:
        w = self.weight
        if self.bits is None:
            return w
        scale, zp, qmin, qmax = qparams(w.detach().amin(1, keepdim=True), w.detach().amax(1, keepdim=True),
                                        self.bits, symmetric=False)
        return fake_quant_ste(w, scale, zp, qmin, qmax)

    def forward(self, idx: torch.Tensor, offsets: Optional[torch.Tensor] = None) -> torch.Tensor:
        return nn.functional.embedding_bag(idx, self.table(), offsets, mode="sum")


class DLRM(nn.Module):
    def __init__(self, num_dense: int = 13, table_sizes: Sequence[int] = (1000,) * 26, dim: int = 16,
                 bottom: Sequence[int] = (128, 64), top: Sequence[int] = (128, 64),
                 embedding_bits: Optional[int] = 8):
        super().__init__()
        self.bottom = mlp([num_dense, *bottom, dim], last_relu=True)
        self.embeddings = nn.ModuleList(QuantEmbeddingBag(n, dim, embedding_bits) for n in table_sizes)
        self.interaction = Matmul()
        n = len(table_sizes) + 1
        self.register_buffer("tril", torch.tril_indices(n, n, offset=-1), persistent=False)
        self.top = mlp([dim + n * (n - 1) // 2, *top, 1], last_relu=False)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """dense: (B, 13) floats; sparse: (B, 26) indices, one per feature. Returns (B,) logits."""
        x = self.bottom(dense)
        embs = [emb(sparse[:, i:i + 1]) for i, emb in enumerate(self.embeddings)]
        t = torch.stack([x, *embs], dim=1)  # (B, 27, d)
        z = self.interaction(t, t.transpose(1, 2))  # (B, 27, 27)
        pairs = z[:, self.tril[0], self.tril[1]]
        return self.top(torch.cat([x, pairs], dim=1)).squeeze(1)
