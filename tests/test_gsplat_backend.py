"""gsplat (CUDA) against our CPU backend: same projection, same images. Skipped without CUDA."""
import math

import numpy as np
import pytest
import torch

from assets import DEMO_AUDIO
from avatar_app.avatar import load_demo
from avatar_app.clip import clip_from_audio
from avatar_app.player import Player
from renderer.camera import orbit_camera
from renderer.gaussians import GaussianSet
from renderer.gsplat_backend import render_gsplat
from renderer.render import render_cpu

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for gsplat")]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20))


def test_random_scene_matches_cpu():
    g = torch.Generator().manual_seed(0)
    n = 2000
    scene = GaussianSet(torch.randn(n, 3, generator=g) * 0.3, torch.randn(n, 4, generator=g),
                        torch.rand(n, 3, generator=g) * 0.05 + 0.005, torch.rand(n, generator=g),
                        torch.randn(n, 4, 3, generator=g) * 0.5)
    cam = orbit_camera(torch.zeros(3), 20, 10, 2.0, 200, 150)
    bg = torch.tensor([0.1, 0.2, 0.3])
    cpu = render_cpu(scene, cam, bg)[0].numpy()
    gpu = render_gsplat(scene.to("cuda"), cam, bg)[0].cpu().numpy()
    assert psnr(cpu, gpu) >= 45


def test_demo_clip_matches_cpu():
    players = {b: Player(load_demo(), backend=b) for b in ("cpu", "gsplat")}
    for p in players.values():
        p.view.width = p.view.height = 256
        p.clip = clip_from_audio(DEMO_AUDIO, p.driver, 30, duration=1.0)
    scores = []
    for a, b in zip(players["cpu"].render_range(0, 30, batch=10), players["gsplat"].render_range(0, 30, batch=10)):
        scores.append(psnr(a / 255.0, b / 255.0))
    print("CPU vs gsplat PSNR per frame:", [round(s, 1) for s in scores])
    assert min(scores) >= 40
