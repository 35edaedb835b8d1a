"""Training: the one loop for every task (``loop``), quantization-aware training (``qat``), precision that moves
during training (``adaptive``: AdaptiveDPC and CPT; ``double_rounding``) and float pretraining (``pretrain``)."""
