"""Training: the one loop for every task (``loop``), quantization-aware training (``qat``) and float
pretraining (``pretrain``). Precision that moves during training lives in ``noisesim.precision``."""
