"""An example noisesim plugin: a model, a data set, a noise model and an allocation method.

Installed (``pip install examples/plugin``), its entry points make them ``--model tiny_cnn
--dataset blobs --noise_type readout --allocation equal_snr``; without installing, the import
paths ``noisesim_example_plugin.models:tiny_cnn`` etc. name them.
"""
