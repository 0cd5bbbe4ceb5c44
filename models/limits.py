"""Bounds on sizes and values that come from files and the command line.

Every number a file declares (an array's shape, a frame rate, a network's width, a nesting
depth) is checked against these before anything is allocated or built from it, so a crafted
or corrupt file gets a clear error instead of exhausting memory or the stack. The bounds are
far above anything a real avatar, model or study needs.
"""

MAX_ARRAY_BYTES = 2 << 30  # one array read from a file (FLAME shapedirs: 48 MB; a long motion: ~50 MB/h)
MAX_TEXT_BYTES = 16 << 20  # a JSON preset or config, a design file
MAX_NESTING = 64  # containers inside containers in JSON, YAML and pickles
MAX_YAML_NODES = 200_000  # a design's YAML, after aliases are expanded
MIN_FPS, MAX_FPS = 1.0, 1000.0  # frame rates of weights files and clips
MAX_DURATION_S = 24 * 3600.0  # a clip, a soundtrack, a weights or motion file
MAX_SAMPLE_RATE = 768_000  # Hz
MAX_CHANNELS = 64  # WAV channels
MAX_GAUSSIANS = 50_000_000  # in one PLY
