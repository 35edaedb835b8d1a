"""Integer export of prepared models: exact integers, integer-only verification, hardware test-bench files.

The command that exports a run folder is ``noisesim export`` (``noisesim.experiment.export``).
"""
from noisesim.export.integers import (ExportError, Grid, LayerIntegers, export_layer, export_model, load_export,
                                     save_export)
from noisesim.export.onnx import compare_with_onnxruntime, to_onnx
from noisesim.export.verify import (LayerCheck, checks_frame, dequantize, integer_inference, integer_psum,
                                    overflow_report, verify_layers)

__all__ = ["to_onnx", "compare_with_onnxruntime", "ExportError", "Grid", "LayerIntegers", "export_layer", "export_model", "load_export", "save_export", "LayerCheck",
           "checks_frame", "dequantize", "integer_inference", "integer_psum", "overflow_report", "verify_layers"]
