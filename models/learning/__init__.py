"""Learning: data sets, the synthetic corpus, the blendshape learner, generator training, metrics. Never imported at run time."""
