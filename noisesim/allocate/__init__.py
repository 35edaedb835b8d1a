"""Allocation methods, one per file, each returning an :class:`Allocation` (registered in ALLOCATORS)."""
from noisesim.allocate.allocation import Allocation, LayerAllocation
from noisesim.allocate.base import AllocationProblem, Allocator, Cost, measure_cost
from noisesim.allocate.trained import TrainedAllocator, TrainedSettings
from noisesim.allocate.uniform import UniformAllocator

__all__ = ["Allocation", "LayerAllocation", "AllocationProblem", "Allocator", "Cost", "measure_cost",
           "TrainedAllocator", "TrainedSettings", "UniformAllocator"]
