"""The shared base of `models` and `renderer`: one user-input error, file reading and atomic writing, PLY, limits."""
