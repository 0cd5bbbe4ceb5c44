"""The runtime rig: FLAME (loading, forward, teeth), safe model-file readers, blendshapes and their FLAME mapping, emotions."""
