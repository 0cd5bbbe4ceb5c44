"""The jsPsych folder `avatar trials --format jspsych` writes, read as files (the browser run is
tests/test_jspsych_browser.py): every participant's timeline is that participant's CSV list (read
with the csv module), the same seed gives the same bytes, the options reach the page, clips are
copied or hard-linked, a local jsPsych is copied and its version checked, and the page's
spreadsheet-safe cells follow the CSV lists' rule (checked in node, the JavaScript engine)."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from avatar_app.cli import main
from avatar_app.stimuli.jspsych import EXPERIMENT_JS, JSPSYCH_VERSION, PLUGINS
from avatar_app.stimuli.trial_formats import safe_cell
from common.files import csv_text
from tests.test_trial_formats import write_manifest

IDS = ['=HYPERLINK("http://evil.example","x")', "+1", "@x", "plain one", "naïve"]
EMOTIONS = ["=1+1", "happy", "sad", "happy", "sad"]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "study", IDS, [{"emotion": emotion} for emotion in EMOTIONS])


def trials(manifest: Path, out: Path, *options: str, seed: str = "7") -> int:
    return main(["trials", str(manifest), "--participants", "3", "--seed", seed, "--latin-square", "view",
                 "--repeats", "2", "-o", str(out), *options])


def timeline(folder: Path, participant: int) -> dict:
    text = (folder / "timelines" / f"participant_{participant:03d}.js").read_text(encoding="utf-8")
    assert text.startswith("avatarTimeline(") and text.endswith(");\n")
    return json.loads(text[len("avatarTimeline("):-len(");\n")])


def page_settings(folder: Path) -> dict:
    page = (folder / "index.html").read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="study">(.*?)</script>', page, re.DOTALL)
    return json.loads(block.group(1))


def script_sources(folder: Path) -> list[str]:
    return re.findall(r'<script src="([^"]+)"></script>', (folder / "index.html").read_text(encoding="utf-8"))


def test_each_timeline_is_the_participants_csv_list(manifest, tmp_path):
    assert trials(manifest, tmp_path / "csv") == 0
    assert trials(manifest, tmp_path / "web", "--format", "jspsych") == 0
    web = tmp_path / "web"
    assert {p.name for p in web.iterdir() if not p.name.startswith(".")} == \
        {"index.html", "experiment.js", "README.md", "timelines", "stimuli", "settings.json"}
    assert sorted(p.name for p in (web / "stimuli").iterdir()) == [f"s{n}.mp4" for n in range(5)]
    for participant in (1, 2, 3):
        with open(tmp_path / "csv" / f"participant_{participant:03d}.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        line = timeline(web, participant)
        assert line["participant"] == participant and line["columns"] == list(rows[0])
        assert len(line["trials"]) == len(rows) == 10
        for row, trial in zip(rows, line["trials"]):
            assert (trial["participant"], trial["trial"], trial["block"]) == \
                (int(row["participant"]), int(row["trial"]), int(row["block"]))
            assert (trial["id"], trial["emotion"], trial["view"]) == \
                (csv_text(row["id"]), csv_text(row["emotion"]), row["view"])
            # the same clip: the CSV names it where it is, the timeline by its copy in stimuli/
            assert trial["file"].startswith("stimuli/")
            assert (web / trial["file"]).read_bytes() == (tmp_path / "csv" / row["file"]).read_bytes()
    settings = page_settings(web)
    assert settings["participants"] == 3 and settings["columns"] == line["columns"]
    assert settings["keys"] == "ALL_KEYS" and settings["rating"] is None and settings["fixation_ms"] == 500
    recorded = json.loads((web / "settings.json").read_text())
    assert recorded["format"] == "jspsych" and "timelines/participant_001.js" in recorded["files"]
    # the default: jsPsych 8 and the plugins it needs from the CDN, exact versions, the experiment last
    packages = ["jspsych", PLUGINS["preload"][0], PLUGINS["html-keyboard"][0], PLUGINS["video-keyboard"][0]]
    versions = [JSPSYCH_VERSION, PLUGINS["preload"][1], PLUGINS["html-keyboard"][1], PLUGINS["video-keyboard"][1]]
    assert script_sources(web) == [f"https://unpkg.com/{p}@{v}/dist/index.browser.min.js"
                                   for p, v in zip(packages, versions)] + ["experiment.js"]
    assert (web / "experiment.js").read_text(encoding="utf-8") == EXPERIMENT_JS


def test_the_same_seed_writes_the_same_folder(manifest, tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert trials(manifest, tmp_path / name, "--format", "jspsych", "--rating", "How happy?", seed=seed) == 0

    def files(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("[!.]*"))
                if p.is_file() and p.name != "settings.json"}
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert files(tmp_path / "a")["timelines/participant_001.js"] != files(tmp_path / "c")["timelines/participant_001.js"]


def test_options_reach_the_page(manifest, tmp_path):
    question = 'How happy did the face look? </script><script>alert("x")</script>'
    assert trials(manifest, tmp_path / "keys", "--format", "jspsych", "--response-keys", "F", "space", "arrowleft",
                  "--response-window-ms", "2500", "--fixation-ms", "0", "--rating", question,
                  "--rating-labels", "not at all", "a bit", "very", "--save-url", "https://lab.example/save",
                  "--jspsych", "https://cdn.jsdelivr.net/npm/") == 0
    settings = page_settings(tmp_path / "keys")
    assert settings["keys"] == ["f", " ", "arrowleft"] and settings["buttons"] is None
    assert (settings["response_window_ms"], settings["fixation_ms"]) == (2500, 0)
    assert settings["rating"] == {"question": question, "scale": "likert", "labels": ["not at all", "a bit", "very"]}
    assert settings["save_url"] == "https://lab.example/save"
    page = (tmp_path / "keys" / "index.html").read_text(encoding="utf-8")
    assert page.count("<script") == page.count("</script>") == 7  # the question cannot close the settings block
    assert [s.split("/dist/")[0].rsplit("@", 1)[0] for s in script_sources(tmp_path / "keys")[:-1]] == \
        ["https://cdn.jsdelivr.net/npm/jspsych"] + [f"https://cdn.jsdelivr.net/npm/{PLUGINS[k][0]}"
                                                    for k in ("preload", "html-keyboard", "video-keyboard", "likert")]

    assert trials(manifest, tmp_path / "buttons", "--format", "jspsych", "--response-buttons", "happy", "sad",
                  "--rating", "How sure?", "--rating-scale", "slider") == 0
    settings = page_settings(tmp_path / "buttons")
    assert settings["buttons"] == ["happy", "sad"] and settings["rating"]["labels"] == ["not at all", "very"]
    assert [PLUGINS[k][0] in " ".join(script_sources(tmp_path / "buttons")) for k in PLUGINS] == \
        [True, True, False, True, False, True]


def test_clips_are_copied_or_hard_linked(manifest, tmp_path):
    clip = manifest.parent / "clips" / "s0.mp4"
    assert trials(manifest, tmp_path / "copied", "--format", "jspsych") == 0
    assert trials(manifest, tmp_path / "linked", "--format", "jspsych", "--link") == 0
    assert not os.path.samefile(clip, tmp_path / "copied" / "stimuli" / "s0.mp4")
    assert os.path.samefile(clip, tmp_path / "linked" / "stimuli" / "s0.mp4")


def node_modules(root: Path, core_version: str = JSPSYCH_VERSION) -> Path:
    """A folder laid out as `npm install jspsych @jspsych/plugin-…` leaves it (small stand-in builds)."""
    for package, version in [("jspsych", core_version), *((p, v) for p, v, _ in PLUGINS.values())]:
        (root / "node_modules" / package / "dist").mkdir(parents=True)
        (root / "node_modules" / package / "package.json").write_text(json.dumps({"name": package, "version": version}))
        (root / "node_modules" / package / "dist" / "index.browser.min.js").write_text(f"// {package}\n")
    (root / "node_modules" / "jspsych" / "css").mkdir()
    (root / "node_modules" / "jspsych" / "css" / "jspsych.css").write_text("body {}\n")
    return root


def test_a_local_jspsych_is_copied_into_the_folder_and_its_version_checked(manifest, tmp_path, capsys):
    local = node_modules(tmp_path / "npm")
    assert trials(manifest, tmp_path / "web", "--format", "jspsych", "--jspsych", str(local)) == 0
    web = tmp_path / "web"
    sources = script_sources(web)
    assert all((web / s).is_file() for s in sources) and sources[0] == "jspsych/jspsych/dist/index.browser.min.js"
    assert (web / "jspsych" / PLUGINS["video-keyboard"][0] / "dist" / "index.browser.min.js").read_text() == \
        f"// {PLUGINS['video-keyboard'][0]}\n"
    assert not (web / "jspsych" / PLUGINS["slider"][0]).exists()  # only the plugins the page uses
    shutil.rmtree(local)
    capsys.readouterr()
    assert trials(manifest, tmp_path / "old", "--format", "jspsych", "--jspsych", str(node_modules(local, "7.3.4"))) \
        == 2
    assert "jspsych is version 7.3.4; jsPsych 8 needs jspsych 8.x" in capsys.readouterr().err
    assert not (tmp_path / "old").exists()


@pytest.mark.parametrize("options, message", [
    (["--response-keys", "ff"], "--response-keys ff: not a key"),
    (["--response-keys", "f", "F"], "a key is given twice"),
    (["--response-keys", "f", "--response-buttons", "a"], "give one of them"),
    (["--response-window-ms", "0"], "--response-window-ms 0: must lie in"),
    (["--fixation-ms", "-1"], "--fixation-ms -1: must lie in"),
    (["--rating-labels", "a", "b"], "give the question with --rating too"),
    (["--rating", "  "], "--rating: the question is empty"),
    (["--rating", "q", "--rating-labels", "only"], "needs two labels or more"),
    (["--save-url", "javascript:alert(1)"], "not an http(s) address"),
    (["--jspsych", "https://cdn.example/\"><script>"], "not an http(s) address"),
    (["--jspsych", "nowhere"], "--jspsych nowhere: no jspsych in it"),
])
def test_bad_options_are_refused_in_one_line(manifest, tmp_path, capsys, options, message):
    assert trials(manifest, tmp_path / "web", "--format", "jspsych", *options) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "web").exists()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_data_cells_follow_the_csv_lists_rule():
    values = ['=HYPERLINK("x")', "+1", "-2", "-0.5", "1e3", "@x", "\tx", "\r1", "-inf", "a=b", "", "plain", "+nan"]
    function = re.search(r"^function safeCell\(value\) \{.*?^\}", EXPERIMENT_JS, re.DOTALL | re.MULTILINE).group(0)
    script = f"{function}\nprocess.stdout.write(JSON.stringify({json.dumps(values)}.map(safeCell)));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out) == [safe_cell(v) for v in values]
