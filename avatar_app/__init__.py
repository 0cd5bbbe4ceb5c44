"""The talking-head studio: player core, `avatar` command, video writing."""
