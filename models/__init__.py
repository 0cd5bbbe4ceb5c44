"""Models: FLAME, blendshapes and their FLAME mapping, speech and emotion drivers, the demo head."""
