"""A design file's columns and what each means: the parser's help lists them, so this module
imports nothing (no YAML reader), and `avatar stimuli --help` stays light."""

COLUMNS = {
    "id": "unique name of the stimulus; its files are <id>.mp4, <id>.png, <id>.weights.csv",
    "avatar": "demo, or a GaussianAvatars folder",
    "flame": "the FLAME model of the avatar",
    "blendshapes": "the blendshape model (.npz) of the avatar",
    "generator": "a generator folder made by `avatar train-speech`",
    "driver": "learned or signal",
    "audio": "speech audio (WAV, or anything ffmpeg decodes: MP3, M4A, FLAC, OGG, a video): drives the face, or "
             "is the soundtrack of weights/motion",
    "text": "a sentence espeak-ng speaks to drive the face (instead of audio, weights or motion)",
    "text_language": "espeak-ng language of the text: en-us (default), de, fr, … (`espeak-ng --voices`)",
    "text_voice": "espeak-ng voice of the text: m1..m8, f1..f5, klatt, … (default: the language's own)",
    "text_rate": "speaking rate of the text, words per minute, 80..450 (default 175)",
    "weights": "a *.weights.npz sequence",
    "motion": "FLAME motion: flame_param keys, VHAP tracked_flame_params*.npz, or a flame_param/ folder",
    "emotion": "happy=0.8, a mix happy=0.5;surprised=0.3, or a name scaled by intensity",
    "intensity": "0..1: scales the emotion",
    "view": "front, three-quarter left/right, profile left/right, or yaw/pitch[/distance]",
    "camera": "a camera file (transforms*.json or a camera JSON): replaces the view",
    "camera_index": "the camera_index of the transforms file's frame to use (default: its first frame)",
    "size": "WIDTHxHEIGHT (even; default: the camera's size, else 512x512)",
    "fps": "frames per second",
    "background": "white, black, gray, #rrggbb or r,g,b",
    "start": "seconds into the source where the clip starts",
    "end": "seconds into the source where the clip ends (default: its end)",
    "lead_in": "seconds of still neutral face with silence before",
    "lead_out": "seconds of still neutral face with silence after",
    "speech_gain": "speech strength (1 = as driven)",
    "expression_gain": "expression strength (1 = as driven)",
    "expression_space": "free, or avatar: keep each frame inside the avatar's own tracked expressions",
    "seed": "seeds anything random while the clip is made",
    "blink": "0..1 blinks at human rate and duration (needs FLAME eyelid blendshapes); 0 (default) off",
    "gaze": "0..2 saccadic gaze shifts and fixations; 0 (default) off",
    "head_motion": "0..2 idle head motion following the speech; 0 (default) off",
    "exports": "animation files besides the MP4, e.g. livelink;gltf: livelink (<id>.livelink.csv), arkit "
               "(<id>.arkit.json), gltf (<id>.glb), motion (<id>.motion.npz), weights (<id>.weights.npz); "
               "the clip without lead-in and lead-out",
    "arkit_shapes": "the ARKit target shapes (.npz) of the avatar's FLAME for livelink/arkit exports (default on "
                    "the demo: its own)",
}
