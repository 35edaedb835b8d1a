"""Instrumented layers and the module swap."""
from noisesim.nn.base import SimLayer
from noisesim.nn.conv import SimConv
from noisesim.nn.fold import fold_batchnorm, fold_bn_into
from noisesim.nn.linear import SimLinear
from noisesim.nn.matmul import Einsum, Matmul, SimEinsum, SimMatmul
from noisesim.nn.prepare import prepare, sim_layers, to_float
from noisesim.nn.residual import QuantAdd, QuantCat, quantize_residuals

__all__ = ["SimLayer", "SimConv", "SimLinear", "SimMatmul", "SimEinsum", "Matmul", "Einsum", "prepare",
           "sim_layers", "to_float", "fold_batchnorm", "fold_bn_into", "QuantAdd", "QuantCat",
           "quantize_residuals"]
