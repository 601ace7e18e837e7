"""Entry point: ``python -m truesight --model smollm2 --port 8765`` (see `truesight.serve`)."""

from truesight.serve import main

raise SystemExit(main())
