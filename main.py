"""noisesim command line: sweep noise models, energies and bit-widths; train allocations; search.

    python main.py                      # thermal-noise study of the embedded Fashion-MNIST ResNet-20
    python main.py --help               # every flag, with units and defaults
"""
import sys

from noisesim.analysis.run import main

if __name__ == "__main__":
    sys.exit(main())
