#!/usr/bin/env bash
# Allocation methods side by side under thermal and shot noise: uniform, trained, greedy, hessian, closed_form,
# per layer and per channel; iso-accuracy energies and each method's compute (noisesim/configs/studies/allocation_methods.yaml).
#   run_noise/allocation_methods.sh [IMAGENET_DIR] [--presets fmnist effnet] [--variants thermal shot] [-- main.py flags]
#   (e.g. -- --allocation greedy hessian reruns a subset of the methods in place)
source "$(dirname "$0")/common.sh"
study allocation_methods "$@"
