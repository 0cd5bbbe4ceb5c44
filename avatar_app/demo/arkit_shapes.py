"""The demo head's ARKit target shapes: Apple's 52 blend shape locations as displacement fields.

ARKit (ARFaceAnchor.BlendShapeLocation) describes a face by 52 coefficients in 0..1, each the
movement of one feature from neutral (0) to its full extent (1). A target here is that full
movement on the demo head, made from the head's own parts: its FACS expression components
(head._expression_dirs), its jaw and eye joints and its eyelid blendshapes, posed through the
demo FLAME; where the head has no component (cheek puff, lip roll and shrug, lips sideways, jaw
forward, lip closure, tongue) the field is authored here on the head's landmarks and parts.

'Left' is the subject's left (+x), as Apple's documentation names the features (eyeBlinkLeft
closes the left eye). A one-sided target keeps its component's field on its own side only
(a 4 mm blend across the midline), so the left and right targets of one movement add up to the
two-sided movement; every right target is the mirror image (x → −x) of its left one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from avatar_app.demo.head import (
    EXPRESSIONS,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    PARTS,
    DemoHead,
    _mask,
    _smoothstep,
    face_points,
    front_surface_z,
    lip_depth,
)
from models.rig.arkit import ARKIT_NAMES
from models.rig.flame import FlameParams, FlameRig
from models.rig.flame_arrays import FlameArrays
from models.rig.teeth import JAW_JOINT

# Full movements (ARKit's 1.0): jaw opening and sideways turn, eye turns (radians); millimetres
# of the authored fields are in _authored_fields.
JAW_OPEN, JAW_SIDE = 0.35, 0.08
EYE_SIDE, EYE_VERTICAL = 0.44, 0.35
MIDLINE_BLEND = 0.004   # m: one-sided fields fade across x = ±this


@dataclass(frozen=True)
class Target:
    """A target as a demo FLAME pose (left eye and eyelid for the eyes) plus an authored field.

    `whole`: the movement is of the whole feature (jaw or lips sideways), not one side's half."""

    expr: dict[str, float] = field(default_factory=dict)
    jaw: tuple[float, float, float] = (0.0, 0.0, 0.0)
    left_eye: tuple[float, float, float] = (0.0, 0.0, 0.0)
    left_eyelid: float = 0.0
    authored: str | None = None
    whole: bool = False


# The left (or one-sided) targets; each right target mirrors its left one. Apple's descriptions,
# shortened, in the comments.
LEFT = {
    "eyeBlinkLeft": Target(left_eyelid=1.0),                                  # closure of the lids
    "eyeLookDownLeft": Target(left_eye=(EYE_VERTICAL, 0, 0), left_eyelid=0.2),  # lids with a downward gaze
    "eyeLookInLeft": Target(left_eye=(0, -EYE_SIDE, 0)),                      # gaze toward the nose
    "eyeLookOutLeft": Target(left_eye=(0, EYE_SIDE, 0)),                      # gaze away from the nose
    "eyeLookUpLeft": Target(left_eye=(-EYE_VERTICAL, 0, 0), expr={"eyes_wide": 0.5}),  # upward gaze
    "eyeSquintLeft": Target(expr={"lower_lid_raise": 1.0}, left_eyelid=0.15),  # contraction around the eye
    "eyeWideLeft": Target(expr={"eyes_wide": 1.0}),                          # widening of the lids
    "jawLeft": Target(jaw=(0, JAW_SIDE, 0), whole=True),                     # jaw moved left
    "mouthLeft": Target(authored="lips_left", whole=True),                   # both lips moved left
    "mouthSmileLeft": Target(expr={"smile": 1.0}),                           # corner up (and out)
    "mouthFrownLeft": Target(expr={"frown": 1.0}),                           # corner down
    "mouthDimpleLeft": Target(expr={"dimple_left": 1.0}),                    # corner backward
    "mouthStretchLeft": Target(expr={"lip_stretch": 1.0}),                   # corner leftward
    "mouthPressLeft": Target(expr={"lips_press": 2.0}),                      # lower lip pressed up
    "mouthLowerDownLeft": Target(expr={"lower_lip_depress": 1.0}),           # lower lip down
    "mouthUpperUpLeft": Target(expr={"upper_lip_raise": 1.0}),               # upper lip up
    "browDownLeft": Target(expr={"brow_lower": 1.0, "brow_outer_up": -0.5}),  # brow (its outer part) down
    "browOuterUpLeft": Target(expr={"brow_outer_up": 1.0}),                  # outer brow up
    "cheekSquintLeft": Target(expr={"cheek_raise": 1.0}),                    # cheek under the eye up
    "noseSneerLeft": Target(expr={"nose_wrinkle": 1.0}),                     # nose side raised
}
CENTRE = {
    "jawForward": Target(authored="jaw_forward"),                            # jaw forward
    "jawOpen": Target(jaw=(JAW_OPEN, 0, 0)),                                 # jaw opened (FLAME's jaw joint)
    "mouthClose": Target(authored="lips_close"),                             # lips closed whatever the jaw
    "mouthFunnel": Target(expr={"lips_round": 1.0, "upper_lip_raise": 0.5, "lower_lip_depress": 0.6}),  # open O
    "mouthPucker": Target(expr={"lips_round": 1.0, "lips_press": 1.0}),      # closed lips pushed out
    "mouthRollLower": Target(authored="roll_lower"),                         # lower lip rolled in
    "mouthRollUpper": Target(authored="roll_upper"),                         # upper lip rolled in
    "mouthShrugLower": Target(authored="shrug_lower"),                       # lower lip pushed out
    "mouthShrugUpper": Target(authored="shrug_upper"),                       # upper lip pushed out
    "browInnerUp": Target(expr={"brow_inner_up": 1.0}),                      # inner brows up
    "cheekPuff": Target(authored="cheek_puff"),                              # cheeks outward
    "tongueOut": Target(authored="tongue_out"),                              # tongue extended
}


