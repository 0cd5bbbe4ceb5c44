"""A clip as glTF 2.0 binary (.glb): FLAME's mesh, skinned and morphing, animated at the clip's rate.

What the file holds (the choice: a skeleton for the rotations, morph targets for the rest, exact):
- one mesh, the avatar's FLAME in its bind pose (template + static offset + shape, metres, +Y up as
  FLAME and glTF both are), with morph targets named in `mesh.extras.targetNames` (the convention
  Blender and three.js read): the blendshape model's speech and expression shapes, then the eyelids,
  then correctives only where the clip needs them (`models/rig/flame_skin.py` says which and why);
- a skin on FLAME's five joints (root, neck, jaw, left_eye, right_eye) with FLAME's LBS weights;
- one animation, "clip": per frame (keyframes at i / fps, linear), the morph weights of the mesh
  and each joint's rotation and translation (head = root ∘ neck, the jaw, each eye).
Standard skinning of it gives the player's posed vertices (FlameRig.forward) at every frame. Sparse
accessors keep targets that move few vertices small. No normals: viewers derive them. The material is
double-sided: FLAME-like meshes do not all wind their triangles outward (the demo head winds them
inward), and a one-sided material would show such a head from the inside.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import atomic_write
from common.errors import InputError
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import FlameParams, FlameRig
from models.rig.flame_skin import JOINT_NAMES, SkinnedClip, skinned_clip

FLOAT, UNSIGNED_BYTE, UNSIGNED_INT = 5126, 5121, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = b"glTF", 0x4E4F534A, 0x004E4942
_SPARSE_SHARE = 0.3  # a target moving fewer than this share of the vertices is stored sparse
_SKIN_COLOUR = [0.80, 0.62, 0.52, 1.0]


@dataclass
class GlbSummary:
    """What a written .glb holds."""

    frames: int
    morph_targets: int
    joints: int
    bytes: int


class _Builder:
    """Accumulates the binary chunk and the JSON's bufferViews and accessors."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: np.ndarray, target: int | None = None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        raw = np.ascontiguousarray(data).tobytes()
        entry = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(raw)}
        if target is not None:
            entry["target"] = target
        self.blob += raw
        self.views.append(entry)
        return len(self.views) - 1

    def accessor(self, data: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        """An accessor over a new view of `data` (rows of `kind`: SCALAR, VEC3, MAT4...)."""
        component = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UNSIGNED_BYTE,
                     np.dtype(np.uint32): UNSIGNED_INT}[data.dtype]
        entry = {"bufferView": self.view(data, target), "componentType": component,
                 "count": int(data.shape[0]), "type": kind}
        if bounds:
            entry.update(_bounds(data))
        self.accessors.append(entry)
        return len(self.accessors) - 1

    def target(self, displacement: np.ndarray) -> int:
        """A morph target's POSITION accessor: sparse (zeros but for the listed vertices) when few move."""
        moved = np.flatnonzero(np.any(displacement != 0, axis=1)).astype(np.uint32)
        if len(moved) >= _SPARSE_SHARE * len(displacement):
            return self.accessor(displacement, "VEC3", ARRAY_BUFFER, bounds=True)
        entry = {"componentType": FLOAT, "count": len(displacement), "type": "VEC3", **_bounds(displacement)}
        if len(moved):
            entry["sparse"] = {"count": len(moved),
                               "indices": {"bufferView": self.view(moved), "componentType": UNSIGNED_INT},
                               "values": {"bufferView": self.view(displacement[moved])}}
        self.accessors.append(entry)
        return len(self.accessors) - 1


def _bounds(data: np.ndarray) -> dict:
    rows = data.reshape(len(data), -1)
    return {"min": rows.min(axis=0).tolist(), "max": rows.max(axis=0).tolist()}


