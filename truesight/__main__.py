"""`python -m truesight`: run the local worker (see truesight/main.py)."""

import os
import sys

from truesight.main import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# A generate still running in the batcher's thread would hold interpreter exit until it ends
# (minutes on a CPU); the worker keeps nothing that needs flushing, so leave at once.
os._exit(code)
