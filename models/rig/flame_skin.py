"""FLAME as a skinned mesh with morph targets, exact per frame: what a glTF export animates.

smplx's LBS (`FlameRig.forward`) is not quite a plain skinned mesh: its joints move with the
expression (they are regressed from the expressed template), pose correctives are added before
skinning, and VHAP's eyelid shapes are added after it, unrotated. `skinned_clip` turns one clip
into a rest mesh, morph targets, one rotation and translation per joint per frame and one weight per
target per frame such that standard linear blend skinning (the glTF 2.0 one: morph, then
Σ w_j · joint_world_j · inverse_bind_j) gives FlameRig's vertices:

- joint rotations are the clip's own local FLAME rotations; joint translations are animated, the
  world position of joint j set to p_j − R_j (J_j(t) − J_j(rest)), which makes the fixed inverse
  bind matrices (at the rest joints) act as smplx's per-frame ones (equal to p_j when the
  expression is neutral);
- pose correctives are targets `pose_<joint>_<ab>` weighted by (R_local − I)[a, b], smplx's pose feature;
- eyelid shapes are targets `eyelid_left`/`eyelid_right` weighted by the closure, plus correctives
  `eyelid_<side>_<joint>_<ab>` weighted by closure · (R_world − I)[b, a] of the joint that carries
  the eyelid's vertices, undoing that joint's rotation (exact where each such vertex follows one
  joint, as in FLAME and the demo head; otherwise its heaviest joint);
- named blendshapes are targets with the FLAME-expression part of their mapping (their jaw part
  is in the jaw's rotation); what the clip's expression holds beyond them (motion files, the
  expression-space clamp) is in FLAME's own expression components `flame_expr_<n>`.

Targets other than the named blendshapes and eyelids are kept only where they move some vertex
by more than DROP_M in some frame, so a file holds only what the clip uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from common.errors import InputError
from models.rig.blendshapes import FLAME_EXPR, BlendshapeModel
from models.rig.flame import FlameParams, FlameRig, _to_numpy

JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")  # FLAME's 5 joints, kintree order
SIDES = ("left", "right")  # FlameParams.eyelids columns
DROP_M = 1e-7  # a target whose largest displacement × |weight| stays below this is left out


@dataclass
class SkinnedClip:
    """One clip of a FlameRig as a skinned, morphing mesh (float32 unless said)."""

    rest_vertices: np.ndarray  # (V, 3) template + static offset + shape: the bind pose
    faces: np.ndarray  # (F, 3) int64
    parents: tuple[int, ...]  # per joint, -1 at the root
    rest_joints: np.ndarray  # (J, 3) joint positions in the bind pose
    skin_weights: np.ndarray  # (V, J), each row summing to 1
    target_names: tuple[str, ...]
    targets: np.ndarray  # (N, V, 3) displacements
    target_weights: np.ndarray  # (T, N)
    rotations: np.ndarray  # (T, J, 4) local joint rotations, quaternions x y z w
    translations: np.ndarray  # (T, J, 3) local joint translations (the root's in world space)

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]


def _numpy(value: object) -> np.ndarray:
    return _to_numpy(value).astype(np.float64)


def _named_shapes(rig: FlameRig, blendshapes: BlendshapeModel | None,
                  weights: tuple[np.ndarray, np.ndarray] | None, frames: int
                  ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Names, FLAME-expression coefficients per unit weight (K, n_expr) and weights (T, K) of the
    blendshape model's speech then expression shapes (none without a model)."""
    if (blendshapes is None) != (weights is None):
        raise InputError("glTF export: named blendshapes need both the blendshape model and its weights")
    n_expr = rig.n_expr
    if blendshapes is None:
        return (), np.zeros((0, n_expr)), np.zeros((frames, 0))
    groups = (blendshapes.speech_names, blendshapes.expression_names)
    for kind, group, values in zip(("speech", "expression"), groups, weights):
        if np.shape(values) != (frames, len(group)):
            raise InputError(f"glTF export: {kind} weights have shape {np.shape(values)}, expected ({frames}, "
                             f"{len(group)}) for {frames} frames of the blendshape model's {kind} shapes")
    mapping = np.concatenate([blendshapes.speech_to_flame, blendshapes.expression_to_flame]).astype(np.float64)
    values = np.concatenate([np.asarray(w, np.float64) for w in weights], axis=1)
    return groups[0] + groups[1], _fit_columns_np(mapping[:, :FLAME_EXPR], n_expr), values


def _fit_columns_np(values: np.ndarray, columns: int) -> np.ndarray:
    """Truncated or zero-padded to `columns` columns, as FlameRig fits the expression to its model."""
    return np.pad(values[:, :columns], ((0, 0), (0, max(0, columns - values.shape[1]))))


