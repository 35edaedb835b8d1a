#!/usr/bin/env bash
# the accelerator as built: light and ADC bits per layer under one budget of joules per inference (photonic preset:
# arrays of 256 rows, thermal+shot noise, 4-, 6- and 8-bit ADCs), uniform against joint, and where the joules go
# (noisesim/configs/studies/hardware.yaml; energy_breakdown.md and accuracy_vs_joules in each run folder).
#   run_noise/hardware.sh [IMAGENET_DIR] [--presets ...] [--variants adc4 adc6 adc8] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study hardware "$@"
