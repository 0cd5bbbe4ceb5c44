"""The talking-head studio: player core, `avatar` command, video writing.

OpenMP threads (torch's pool) wait passively: a spinning pool on a busy machine, or beside
numba's rasterizer threads, starves the threads doing the work (measured in
benchmarks/README.md, "Threads"). Set here because it must precede torch's first import;
a value already in the environment wins.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
