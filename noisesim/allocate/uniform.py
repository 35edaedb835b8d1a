"""Uniform allocation: every layer (and channel) at the budget, E_l = E_target."""
from __future__ import annotations

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import AllocationProblem, Allocator
from noisesim.registry import ALLOCATORS


@ALLOCATORS.register("uniform")
class UniformAllocator(Allocator):
    name = "uniform"

    def allocate(self, problem: AllocationProblem) -> Allocation:
        alloc = Allocation.from_model(problem.model, self.name, problem.granularity)
        if problem.target_emac is not None:
            alloc = alloc.uniform(problem.target_emac)
        alloc.method = self.name
        alloc.info.update(alloc_seconds=0.0, alloc_forward=0, alloc_backward=0)
        alloc.apply(problem.model)
        return alloc
