"""noisesim command line: sweep noise models, energies and bit-widths; allocate; search iso-accuracy energies.

    python main.py                      # thermal-noise study of the embedded Fashion-MNIST ResNet-20
    python main.py --help               # every flag, with units and defaults
    python main.py precision --help     # also: precision, export, plot, pretrain (see noisesim/commands.py)
"""
import sys

from noisesim.commands import main

if __name__ == "__main__":
    sys.exit(main())
