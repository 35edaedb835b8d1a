"""Energies for equal thermal SNR: what an allocation method for ``--allocation`` looks like.

Thermal noise has sigma proportional to sqrt(D_l / E_l), so E_l proportional to the fan-in D_l
gives every layer the same signal-to-noise ratio; one factor then meets the average budget
(weighted by MACs): E_l = E_avg * D_l * sum_k M_k / sum_k M_k D_k.
"""
import noisesim
from noisesim.allocate import Allocation, AllocationProblem, Allocator


class EqualSNRAllocator(Allocator):
    name = "equal_snr"
    granularities = ("layer",)
    quantities = ("energy",)

    def allocate(self, problem: AllocationProblem) -> Allocation:
        fan_in = {m.name: m.noise_fan_in for m in noisesim.sim_layers(problem.model)}
        alloc = Allocation.from_model(problem.model, self.name, problem.granularity)
        for name, layer in alloc.layers.items():
            if layer.energy is not None:
                layer.energy = [float(fan_in[name])] * len(layer.energy)
        alloc = alloc.with_average_energy(problem.target_emac)
        alloc.apply(problem.model)
        return alloc
