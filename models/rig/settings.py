"""The names and limits of the rig's user-facing settings, free of numpy so a command line can
offer them without loading the rig: the expression spaces and the living layers."""

EXPRESSION_SPACES = ("free", "avatar")  # free: as generated; avatar: kept inside the tracked expressions
LAYERS = {  # living layer → (command-line option, highest strength)
    "blink": ("--blink", 1.0),
    "gaze": ("--gaze", 2.0),
    "head_motion": ("--head-motion", 2.0),
}
