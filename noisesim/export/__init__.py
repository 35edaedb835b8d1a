"""Integer export of prepared models: exact integers, integer-only verification, hardware test-bench files.

    python -m noisesim.export logs/<run> --out export/ [--layer NAME --array 8 --itile 0 --otile 0]
"""
from noisesim.export.integers import (ExportError, Grid, LayerIntegers, export_layer, export_model, load_export,
                                     save_export)
from noisesim.export.verify import (LayerCheck, checks_frame, dequantize, integer_inference, integer_psum,
                                    overflow_report, verify_layers)

__all__ = ["ExportError", "Grid", "LayerIntegers", "export_layer", "export_model", "load_export", "save_export", "LayerCheck",
           "checks_frame", "dequantize", "integer_inference", "integer_psum", "overflow_report", "verify_layers"]
