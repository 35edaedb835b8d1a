#!/usr/bin/env bash
# Trained energy per MAC by layer for thermal, shot and weight noise at one representative energy per model; the
# points join run_noise/{thermal,shot,weight}.sh's run folders, the figures go to logs/plot_emacs/
# (noisesim/configs/studies/plot_emacs.yaml).   run_noise/plot_emacs.sh [IMAGENET_DIR] [--presets ...] [--models ...]
source "$(dirname "$0")/common.sh"
study plot_emacs "$@"