def _kept(displacements: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Which of N targets (N, V, 3) with weights (T, N) move some vertex by more than DROP_M."""
    if len(displacements) == 0:
        return np.zeros(0, bool)
    reach = np.linalg.norm(displacements, axis=2).max(axis=1)
    peak = np.abs(weights).max(axis=0) if len(weights) else np.zeros(len(displacements))
    return reach * peak > DROP_M


def _eyelid_groups(rig: FlameRig, closure: np.ndarray, world: np.ndarray) -> list[tuple]:
    """VHAP's eyelid shapes (added after LBS, so unrotated) as targets: each side's shape weighted by
    its closure, and correctives that undo the rotation of the joint carrying each moved vertex:
    component a of target (side, joint, a, b) is the shape's component b, weighted by
    closure · (R_world − I)[b, a], so that Σ = R_worldᵀ · closure · shape before skinning."""
    lids = _numpy(rig.eyelids)  # (V, 3, 2)
    carrier = np.argmax(_numpy(rig.lbs_weights), axis=1)
    moved = np.abs(lids).sum(axis=(1, 2)) > 0
    eye = np.eye(3)
    names, shapes, weights = [], [], []
    for k, side in enumerate(SIDES):
        for j in np.unique(carrier[moved]):
            for a in range(3):
                for b in range(3):
                    shape = np.zeros((len(lids), 3))
                    shape[:, a] = np.where(carrier == j, lids[:, b, k], 0.0)
                    names.append(f"eyelid_{side}_{JOINT_NAMES[j]}_{a}{b}")
                    shapes.append(shape)
                    weights.append(closure[:, k] * (world[:, j, b, a] - eye[b, a]))
    main = ([f"eyelid_{side}" for side in SIDES], np.moveaxis(lids, 2, 0), closure, True)
    if not names:
        return [main]
    return [main, (names, np.stack(shapes), np.stack(weights, axis=1), False)]


def skinned_clip(rig: FlameRig, params: FlameParams, blendshapes: BlendshapeModel | None = None,
                 weights: tuple[np.ndarray, np.ndarray] | None = None) -> SkinnedClip:
    """The clip `params` of `rig` (as FlameRig.forward poses it) as a skinned mesh with morph
    targets; `blendshapes` with their per-frame `weights` (speech, expression) name targets."""
    frames, num_joints = params.num_frames, len(JOINT_NAMES)
    parents = tuple(int(p) for p in rig.parents.cpu().numpy())
    template = _numpy(rig.v_template)
    shapedirs = _numpy(rig.shapedirs)
    n_shape = rig.betas.shape[1]
    rest = template + shapedirs[:, :, :n_shape] @ _numpy(rig.betas)[0]
    expr_dirs = shapedirs[:, :, n_shape:]
    regressor = _numpy(rig.J_regressor)
    rest_joints = regressor @ rest
    expr = _fit_columns_np(_numpy(params.expr), rig.n_expr)

    # Joints: local rotations, world rotations and the positions that make fixed bind matrices exact.
    pose = np.concatenate([_numpy(getattr(params, key)) for key in ("rotation", "neck_pose", "jaw_pose", "eyes_pose")],
                          axis=1).reshape(frames, num_joints, 3)
    local = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(frames, num_joints, 3, 3)
    # smplx regresses the joints from the expressed template: (T, J, 3)
    joints = rest_joints + np.einsum("jcn,tn->tjc", np.einsum("jv,vcn->jcn", regressor, expr_dirs), expr)
    world = np.empty_like(local)
    position = np.empty((frames, num_joints, 3))
    for j, parent in enumerate(parents):
        if parent < 0:
            world[:, j] = local[:, j]
            position[:, j] = joints[:, j] + _numpy(params.translation)
        else:
            world[:, j] = world[:, parent] @ local[:, j]
            offset = joints[:, j] - joints[:, parent]
            position[:, j] = position[:, parent] + np.einsum("tab,tb->ta", world[:, parent], offset)
    node = position - np.einsum("tjab,tjb->tja", world, joints - rest_joints)  # glTF joint world positions
    translations = np.empty_like(node)
    for j, parent in enumerate(parents):
        translations[:, j] = node[:, j] if parent < 0 else np.einsum(
            "tba,tb->ta", world[:, parent], node[:, j] - node[:, parent])
    quaternions = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_quat().reshape(frames, num_joints, 4)
    flips = np.cumprod(np.where(np.sum(quaternions[1:] * quaternions[:-1], axis=2) < 0, -1.0, 1.0), axis=0)
    quaternions[1:] *= flips[..., None]  # each frame's sign nearest the last: interpolation takes the short way

    groups: list[tuple] = []  # (names, displacements (N, V, 3), weights (T, N), always kept)

    names, coefficients, named_weights = _named_shapes(rig, blendshapes, weights, frames)
    groups.append((names, np.einsum("vcn,kn->kvc", expr_dirs, coefficients), named_weights, True))
    residual = expr - named_weights @ coefficients
    groups.append(([f"flame_expr_{n:03d}" for n in range(rig.n_expr)], np.moveaxis(expr_dirs, 2, 0), residual, False))

    posedirs = _numpy(rig.posedirs).reshape(-1, rig.num_vertices, 3)  # (9 (J-1), V, 3)
    feature = (local[:, 1:] - np.eye(3)).reshape(frames, -1)
    groups.append(([f"pose_{JOINT_NAMES[1 + i // 9]}_{i % 9 // 3}{i % 3}" for i in range(len(posedirs))],
                   posedirs, feature, False))

    if rig.eyelids is not None:
        groups += _eyelid_groups(rig, _numpy(params.eyelids), world)
    target_names, targets, target_weights = [], [], []
    for group_names, displacements, group_weights, always in groups:
        keep = np.ones(len(group_names), bool) if always else _kept(displacements, group_weights)
        target_names += [name for name, k in zip(group_names, keep) if k]
        targets.append(displacements[keep])
        target_weights.append(group_weights[:, keep])
    skin = _numpy(rig.lbs_weights)
    return SkinnedClip(
        rest_vertices=rest.astype(np.float32),
        faces=rig.faces.cpu().numpy().astype(np.int64),
        parents=parents,
        rest_joints=rest_joints.astype(np.float32),
        skin_weights=(skin / skin.sum(axis=1, keepdims=True)).astype(np.float32),
        target_names=tuple(target_names),
        targets=np.concatenate(targets).astype(np.float32),
        target_weights=np.concatenate(target_weights, axis=1).astype(np.float32),
        rotations=quaternions.astype(np.float32),
        translations=translations.astype(np.float32),
    )
