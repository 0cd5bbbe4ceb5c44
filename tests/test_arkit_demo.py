"""The demo's ARKit targets (avatar_app/demo/arkit_shapes.py) mean what Apple's
ARFaceAnchor.BlendShapeLocation documentation says, measured on the demo head's landmarks in mm
along its axes (up +y, forward +z, the subject's left +x; Apple's 'Left' is the subject's left);
and solving a demo clip onto them reconstructs its mouth."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from assets import DEMO_ARKIT_SHAPES, DEMO_AUDIO, DEMO_FLAME
from avatar_app.avatar import DEMO_SOURCE
from avatar_app.clip import ClipSource
from avatar_app.demo.arkit_shapes import JAW_OPEN, demo_arkit_shapes
from avatar_app.demo.head import MOUTH_Y, PARTS, build_demo_head
from avatar_app.demo.landmarks import demo_landmarks
from avatar_app.player import Performance, Player
from models.rig.action_units import ACTION_UNITS, action_units
from models.rig.arkit import ARKIT_NAMES, load_arkit_shapes, solve_arkit
from models.rig.flame import load_flame
from models.rig.living import LivingLayers

OTHER = {"left": "right", "right": "left"}
STILL_MM = 0.05      # "does not move": under a twentieth of a millimetre
MIDLINE_MM = 5.0     # one-sided targets leave everything this far across the midline still


class Face:
    """The demo head's rest mesh, landmarks and targets, read in mm along its axes."""

    def __init__(self) -> None:
        self.head = build_demo_head()
        self.v = self.head.arrays["v_template"].astype(np.float64)
        self.targets = demo_arkit_shapes(self.head, load_flame(DEMO_FLAME))
        self.landmarks = demo_landmarks(self.v, self.head.vertex_part)
        part = self.head.vertex_part
        front = (part == PARTS.index("head")) & (self.v[:, 2] > 0)
        for side, s in (("left", 1), ("right", -1)):   # the lips beside the midline, 12 mm out
            for lip, dy, above in (("upper", 0.005, True), ("lower", -0.006, False)):
                allowed = front & ((self.v[:, 1] > MOUTH_Y) == above)
                d = np.hypot(self.v[:, 0] - s * 0.012, self.v[:, 1] - (MOUTH_Y + dy))
                self.landmarks[f"{lip}_lip_{side}"] = int(np.argmin(np.where(allowed, d, np.inf)))
            d = np.hypot(self.v[:, 0] - s * 0.045, self.v[:, 1] - (MOUTH_Y + 0.008))
            self.landmarks[f"cheek_puff_{side}"] = int(np.argmin(np.where(front, d, np.inf)))
            eyeball = np.flatnonzero(part == PARTS.index(f"eyeball_{side}"))
            self.landmarks[f"pupil_{side}"] = int(eyeball[np.argmax(self.v[eyeball, 2])])

    def field(self, names: str) -> np.ndarray:
        """Displacement (V, 3) in m of targets joined by '+', each at 1."""
        return sum(self.targets[n].astype(np.float64) for n in names.split("+"))

    def at(self, names: str, landmark: str) -> np.ndarray:
        """(left, up, forward) movement of a landmark in mm."""
        return 1000.0 * self.field(names)[self.landmarks[landmark]]

    def au(self, names: str) -> dict[str, float]:
        readings = action_units(self.v, self.v + self.field(names), self.landmarks)
        return dict(zip(ACTION_UNITS, readings))


@pytest.fixture(scope="module")
def face() -> Face:
    return Face()


def test_packaged_targets_are_the_builders(face):
    shipped = load_arkit_shapes(DEMO_ARKIT_SHAPES, len(face.v))
    assert list(face.targets) == list(ARKIT_NAMES)
    for name, field in zip(shipped.names, shipped.displacements):
        assert np.array_equal(field, face.targets[name]), f"{name}: run `avatar build-demo --in-place --no-speech`"


def test_every_target_moves_its_feature_by_a_real_amount(face):
    for name, field in face.targets.items():
        assert field.dtype == np.float32 and np.isfinite(field).all()
        largest = 1000.0 * np.linalg.norm(field, axis=1).max()
        assert 1.5 <= largest <= 40.0, f"{name} moves at most {largest:.2f} mm"


