"""Bounds on sizes and values that come from files and the command line.

Every number a file declares (an array's shape, a frame rate, a network's width, a nesting
depth) is checked against these before anything is allocated or built from it, so a crafted
or corrupt file gets a clear error instead of exhausting memory or the stack. The bounds are
far above anything a real avatar, model or study needs.
"""

MAX_ARRAY_BYTES = 2 << 30  # one array, or all of one .npz (FLAME shapedirs: 48 MB; a long motion: ~50 MB/h)
MAX_TEXT_BYTES = 16 << 20  # a JSON preset or config, a design file
MAX_DATASET_JSON_BYTES = 256 << 20  # a transforms*.json of a whole capture (~1 kB per frame: ~200k frames)
MAX_NESTING = 64  # containers inside containers in JSON, YAML and pickles
MAX_YAML_NODES = 200_000  # a design's YAML, after aliases are expanded
MIN_FPS, MAX_FPS = 1.0, 1000.0  # frame rates of weights files and clips
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 16, 8192  # pixels: an output's or a camera file's width and height
MAX_PIXELS = 1e6  # |focal length| or |principal point| of a camera file, in pixels
MAX_DURATION_S = 24 * 3600.0  # a clip, a soundtrack, a weights or motion file
MAX_MOTION_FILES = 500_000  # per-frame files in one motion folder (VHAP's flame_param/): 4.6 h at 30 fps
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000  # Hz; speech needs several kHz (telephone: 8000)
MAX_CHANNELS = 64  # WAV channels
MAX_GAUSSIANS = 50_000_000  # in one PLY
MAX_NAMES = 1000  # blendshapes, emotions or regions named in one file (ARKit has 52); each gets a slider
MAX_NAME_CHARS = 100  # one such name, also a CSV column title
MAX_KEYFRAMES = 100_000  # emotion keyframes in one preset
MAX_DESIGN_ROWS = 100_000  # stimuli in one design, after --factorial
MAX_PICKLE_ITEMS = 10_000_000  # opcodes in one pickle, and values once shared ones count each time reached
# Plausibility of values: finite but absurd ones would overflow float32 later (LBS, Rodrigues,
# squared errors) and give inf/NaN frames instead of an error.
MAX_COORDINATE = 1e3  # |position or displacement| in metres, also per unit of a FLAME or blendshape basis
MAX_FLAME_PARAMETER = 1e3  # |expression/shape coefficient| or |axis-angle| in radians; FLAME uses ~1
MAX_WEIGHT = 1e3  # |skinning weight|, |J_regressor entry|, |blendshape weight|; real ones lie in 0..1
