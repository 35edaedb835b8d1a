#!/usr/bin/env bash
# MiniLM at W8A8 without noise, on its 2000 held-out snippets: what each standard remedy for transformer
# activations buys — per-channel weights (the FFN down-projections have rows 40x larger than the median), an MSE
# or percentile activation observer, per-token dynamic activation ranges, and LayerNorm outputs (the inputs of the
# query/key/value and FFN-up projections, whose outlier dimensions set the per-tensor range) kept at 16 bits.
# The "dynamic" setting is the named configuration noisesim/configs/minilm_w8a8.yaml.
#   run_quant/minilm_remedies.sh
source "$(dirname "$0")/settings.sh"
PRESETS=(MINILM)
STUDY_FLAGS=(--noise_type none --weight_bits 8 --act_bits 8)
LAYERNORM_OUT='{".*(self\\.(query|key|value)|intermediate\\.dense)": {"act_bits": 16}}'
setting per_tensor
setting per_channel --weight_per_channel
setting mse --weight_per_channel --act_observer mse
setting percentile --weight_per_channel --act_observer percentile
setting dynamic --weight_per_channel --act_dynamic
setting layernorm16 --weight_per_channel --overrides "$LAYERNORM_OUT"
compare_settings per_tensor per_channel mse percentile dynamic layernorm16
