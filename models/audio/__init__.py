"""Audio: streamed sources and WAV files, loudness, the built-in speech synthesizer."""
