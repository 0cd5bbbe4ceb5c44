"""The action units (mm) each emotion makes on the demo head, and a contact sheet to look at.

For the demo's hand-made blendshapes and the learned model (assets/model/blendshapes.npz) it
prints the AU table (models/rig/action_units.py) of every emotion profile at intensity 0.5 and
1 (template + intensity · (expression profile · expression basis + speech profile · speech
basis), measured at the demo head's landmarks),
then renders neutral and the seven emotions at intensity 1 of each through the Player (a still
clip, the default framing, 384² per tile) into one PNG per model (`--sheet`, and the learned
model's beside it with `_learned` added), tiles row by row in the order printed.

    python benchmarks/emotion_table.py                                   # the shipped demo
    python benchmarks/emotion_table.py --demo /tmp/c_demo --sheet /tmp/c_sheet.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assets import DEMO_DIR, MODEL_DIR  # noqa: E402
from avatar_app.avatar import load_avatar  # noqa: E402
from avatar_app.clip import still_clip  # noqa: E402
from avatar_app.demo.head import build_demo_head  # noqa: E402
from avatar_app.demo.landmarks import demo_landmarks  # noqa: E402
from avatar_app.player import Player  # noqa: E402
from models.rig.action_units import ACTION_UNITS, emotion_action_units  # noqa: E402
from models.rig.blendshapes import BlendshapeModel  # noqa: E402

TILE = 384
COLUMNS = 4


def au_table(title: str, model: BlendshapeModel, landmarks: dict[str, int]) -> None:
    for intensity in (0.5, 1.0):
        readings = emotion_action_units(model, landmarks, intensity)
        print(f"\n{title}, intensity {intensity:g} (mm)")
        print(f"{'':10s}" + "".join(f"{name:>6s}" for name in ACTION_UNITS))
        for emotion, row in zip(model.emotion_names, readings):
            print(f"{emotion:10s}" + "".join(f"{value:6.1f}" for value in row))


def contact_sheet(demo: Path, blendshapes: Path, path: Path, backend: str) -> None:
    avatar = load_avatar(demo / "avatar", demo / "flame_demo.npz", blendshapes)
    player = Player(avatar, backend=backend)
    player.view.width = player.view.height = TILE
    player.clip = still_clip(1.0 / 25.0, 25.0)
    names = ("neutral", *avatar.blendshapes.emotion_names)
    tiles = []
    for name in names:
        player.set_emotions({} if name == "neutral" else {name: 1.0})
        tiles.append(player.render_frame(0))
    neutral = tiles[0].astype(np.float64)
    for name, tile in zip(names[1:], tiles[1:]):
        print(f"{name:10s} mean |Δ| against neutral: {np.abs(tile - neutral).mean():.2f} grey levels")
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % COLUMNS)
    rows = [np.concatenate(tiles[i:i + COLUMNS], 1) for i in range(0, len(tiles), COLUMNS)]
    iio.imwrite(path, np.concatenate(rows, 0))
    print(f"wrote {path}: {', '.join(names)} (row by row, {COLUMNS} per row)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=DEMO_DIR, help="a build-demo folder (default: the shipped demo)")
    parser.add_argument("--learned", type=Path, default=MODEL_DIR / "blendshapes.npz")
    parser.add_argument("--sheet", type=Path, default=Path("emotion_sheet.png"))
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    head = build_demo_head()
    landmarks = demo_landmarks(head.arrays["v_template"], head.vertex_part)
    sheets = {}
    for title, path in (("demo blendshapes", args.demo / "blendshapes.npz"), ("learned model", args.learned)):
        model = BlendshapeModel.load(path)
        if model.template.shape != head.arrays["v_template"].shape:
            print(f"\n{title}: {path} has {len(model.template)} vertices, the demo head "
                  f"{len(head.arrays['v_template'])}: rebuild or retrain it")
            continue
        au_table(f"{title} ({path})", model, landmarks)
        sheets[path] = args.sheet if not sheets else args.sheet.with_stem(args.sheet.stem + "_learned")
    for path, sheet in sheets.items():
        print(f"\n{path}:")
        contact_sheet(args.demo, path, sheet, args.backend)


if __name__ == "__main__":
    main()
