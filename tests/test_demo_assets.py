"""The embedded demo: the generator reproduces the committed files, and the clip is usable."""
import shutil

import numpy as np
import pytest
import torch

from assets import DEMO_AUDIO, DEMO_AVATAR, DEMO_BLENDSHAPES, DEMO_DIR, DEMO_FLAME
from avatar_app.cli import main
from avatar_app.demo.build import DEMO_SENTENCE, synthesize_speech
from avatar_app.demo.head import REGIONS, build_demo_head, surface_regions
from models.audio.sources import load_wav
from models.drivers.contract import neutral_speech
from models.drivers.signal import SignalSpeechDriver
from models.rig.blendshapes import BlendshapeModel
from models.rig.flame import FlameRig, load_flame
from models.rig.mapping import rig_forward
from renderer.ply import read_ply


def packaged() -> dict[str, bytes]:
    return {str(p.relative_to(DEMO_DIR)): p.read_bytes() for p in sorted(DEMO_DIR.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """`avatar build-demo --out DIR --no-speech` (the speech is checked on its own below)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    before = packaged()
    assert main(["build-demo", "--out", str(out), "--no-speech"]) == 0
    assert packaged() == before  # the packaged demo is written only with --in-place
    return out


def test_build_demo_needs_a_folder_and_keeps_what_is_not_its_own(tmp_path, capsys, rebuilt):
    for argv in ([], ["--out", str(tmp_path), "--in-place"]):
        with pytest.raises(SystemExit) as stop:
            main(["build-demo", *argv])
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "one of the arguments --out --in-place is required" in err and "not allowed with argument" in err
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["build-demo", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"avatar: error: {tmp_path}") and (tmp_path / "notes.txt").is_file()
    assert not (tmp_path / "flame_demo.npz").exists()
    assert (rebuilt / "speech.wav").read_bytes() == DEMO_AUDIO.read_bytes()  # --no-speech: the packaged one


def test_generator_reproduces_flame_and_avatar(rebuilt):
    committed, fresh = np.load(DEMO_FLAME), np.load(rebuilt / DEMO_FLAME.name)
    assert set(committed.files) == set(fresh.files)
    for key in committed.files:
        np.testing.assert_allclose(fresh[key], committed[key], atol=1e-6, err_msg=key)
    a, b = read_ply(DEMO_AVATAR / "point_cloud.ply"), read_ply(rebuilt / "avatar" / "point_cloud.ply")
    assert len(a) == len(b) and np.array_equal(a.binding.numpy(), b.binding.numpy())
    for key in ("means", "quats", "scales", "opacities", "sh"):
        np.testing.assert_allclose(getattr(b, key).numpy(), getattr(a, key).numpy(), atol=1e-5, err_msg=key)
    assert (DEMO_AVATAR / "flame_param.npz").is_file()


def flame_motion(forward, coeffs: np.ndarray) -> np.ndarray:
    """(K, V, 3) metres: what each blendshape's FLAME mapping does to the head."""
    params = torch.from_numpy(coeffs)
    with torch.no_grad():
        return (forward(params[:, :100], params[:, 100:]) - forward(torch.zeros(1, 100), torch.zeros(1, 3))).numpy()


def test_generator_reproduces_blendshapes(rebuilt):
    a, b = BlendshapeModel.load(DEMO_BLENDSHAPES), BlendshapeModel.load(rebuilt / DEMO_BLENDSHAPES.name)
    assert (a.speech_names, a.expression_names, a.emotion_names) == (b.speech_names, b.expression_names, b.emotion_names)
    for key in ("speech_basis", "expression_basis", "emotion_profiles"):
        np.testing.assert_allclose(getattr(b, key), getattr(a, key), atol=1e-5, err_msg=key)
    # the mappings must move the demo head alike: 1e-7 m is a few float32 steps of head-sized
    # coordinates, and 30x below the smallest effect of changing any coefficient by 1 % (3e-6 m)
    forward = rig_forward(FlameRig(load_flame(DEMO_FLAME)))
    for key in ("speech_to_flame", "expression_to_flame"):
        np.testing.assert_allclose(flame_motion(forward, getattr(b, key)), flame_motion(forward, getattr(a, key)),
                                   atol=1e-7, rtol=0, err_msg=key)
    assert set(a.emotion_names) == {"happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt"}
    assert max(a.speech_mapping_error.max(), a.expression_mapping_error.max()) < 1e-5   # metres


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng speaks the demo sentence")
def test_generator_reproduces_speech(tmp_path):
    synthesize_speech(DEMO_SENTENCE, tmp_path / "speech.wav")
    a, b = load_wav(DEMO_AUDIO), load_wav(tmp_path / "speech.wav")
    assert a.sample_rate == b.sample_rate and np.array_equal(a.samples, b.samples)


def test_demo_head_has_every_region():
    head = build_demo_head()
    tri = head.arrays["v_template"][head.arrays["f"]].mean(1)
    counts = np.bincount(surface_regions(tri, head.face_part), minlength=len(REGIONS))
    least = {"nostril": 4, "brow": 40, "lips": 40, "opening": 40}
    assert all(counts[i] >= least.get(r, 200) for i, r in enumerate(REGIONS)), dict(zip(REGIONS, counts))
    assert sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file()) < 20e6


def test_jaw_follows_the_speech_envelope_on_the_demo_clip():
    audio = load_wav(DEMO_AUDIO)
    driver = SignalSpeechDriver(BlendshapeModel.load(DEMO_BLENDSHAPES).speech_names)
    fps = 30
    jaw = neutral_speech(driver, audio, fps)[:, driver.speech_names.index("jaw_open")]
    hop = audio.sample_rate / fps
    rms = np.array([np.sqrt(np.mean(audio.samples[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12)
                    for i in range(len(jaw))])
    assert len(jaw) == round(audio.duration * fps)
    assert np.corrcoef(jaw, rms)[0, 1] >= 0.6
