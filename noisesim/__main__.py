"""``python -m noisesim``: the same command line as ``python main.py`` and ``noisesim``."""
import sys

from noisesim.commands import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m noisesim"))
