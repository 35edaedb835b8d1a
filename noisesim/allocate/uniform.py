"""Uniform allocation: every layer (and channel) at the budget, E_l = E_target; for weight or
activation bits, every layer at max(2, floor(b_target)) (the largest uniform bit-width within the
budget). A uniform point that trains bit-widths or activation ranges trains them as the trained
method does, energies frozen."""
from __future__ import annotations

import dataclasses
import math

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import AllocationJob, AllocationProblem, Allocator, bit_sizes, set_bits, QUANTITIES
from noisesim.allocate.trained import TrainedAllocator, TrainingSettings
from noisesim.registry import ALLOCATORS


@ALLOCATORS.register("uniform")
class UniformAllocator(Allocator):
    name = "uniform"
    quantities = QUANTITIES
    Settings = TrainingSettings

    @classmethod
    def from_settings(cls, s: TrainingSettings, job: AllocationJob) -> Allocator:
        """Uniform energies; a point that trains bit-widths or ranges trains them with its energies frozen."""
        if job.train_bits or job.train_ranges:
            return TrainedAllocator.from_settings(s, dataclasses.replace(job, train_energy=False))
        return cls()

    def allocate(self, problem: AllocationProblem) -> Allocation:
        for kind in problem.bit_kinds():
            bits = max(2, math.floor(problem.target_bits(kind) + 1e-9))
            set_bits(problem.model, kind, {n: bits for n in bit_sizes(problem.model, kind)})
        alloc = Allocation.from_model(problem.model, self.name, problem.granularity)
        if problem.target_emac is not None:
            alloc = alloc.uniform(problem.target_emac)
        alloc.method = self.name
        alloc.info.update(alloc_seconds=0.0, alloc_forward=0, alloc_backward=0)
        alloc.apply(problem.model)
        return alloc
