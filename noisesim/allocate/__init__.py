"""Allocation methods, one per file, each returning an :class:`Allocation` (registered in ALLOCATORS):
uniform, trained (constrained loss), greedy (sensitivity + epsilon), hessian (Hutchinson + integer
program), closed_form (Lagrangian optimum of the second-order loss), joint and joint_trained (light and ADC bits
under one budget of joules: closed form, or trained)."""
from noisesim.allocate.allocation import Allocation, LayerAllocation
from noisesim.allocate.base import AllocationJob, AllocationProblem, Allocator, Cost, NoSettings, measure_cost
from noisesim.allocate.closed_form import ClosedFormAllocator, ClosedFormSettings, closed_form_energies, waterfill_bits
from noisesim.allocate.greedy import GreedyAllocator, GreedySettings, greedy
from noisesim.allocate.rounding import round_to_budget
from noisesim.allocate.integer_program import HessianAllocator, choose, hessian_weight_bits
from noisesim.allocate.joint import JointAllocator, JointProblem, JointSettings
from noisesim.allocate.joint_trained import JointTrainedAllocator
from noisesim.allocate.sensitivity import (HutchinsonSettings, Sensitivity, SensitivitySettings, fisher_sensitivity, finite_difference_sensitivity,
                                           hessian_sensitivity, weight_hessian_trace)
from noisesim.allocate.trained import TrainedAllocator, TrainedSettings, TrainingSettings
from noisesim.allocate.uniform import UniformAllocator

from noisesim.registry import ALLOCATORS, PluginError


def _allocator_class(obj, origin: str) -> type:
    """What a plugin registers as an allocation method: an Allocator subclass."""
    if not (isinstance(obj, type) and issubclass(obj, Allocator)):
        raise PluginError(f"{obj!r} is not a subclass of noisesim.allocate.Allocator")
    return obj


ALLOCATORS.adapt = _allocator_class

# the settings of the built-in methods, which main.py's flags are generated from (a plugin's method is built
# from its own Settings' defaults)
METHOD_SETTINGS = (TrainingSettings, ClosedFormSettings, GreedySettings, HutchinsonSettings, JointSettings)

__all__ = ["Allocation", "LayerAllocation", "AllocationJob", "AllocationProblem", "Allocator", "Cost", "NoSettings",
           "measure_cost", "METHOD_SETTINGS", "ClosedFormSettings", "GreedySettings", "HutchinsonSettings",
           "SensitivitySettings", "TrainingSettings",
           "ClosedFormAllocator", "closed_form_energies", "round_to_budget", "waterfill_bits", "GreedyAllocator",
           "greedy", "HessianAllocator", "choose", "hessian_weight_bits", "Sensitivity",
           "fisher_sensitivity", "finite_difference_sensitivity", "hessian_sensitivity", "weight_hessian_trace",
           "TrainedAllocator", "TrainedSettings", "UniformAllocator"]
