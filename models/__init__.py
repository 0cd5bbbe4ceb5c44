"""Models: the runtime rig (`rig`), audio (`audio`), speech drivers (`drivers`) and training (`learning`)."""