def sided(name: str) -> str | None:
    for side in ("Left", "Right"):
        if name.endswith(side):
            return side.lower()
    return None


def test_one_sided_targets_leave_the_other_side_still(face):
    x = face.v[:, 0] * 1000.0
    for name, field in face.targets.items():
        side = sided(name)
        if side is None or name.startswith(("jaw", "mouthLeft", "mouthRight")):  # whole-feature movements
            continue
        across = x < -MIDLINE_MM if side == "left" else x > MIDLINE_MM
        assert 1000.0 * np.abs(field[across]).max() < 1e-6, f"{name} moves the {OTHER[side]} side"


def test_right_targets_mirror_the_left(face):
    """Each landmark pair (found on each side separately) moves mirror-wise under X-Left / X-Right."""
    pairs = sorted({name.rsplit("_", 1)[0] for name in face.landmarks if name.endswith(("_left", "_right"))})
    for name in ARKIT_NAMES:
        if sided(name) != "left":
            continue
        right = name[:-len("Left")] + "Right"
        for lm in pairs:
            left_move = face.at(name, f"{lm}_left")
            right_move = face.at(right, f"{lm}_right") * [-1, 1, 1]
            assert np.allclose(left_move, right_move, atol=0.01), (name, lm, left_move, right_move)


def _eye_is_rotated(face: Face, names: str, side: str) -> None:
    """The eyeball moves rigidly: every vertex keeps its distance from the eyeball's centre."""
    ball = np.flatnonzero(face.head.vertex_part == PARTS.index(f"eyeball_{side}"))
    centre = face.v[ball].mean(0)
    before = np.linalg.norm(face.v[ball] - centre, axis=1)
    after = np.linalg.norm(face.v[ball] + face.field(names)[ball] - centre, axis=1)
    assert np.abs(after - before).max() < 1e-6


def _jaw_rotation(face: Face, names: str) -> np.ndarray:
    """Rotation vector of the lower teeth's movement about their rest centroid's joint, fitted
    rigidly (Kabsch), checked to be rigid."""
    teeth = face.head.vertex_part == PARTS.index("teeth_lower")
    rest, moved = face.v[teeth], face.v[teeth] + face.field(names)[teeth]
    rotation, rssd = Rotation.align_vectors(moved - moved.mean(0), rest - rest.mean(0))
    assert rssd / np.sqrt(teeth.sum()) < 1e-5
    return rotation.as_rotvec()


def test_eye_targets(face):
    for side, s in (("left", 1), ("right", -1)):
        S, o = side.capitalize(), OTHER[side]
        lid_gap = lambda names: (face.v[face.landmarks[f"upper_lid_{side}"], 1]  # noqa: E731
                                 + face.field(names)[face.landmarks[f"upper_lid_{side}"], 1]
                                 - face.v[face.landmarks[f"lower_lid_{side}"], 1]
                                 - face.field(names)[face.landmarks[f"lower_lid_{side}"], 1]) * 1000
        assert lid_gap(f"eyeBlink{S}") < 1.0 < 10.0 < lid_gap(f"eyeWide{S}")         # closes the eye; rest ~13 mm
        assert np.abs(face.at(f"eyeBlink{S}", f"upper_lid_{o}")).max() < STILL_MM
        look = {"Out": (0, s), "In": (0, -s), "Up": (1, 1), "Down": (1, -1)}         # axis, sign of the pupil
        for where, (axis, sign) in look.items():
            name = f"eyeLook{where}{S}"
            _eye_is_rotated(face, name, side)
            assert sign * face.at(name, f"pupil_{side}")[axis] > 3.0, name
            assert np.abs(face.at(name, f"pupil_{o}")).max() < STILL_MM, name
        assert face.at(f"eyeLookDown{S}", f"upper_lid_{side}")[1] < -1.5               # the lid follows the gaze
        assert face.at(f"eyeLookUp{S}", f"upper_lid_{side}")[1] > 1.0
        assert face.at(f"eyeWide{S}", f"upper_lid_{side}")[1] > 3.0                    # AU5
        squint = face.at(f"eyeSquint{S}", f"lower_lid_{side}")[1]
        assert squint > 2.0 and face.at(f"eyeSquint{S}", f"upper_lid_{side}")[1] < -1.0  # the lids narrow
        assert np.abs(face.at(f"eyeSquint{S}", f"lower_lid_{o}")).max() < STILL_MM


