"""The procedural demo: head, hand-made blendshapes, painted avatar, and `avatar build-demo`."""