def right_name(left: str) -> str:
    """The mirror target's name: eyeBlinkLeft → eyeBlinkRight."""
    return left[:-len("Left")] + "Right"


def mirror_map(vertices: np.ndarray) -> np.ndarray:
    """Index of each vertex's mirror image (x → −x); the demo head is built symmetric."""
    distance, index = cKDTree(vertices).query(vertices * np.array([-1.0, 1.0, 1.0]))
    if distance.max() > 1e-6 or len(np.unique(index)) != len(vertices):
        raise ValueError("the demo head is not mirror-symmetric: its right targets cannot mirror the left")
    return index


def _authored_fields(head: DemoHead, flame: FlameArrays, jaw_open: np.ndarray) -> dict[str, np.ndarray]:
    """(V, 3) fields for the movements the head has no component for, at full movement."""
    v = head.arrays["v_template"].astype(np.float64)
    x, y, z = v.T
    part = head.vertex_part
    face = ((part == PARTS.index("head")) & (z > 0))[:, None]
    lips = face * _smoothstep(-0.003, 0.002, lip_depth(v))[:, None]     # the red of the lips, softly
    upper, lower = lips * (y > MOUTH_Y)[:, None], lips * (y <= MOUTH_Y)[:, None]
    # The lower lip and the skin below it down to the chin's top, fading there and beside the mouth.
    below_lips = face * (_smoothstep(MOUTH_Y - 0.03, MOUTH_Y - 0.008, y)
                         * _smoothstep(MOUTH_HALF_WIDTH + 0.02, MOUTH_HALF_WIDTH - 0.004, np.abs(x)))[:, None]
    around_mouth = face * (_smoothstep(MOUTH_HALF_WIDTH + 0.02, MOUTH_HALF_WIDTH, np.abs(x))
                           * np.exp(-((y - MOUTH_Y) / 0.016) ** 2))[:, None]   # lips, corners and skin round them
    outward = np.stack([x, np.zeros_like(x), z], -1) / np.maximum(np.hypot(x, z), 1e-9)[:, None]
    surface = v[part == PARTS.index("head")]
    puffed = [(s * 0.045, MOUTH_Y + 0.008) for s in (1, -1)]             # beside the mouth, below the cheekbones
    cheeks = face * sum(_mask(v, [cx, cy, front_surface_z(cx, cy, surface)], 0.014) for cx, cy in puffed)[:, None]
    chin = face * _mask(v, face_points(surface)["chin"], 0.012)[:, None]
    tongue = (part == PARTS.index("tongue"))[:, None]
    reach = (z - z[tongue[:, 0]].min()) / np.ptp(z[tongue[:, 0]])    # 0 at the tongue's root, 1 at its tip
    return {
        "lips_left": around_mouth * [0.005, 0.0, 0.0],
        "jaw_forward": flame.weights[:, JAW_JOINT, None] * [0.0, 0.0, 0.004],
        "lips_close": -jaw_open * below_lips,                             # undoes the jaw's pull on the lips
        "roll_lower": lower * [0.0, 0.0015, -0.004],
        "roll_upper": upper * [0.0, -0.0015, -0.004],
        "shrug_lower": lower * [0.0, 0.0015, 0.003] + chin * [0.0, 0.002, 0.001],
        "shrug_upper": upper * [0.0, 0.001, 0.003],
        "cheek_puff": cheeks * outward * 0.004,
        "tongue_out": tongue * np.stack([np.zeros_like(x), -0.003 * reach, 0.006 + 0.016 * reach], -1),
    }


def _posed(flame: FlameArrays, targets: list[Target]) -> np.ndarray:
    """(N, V, 3) displacements of the targets' FLAME poses from the neutral head."""
    n = len(targets)
    params = FlameParams.neutral(n + 1)                                  # row n: neutral
    for i, t in enumerate(targets):
        for name, w in t.expr.items():
            params.expr[i, EXPRESSIONS.index(name)] = w
        params.jaw_pose[i] = t.jaw
        params.eyes_pose[i, :3] = t.left_eye
        params.eyelids[i, 0] = t.left_eyelid
    with torch.no_grad():
        vertices = FlameRig(flame)(params).numpy().astype(np.float64)
    return vertices[:n] - vertices[n]


def demo_arkit_shapes(head: DemoHead, flame: FlameArrays) -> dict[str, np.ndarray]:
    """Apple name → float32 (V, 3) displacement of the demo head at that target's full movement,
    in ARKIT_NAMES order; `flame` is the demo head's FLAME (its eyelid blendshapes included)."""
    v = head.arrays["v_template"].astype(np.float64)
    recipes = {**LEFT, **CENTRE}
    posed = dict(zip(recipes, _posed(flame, list(recipes.values()))))
    authored = _authored_fields(head, flame, posed["jawOpen"])
    own_side = _smoothstep(-MIDLINE_BLEND, MIDLINE_BLEND, v[:, 0])[:, None]
    mirror = mirror_map(v)
    shapes = {}
    for name, t in recipes.items():
        shape = posed[name] + (authored[t.authored] if t.authored else 0.0)
        if name in LEFT:
            shape = shape if t.whole else own_side * shape
            shapes[right_name(name)] = (shape[mirror] * [-1.0, 1.0, 1.0]).astype(np.float32)
        shapes[name] = shape.astype(np.float32)
    return {name: shapes[name] for name in ARKIT_NAMES}
