#!/usr/bin/env bash
# Analog noise against its equivalent quantizer, thermal, shot and weight (noisesim/configs/studies/noise_bits.yaml).
#   run_noise/noise_bits.sh [IMAGENET_DIR] [--presets ...] [--variants thermal shot weight] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study noise_bits "$@"