def test_jaw_targets(face):
    open_ = _jaw_rotation(face, "jawOpen")
    assert np.allclose(open_, [JAW_OPEN, 0, 0], atol=1e-4)                          # FLAME's jaw, pitched open
    assert face.au("jawOpen")["AU26"] > 15.0                                        # chin drop, AU26
    upper = face.head.vertex_part == PARTS.index("teeth_upper")
    assert np.abs(face.field("jawOpen+jawLeft+jawForward")[upper]).max() == 0         # the skull stays
    for name, s in (("jawLeft", 1), ("jawRight", -1)):
        turn = _jaw_rotation(face, name)
        assert s * turn[1] > 0.05 and abs(turn[0]) < 1e-3 and abs(turn[2]) < 1e-3     # a turn about the vertical
        assert s * face.at(name, "chin")[0] > 4.0
    assert face.at("jawForward", "chin")[2] > 3.0 and face.at("jawForward", "lower_lip")[2] > 3.0
    assert np.abs(face.at("jawForward", "upper_lip")).max() < STILL_MM


def test_mouth_targets(face):
    def gap(names: str) -> float:  # lips' vertical opening change, mm
        return face.at(names, "upper_lip")[1] - face.at(names, "lower_lip")[1]

    assert gap("jawOpen") > 20.0 and abs(gap("jawOpen+mouthClose")) < 1.0            # lips closed whatever the jaw
    assert face.at("jawOpen+mouthClose", "chin")[1] < -15.0
    for name in ("mouthFunnel", "mouthPucker"):
        for lip in ("upper_lip", "lower_lip"):
            assert face.at(name, lip)[2] > 3.0, (name, lip)                           # lips pushed forward
        assert face.at(name, "lip_corner_left")[0] < -4.0 < 4.0 < face.at(name, "lip_corner_right")[0]  # drawn in
    assert gap("mouthFunnel") > 4.0 and gap("mouthPucker") < 0.0                       # open O; closed, pressed
    for name, s in (("mouthLeft", 1), ("mouthRight", -1)):
        for lm in ("upper_lip", "lower_lip", "lip_corner_left", "lip_corner_right"):
            assert s * face.at(name, lm)[0] > 3.0, (name, lm)
    assert face.at("mouthRollLower", "lower_lip")[2] < -2.5 and face.at("mouthRollUpper", "upper_lip")[2] < -2.5
    assert np.abs(face.at("mouthRollLower", "upper_lip")).max() < STILL_MM
    assert np.abs(face.at("mouthRollUpper", "lower_lip")).max() < STILL_MM
    assert face.at("mouthShrugLower", "lower_lip")[2] > 2.0 and face.at("mouthShrugUpper", "upper_lip")[2] > 2.0
    for side, s in (("left", 1), ("right", -1)):
        S, o = side.capitalize(), OTHER[side]
        au = face.au(f"mouthSmile{S}")
        assert au[f"AU12{S[0]}"] > 5.0 and au[f"AU12{o[0].upper()}"] < STILL_MM       # this corner up only
        assert s * face.at(f"mouthSmile{S}", f"lip_corner_{side}")[0] > 1.0            # and out
        assert face.at(f"mouthFrown{S}", f"lip_corner_{side}")[1] < -5.0
        assert face.at(f"mouthDimple{S}", f"lip_corner_{side}")[2] < -2.0              # corner backward
        assert s * face.at(f"mouthStretch{S}", f"lip_corner_{side}")[0] > 5.0          # corner toward its side
        assert face.at(f"mouthPress{S}", f"lower_lip_{side}")[1] > 0.8                 # lower lip pressed up
        assert face.at(f"mouthLowerDown{S}", f"lower_lip_{side}")[1] < -2.0
        assert face.at(f"mouthUpperUp{S}", f"upper_lip_{side}")[1] > 1.2
        for stem in ("Smile", "Frown", "Dimple", "Stretch", "Press", "LowerDown", "UpperUp"):
            for lm in (f"lip_corner_{o}", f"upper_lip_{o}", f"lower_lip_{o}"):
                assert np.abs(face.at(f"mouth{stem}{S}", lm)).max() < STILL_MM, (stem, side, lm)


