"""Perceptual-study stimuli: design files, batch rendering, manifests and trial lists."""