def _joint_sets(weights: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(JOINTS_n uint8, WEIGHTS_n float32) sets of four: each vertex's joints by falling weight,
    unused slots weight 0."""
    order = np.argsort(-weights, axis=1, kind="stable")
    used = int((weights > 0).sum(axis=1).max())
    sets = []
    for first in range(0, max(used, 1), 4):
        joints = np.zeros((len(weights), 4), np.uint8)
        values = np.zeros((len(weights), 4), np.float32)
        width = min(4, weights.shape[1] - first)
        joints[:, :width] = order[:, first:first + width]
        values[:, :width] = np.take_along_axis(weights, order[:, first:first + width], axis=1)
        joints[values == 0] = 0
        sets.append((joints, values))
    return sets


def _inverse_binds(rest_joints: np.ndarray) -> np.ndarray:
    """(J, 16) column-major matrices: translation by −rest joint."""
    matrices = np.tile(np.eye(4, dtype=np.float32), (len(rest_joints), 1, 1))
    matrices[:, :3, 3] = -rest_joints
    return matrices.transpose(0, 2, 1).reshape(len(rest_joints), 16)


def gltf_document(clip: SkinnedClip, fps: float) -> tuple[dict, bytes]:
    """The glTF JSON and its binary buffer for `clip` played at `fps`."""
    b = _Builder()
    num_joints = len(clip.parents)
    attributes = {"POSITION": b.accessor(clip.rest_vertices, "VEC3", ARRAY_BUFFER, bounds=True)}
    for n, (joints, values) in enumerate(_joint_sets(clip.skin_weights)):
        attributes[f"JOINTS_{n}"] = b.accessor(joints, "VEC4", ARRAY_BUFFER)
        attributes[f"WEIGHTS_{n}"] = b.accessor(values, "VEC4", ARRAY_BUFFER)
    indices = b.accessor(clip.faces.astype(np.uint32).reshape(-1), "SCALAR", ELEMENT_ARRAY_BUFFER)
    targets = [{"POSITION": b.target(t)} for t in clip.targets]
    primitive = {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}
    mesh = {"name": "flame", "primitives": [primitive], "extras": {"targetNames": list(clip.target_names)}}
    if targets:
        primitive["targets"] = targets
        mesh["weights"] = [0.0] * len(targets)

    # Nodes: 0 the mesh (at the scene root, untransformed, as skinned meshes must be), 1.. the joints.
    rest_local = [clip.rest_joints[j] - (clip.rest_joints[p] if p >= 0 else 0) for j, p in enumerate(clip.parents)]
    nodes = [{"name": "flame", "mesh": 0, "skin": 0}]
    for j, parent in enumerate(clip.parents):
        node = {"name": JOINT_NAMES[j], "translation": rest_local[j].astype(float).tolist()}
        children = [1 + c for c, p in enumerate(clip.parents) if p == j]
        if children:
            node["children"] = children
        nodes.append(node)
    roots = [1 + j for j, p in enumerate(clip.parents) if p < 0]
    skin = {"joints": [1 + j for j in range(num_joints)], "skeleton": roots[0],
            "inverseBindMatrices": b.accessor(_inverse_binds(clip.rest_joints), "MAT4")}

    times = b.accessor((np.arange(clip.num_frames) / fps).astype(np.float32), "SCALAR", bounds=True)
    samplers, channels = [], []

    def animate(node: int, path: str, values: np.ndarray, kind: str) -> None:
        samplers.append({"input": times, "output": b.accessor(values.astype(np.float32), kind),
                         "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})

    if targets:
        animate(0, "weights", clip.target_weights.reshape(-1), "SCALAR")
    for j in range(num_joints):
        animate(1 + j, "rotation", clip.rotations[:, j], "VEC4")
        animate(1 + j, "translation", clip.translations[:, j], "VEC3")

    document = {
        "asset": {"version": "2.0", "generator": "talking-head-studio glTF export"},
        "scene": 0,
        "scenes": [{"nodes": [0, *roots]}],
        "nodes": nodes,
        "meshes": [mesh],
        "skins": [skin],
        "materials": [{"name": "skin", "pbrMetallicRoughness": {
            "baseColorFactor": _SKIN_COLOUR, "metallicFactor": 0.0, "roughnessFactor": 0.7}, "doubleSided": True}],
        "animations": [{"name": "clip", "samplers": samplers, "channels": channels,
                        "extras": {"fps": float(fps)}}],
        "accessors": b.accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": len(b.blob)}],
    }
    return document, bytes(b.blob)


def glb_bytes(document: dict, blob: bytes) -> bytes:
    """The binary glTF container: 12-byte header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join([_GLB_MAGIC, struct.pack("<II", 2, total), struct.pack("<II", len(text), _JSON_CHUNK), text,
                     struct.pack("<II", len(blob), _BIN_CHUNK), blob])


def write_glb(path: str | Path, rig: FlameRig, params: FlameParams, fps: float,
              blendshapes: BlendshapeModel | None = None,
              weights: tuple[np.ndarray, np.ndarray] | None = None) -> GlbSummary:
    """Write the clip `params` of `rig` (as the Player poses it) to `path` as .glb, atomically.
    `blendshapes` with the clip's (speech, expression) `weights` (gains applied, as Player.weights
    gives them) become named morph targets; without them only FLAME's own components are."""
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"{path}: frame rate {fps} must be a positive number")
    if params.num_frames < 1:
        raise InputError(f"{path}: the clip has no frames to export")
    clip = skinned_clip(rig, params, blendshapes, weights)
    data = glb_bytes(*gltf_document(clip, fps))
    atomic_write(Path(path), lambda handle: handle.write(data))
    return GlbSummary(frames=clip.num_frames, morph_targets=len(clip.target_names), joints=len(clip.parents),
                      bytes=len(data))
