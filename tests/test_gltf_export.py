"""The .glb export against outside tools: Khronos' glTF validator (npm `gltf-validator`), pygltflib as
the reader, and skinning written here from the glTF 2.0 specification (§3.6.2.4 accessors incl. sparse,
§3.7.3 morph targets, §3.7.4 skins, §3.11 animations), which must give the player's posed vertices."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from assets import DEMO_AUDIO, DEMO_FLAME
from avatar_app.avatar import load_demo
from avatar_app.clip import ClipSource
from avatar_app.exports.gltf import write_glb
from avatar_app.player import Player
from common.errors import InputError
from models.rig.flame import FlameParams, FlameRig, load_flame
from models.rig.living import LivingLayers

FPS = 25.0
TOLERANCE_M = 1e-4
VALIDATOR_DIR = Path.home() / ".cache" / "avatar-tests" / "gltf-validator"
COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


# --- a reader and a skinning from the specification ----------------------------------------

def _read(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """Accessor `index` as (count, width) values, sparse substitution applied (spec §3.6.2.4)."""
    acc = gltf.accessors[index]
    dtype, width = np.dtype(COMPONENTS[acc.componentType]), WIDTHS[acc.type]

    def rows(view_index: int, offset: int, count: int, kind: np.dtype, per: int) -> np.ndarray:
        view = gltf.bufferViews[view_index]
        stride = view.byteStride or kind.itemsize * per
        start = (view.byteOffset or 0) + offset
        return np.stack([np.frombuffer(blob, kind, per, start + i * stride) for i in range(count)]) if view.byteStride \
            else np.frombuffer(blob, kind, count * per, start).reshape(count, per)

    values = (rows(acc.bufferView, acc.byteOffset or 0, acc.count, dtype, width) if acc.bufferView is not None
              else np.zeros((acc.count, width), dtype)).copy()
    if acc.sparse is not None:
        sparse = acc.sparse
        where = rows(sparse.indices.bufferView, sparse.indices.byteOffset or 0, sparse.count,
                     np.dtype(COMPONENTS[sparse.indices.componentType]), 1)[:, 0]
        values[where] = rows(sparse.values.bufferView, sparse.values.byteOffset or 0, sparse.count, dtype, width)
    return values


def _quaternion_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


class GlbScene:
    """A .glb read with pygltflib, posed at keyframes by this file's own skinning."""

    def __init__(self, path: Path) -> None:
        self.gltf = pygltflib.GLTF2().load_binary(str(path))
        self.blob = self.gltf.binary_blob()
        self.mesh_node = next(i for i, n in enumerate(self.gltf.nodes) if n.mesh is not None)
        node = self.gltf.nodes[self.mesh_node]
        self.primitive = self.gltf.meshes[node.mesh].primitives[0]
        self.skin = self.gltf.skins[node.skin]
        self.animation = self.gltf.animations[0]

    def read(self, index: int) -> np.ndarray:
        return _read(self.gltf, self.blob, index).astype(np.float64)

    @property
    def target_names(self) -> list[str]:
        return self.gltf.meshes[self.gltf.nodes[self.mesh_node].mesh].extras["targetNames"]

    def times(self) -> np.ndarray:
        return self.read(self.animation.samplers[0].input)[:, 0]

    def channel(self, node: int, path: str, frame: int) -> np.ndarray | None:
        """The sampled value of (node, path) at keyframe `frame` (LINEAR sampler: its output there)."""
        for channel in self.animation.channels:
            if channel.target.node == node and channel.target.path == path:
                sampler = self.animation.samplers[channel.sampler]
                output = self.read(sampler.output)
                per_key = output.size // len(self.read(sampler.input))
                return output.reshape(-1)[frame * per_key:(frame + 1) * per_key]
        return None

    def _local(self, index: int, frame: int) -> np.ndarray:
        node = self.gltf.nodes[index]
        if node.matrix is not None:
            return np.array(node.matrix, np.float64).reshape(4, 4).T
        t = self.channel(index, "translation", frame)
        r = self.channel(index, "rotation", frame)
        s = self.channel(index, "scale", frame)
        m = np.eye(4)
        m[:3, :3] = _quaternion_matrix(r if r is not None else np.array(node.rotation or [0, 0, 0, 1.0])) * (
            s if s is not None else np.array(node.scale or [1.0, 1, 1]))
        m[:3, 3] = t if t is not None else np.array(node.translation or [0.0, 0, 0])
        return m

    def _world(self, frame: int) -> dict[int, np.ndarray]:
        world = {}

        def visit(index: int, parent: np.ndarray) -> None:
            world[index] = parent @ self._local(index, frame)
            for child in self.gltf.nodes[index].children or []:
                visit(child, world[index])

        for root in self.gltf.scenes[self.gltf.scene].nodes:
            visit(root, np.eye(4))
        return world

    def posed(self, frame: int) -> np.ndarray:
        """Vertices at keyframe `frame`: morph (base + Σ w·target), then skin (Σ weight · jointMatrix)."""
        attributes = self.primitive.attributes
        vertices = self.read(attributes.POSITION)
        weights = self.channel(self.mesh_node, "weights", frame)
        for w, target in zip(weights, self.primitive.targets or []):
            vertices = vertices + w * self.read(target["POSITION"])
        world = self._world(frame)
        inverse_binds = self.read(self.skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        mesh_inverse = np.linalg.inv(world[self.mesh_node])
        matrices = np.stack([mesh_inverse @ world[j] @ ib for j, ib in zip(self.skin.joints, inverse_binds)])
        homogeneous = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
        skin = np.zeros((len(vertices), 4, 4))
        for n in range(4):
            joints, influence = getattr(attributes, f"JOINTS_{n}", None), getattr(attributes, f"WEIGHTS_{n}", None)
            if joints is None:
                break
            skin += np.einsum("vk,vkab->vab", self.read(influence), matrices[self.read(joints).astype(int)])
        return np.einsum("vab,vb->va", skin, homogeneous)[:, :3]


# --- the clips -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_clip():
    """The demo head speaking, happy, with blinks, gaze and head motion: what the player exports."""
    player = Player(load_demo(), backend="cpu")
    player.load_clip(ClipSource(audio=DEMO_AUDIO, duration=4.0), FPS)
    player.set_emotions({"happy": 0.5})
    player.set_living(LivingLayers(1, 1, 1, seed=0))
    return player, player.export_frames()


def _moves(params: FlameParams) -> None:
    """The clip exercises what the export must carry (else the comparison proves little)."""
    assert np.ptp(params.jaw_pose[:, 0]) > 0.05
    assert np.abs(params.neck_pose).max() > 0.02 and np.abs(params.eyes_pose).max() > 0.02
    assert params.eyelids.max() > 0.5


def test_glb_reimports_to_the_players_vertices(demo_clip, tmp_path):
    player, frames = demo_clip
    params, weights = frames.params, (frames.speech, frames.expression)
    _moves(params)
    path = tmp_path / "clip.glb"
    summary = write_glb(path, player.rig, params, frames.fps, player.avatar.blendshapes, weights)
    scene = GlbScene(path)
    names = scene.target_names
    bs = player.avatar.blendshapes
    assert names[:len(bs.speech_names) + len(bs.expression_names)] == [*bs.speech_names, *bs.expression_names]
    assert {"eyelid_left", "eyelid_right"} <= set(names) and summary.morph_targets == len(names)
    assert np.allclose(scene.times(), np.arange(params.num_frames) / FPS, atol=1e-6)
    expected = frames.vertices
    sampled = [*np.linspace(0, params.num_frames - 1, 6).astype(int), int(np.argmax(params.eyelids.max(axis=1))),
               int(np.argmax(params.jaw_pose[:, 0])), int(np.argmax(np.abs(params.eyes_pose).max(axis=1)))]
    for frame in sampled:
        assert np.abs(scene.posed(frame) - expected[frame]).max() < TOLERANCE_M, frame
    # named weights are the player's (gains applied), frame by frame
    first = scene.channel(scene.mesh_node, "weights", 10)[:weights[0].shape[1] + weights[1].shape[1]]
    assert np.allclose(first, np.concatenate([weights[0][10], weights[1][10]]), atol=1e-6)


def test_pose_correctives_and_motion_expression_are_exact(demo_clip, tmp_path):
    """A FLAME with pose correctives and joints that move with the expression, a global rotation and
    translation, expression beyond the blendshapes (a motion file's) and no blendshape model: FLAME's
    own components carry it."""
    params = demo_clip[1].params
    arrays = load_flame(DEMO_FLAME)
    rng = np.random.default_rng(1)
    correctives = 1e-3 * rng.standard_normal(arrays.posedirs.shape).astype(np.float32)
    # joints regressed partly from the vertices the expression moves most, so they move with it (as smplx's do)
    mobile = np.argsort(np.abs(arrays.shapedirs[:, :, arrays.n_shape:]).sum(axis=(1, 2)))[-50:]
    regressor = 0.7 * arrays.J_regressor
    regressor[:, mobile] += 0.3 / len(mobile)
    twin = FlameRig(dataclasses.replace(arrays, posedirs=correctives, J_regressor=regressor), params.shape,
                    params.static_offset)
    own = np.random.default_rng(2).normal(0, 0.5, (params.num_frames, 100)).astype(np.float32)
    t = np.arange(params.num_frames)[:, None] / FPS
    moved = dataclasses.replace(params, expr=params.expr + own,
                                rotation=(0.25 * np.sin(2 * t + np.array([0.0, 1, 2]))).astype(np.float32),
                                translation=(0.02 * np.cos(3 * t + np.array([0.0, 1, 2]))).astype(np.float32))
    path = tmp_path / "plain.glb"
    write_glb(path, twin, moved, FPS)
    scene = GlbScene(path)
    assert any(n.startswith("pose_jaw_") for n in scene.target_names)
    assert any(n.startswith("flame_expr_") for n in scene.target_names)
    expected = twin(moved).numpy()
    shift = np.einsum("jv,vcn,tn->tjc", regressor, arrays.shapedirs[:, :, arrays.n_shape:], moved.expr)
    assert np.abs(shift).max() > 10 * TOLERANCE_M  # the joints do move
    for frame in (0, int(np.argmax(params.eyelids.max(axis=1))), params.num_frames - 1):
        assert np.abs(scene.posed(frame) - expected[frame]).max() < TOLERANCE_M


def test_bad_export_arguments(demo_clip, tmp_path):
    player, frames = demo_clip
    params = frames.params
    with pytest.raises(InputError, match="frame rate"):
        write_glb(tmp_path / "a.glb", player.rig, params, 0.0)
    with pytest.raises(InputError, match="both"):
        write_glb(tmp_path / "a.glb", player.rig, params, FPS, player.avatar.blendshapes)
    with pytest.raises(InputError, match="speech weights have shape"):
        write_glb(tmp_path / "a.glb", player.rig, params, FPS, player.avatar.blendshapes,
                  (frames.speech[:, :-1], frames.expression))
    with pytest.raises(InputError, match="no frames"):
        write_glb(tmp_path / "a.glb", player.rig, params.slice(0, 0), FPS)
    assert not (tmp_path / "a.glb").exists()


# --- Khronos' validator ------------------------------------------------------------------------

def _validator() -> Path:
    """The gltf-validator package installed (once) under ~/.cache; skips without node and npm."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to run Khronos' glTF validator")
    module = VALIDATOR_DIR / "node_modules" / "gltf-validator"
    if not module.is_dir():
        VALIDATOR_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-save", "--prefix", str(VALIDATOR_DIR), "gltf-validator"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"npm could not install gltf-validator: {done.stderr.strip()[-300:]}")
    return VALIDATOR_DIR


def test_khronos_validator_reports_no_issue(demo_clip, tmp_path):
    folder = _validator()
    player, frames = demo_clip
    path = tmp_path / "clip.glb"
    write_glb(path, player.rig, frames.params, frames.fps, player.avatar.blendshapes, (frames.speech, frames.expression))
    script = ("const v = require('gltf-validator'); const fs = require('fs');"
              "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])))"
              ".then(r => console.log(JSON.stringify(r))).catch(e => { console.error(e); process.exit(1); });")
    done = subprocess.run(["node", "-e", script, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=folder, env={"NODE_PATH": str(folder / "node_modules"), "PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    issues = report["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
    assert report["info"]["animationCount"] == 1 and report["info"]["hasSkins"] and report["info"]["hasMorphTargets"]
