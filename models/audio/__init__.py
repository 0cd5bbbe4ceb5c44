"""Audio: streamed sources and WAV files, any other format through ffmpeg, text spoken by espeak-ng,
loudness, the built-in speech synthesizer."""
