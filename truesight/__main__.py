"""`python -m truesight`: run the local worker (see truesight/serve.py)."""

import os
import sys

from truesight.serve import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# A generate still running in the batcher's thread would hold interpreter exit until it ends
# (minutes on a CPU); the worker keeps nothing that needs flushing, so leave at once.
os._exit(code)
