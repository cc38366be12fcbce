"""``python -m pdeldm.data.cds``: see :mod:`pdeldm.data.cds.cli`."""

import signal
import sys

from pdeldm.data.cds.cli import main

# Snakemake stops jobs with SIGTERM: turn it into SystemExit so scratch files are cleaned up
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
sys.exit(main())