def test_brow_cheek_nose_and_tongue_targets(face):
    inner = face.au("browInnerUp")
    assert inner["AU1"] > 6.0
    assert abs(face.at("browInnerUp", "brow_inner_left")[1] - face.at("browInnerUp", "brow_inner_right")[1]) < 0.01
    for side, s in (("left", 1), ("right", -1)):
        S, o = side.capitalize(), OTHER[side]
        assert face.at(f"browDown{S}", f"brow_outer_{side}")[1] < -3.0
        assert face.at(f"browDown{S}", f"brow_inner_{side}")[1] < -3.0
        assert face.at(f"browOuterUp{S}", f"brow_outer_{side}")[1] > 5.0
        assert face.at(f"cheekSquint{S}", f"cheek_{side}")[1] > 3.0                    # AU6 on this side
        assert face.at(f"noseSneer{S}", f"nose_wing_{side}")[1] > 3.0                  # AU9 on this side
        assert s * face.at("cheekPuff", f"cheek_puff_{side}")[0] > 2.0                 # both cheeks outward
        for name in (f"browDown{S}", f"browOuterUp{S}", f"cheekSquint{S}", f"noseSneer{S}"):
            for lm in (f"brow_outer_{o}", f"brow_inner_{o}", f"cheek_{o}", f"nose_wing_{o}"):
                assert np.abs(face.at(name, lm)).max() < STILL_MM, (name, lm)
    tongue = face.head.vertex_part == PARTS.index("tongue")
    tip = np.flatnonzero(tongue)[np.argmax(face.v[tongue, 2])]
    field = face.field("tongueOut")
    assert 1000 * field[tip, 2] > 15.0                                                 # extended forward…
    assert face.v[tip, 2] + field[tip, 2] > face.v[face.landmarks["upper_lip"], 2]     # …past the lips
    assert np.abs(field[~tongue]).max() == 0


# Solving the demo clip (learned driver, the demo sentence, a half smile, blinks, gaze and head
# motion) onto the targets reconstructs the mouth region (the face within 35 × 25 mm of the
# mouth's centre) to this RMS per frame, a small fraction of how far it moves.
MOUTH_ERROR_MM = 1.0
MOUTH_ERROR_MEDIAN_MM = 0.4


def test_solving_the_demo_clip_reconstructs_its_mouth(face):
    player = Player(DEMO_SOURCE.load(), backend="cpu")
    player.load_clip(ClipSource(audio=DEMO_AUDIO, duration=3.0))
    player.performance = Performance(emotions={"happy": 0.5},
                                     living=LivingLayers(blink=1.0, gaze=1.0, head_motion=1.0))
    frames = player.export_frames()
    shapes = load_arkit_shapes(DEMO_ARKIT_SHAPES, len(face.v))
    solve = solve_arkit(shapes, frames.face)
    v, part = face.v, face.head.vertex_part
    mouth = (part == PARTS.index("head")) & (v[:, 2] > 0) & (np.hypot(v[:, 0] / 0.035, (v[:, 1] - MOUTH_Y) / 0.025) < 1)
    error = 1000 * np.sqrt(((shapes.combine(solve.weights) - frames.face)[:, mouth] ** 2).sum(2).mean(1))
    motion = 1000 * np.sqrt((frames.face[:, mouth] ** 2).sum(2).mean(1))
    assert motion.max() > 8.0                                                          # the mouth does move
    assert error.max() < MOUTH_ERROR_MM and np.median(error) < MOUTH_ERROR_MEDIAN_MM
    assert np.median(error[motion > 2.0] / motion[motion > 2.0]) < 0.1
    # The weights say what moved: the jaw's opening and the blinks come back as jawOpen and eyeBlink*.
    weights = dict(zip(ARKIT_NAMES, solve.weights.T))
    jaw = np.asarray(frames.params.jaw_pose)[:, 0] / JAW_OPEN
    assert np.corrcoef(weights["jawOpen"], jaw)[0, 1] > 0.95
    lids = np.asarray(frames.params.eyelids)
    assert lids.max() > 0.5                                                            # a blink happened
    for i, side in enumerate(("Left", "Right")):
        assert np.corrcoef(weights[f"eyeBlink{side}"], lids[:, i])[0, 1] > 0.95
