"""The test suite. Its processes train with one torch thread each (unless OMP_NUM_THREADS says
otherwise), set here, before any test module imports torch; Ray's workers and the searches the
tests start inherit it. Two xdist workers already fill this machine's two cores: a second
intra-op thread in each training process only made the threads wait on each other, and the
trial and method tests took 244 s instead of 98 (docs/development.md)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
