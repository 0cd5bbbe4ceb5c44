"""`avatar trials --format csv|psychopy|gorilla` on a hand-made manifest with hostile ids and
levels: the files read back with the csv module and openpyxl (what we did not make), paths that
resolve, cells no spreadsheet runs, the same bytes under the same seed, and settings.json's record."""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest

from avatar_app.cli import main
from avatar_app.stimuli.trial_formats import safe_cell
from common.files import csv_text

HOSTILE_IDS = ['=HYPERLINK("http://evil.example","x")', "+1", "-2", "@x", "plain"]
EMOTIONS = ["=1+1", "-2+3", "@SUM(A1)", "\tx", "happy"]
INTENSITIES = ["-0.5", "+1", "1e3", "0.25", "-inf"]


def write_manifest(study: Path, ids: list[str], levels: list[dict[str, str]]) -> Path:
    """A manifest.json as `avatar stimuli` writes it, its clips small stand-in files in clips/;
    stimulus n has id ids[n], levels[n] and view front (odd n) or left."""
    (study / "clips").mkdir(parents=True)
    records = []
    for n, (sid, level) in enumerate(zip(ids, levels)):
        (study / "clips" / f"s{n}.mp4").write_bytes(f"clip {n}".encode())
        records.append({"id": sid, "status": "ok", "outputs": {"mp4": {"file": f"clips/s{n}.mp4"}},
                        "levels": {**level, "view": "front" if n % 2 else "left"}})
    path = study / "manifest.json"
    path.write_text(json.dumps({"stimuli": records}), encoding="utf-8")
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "study", HOSTILE_IDS,
                          [{"emotion": e, "intensity": i} for e, i in zip(EMOTIONS, INTENSITIES)])


def trials(manifest: Path, out: Path, *options: str) -> int:
    return main(["trials", str(manifest), "--participants", "4", "--seed", "7", "--latin-square", "view",
                 "-o", str(out), *options])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_no_formulas(path: Path) -> None:
    with open(path, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    runs = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))
            and not c.lstrip("+-").replace(".", "", 1).replace("e", "", 1).isdigit()]
    assert not runs, f"{path.name}: {runs}"


@pytest.mark.parametrize("value, cell", [
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'), ("@x", "'@x"), ("-2+3", "'-2+3"),
    ("\tx", "'\tx"), ("\r1", "'\r1"), ("\t1", "'\t1"), ("-inf", "'-inf"), ("+nan", "'+nan"), ("-1_0", "'-1_0"),
    ("-2", "-2"), ("+1", "+1"), ("-0.5", "-0.5"), ("1e3", "1e3"), ("-.5E-2", "-.5E-2"), ("a=b", "a=b"),
    (-2, "-2"), (0.25, "0.25"), (None, ""), ("", "")])
def test_safe_cells_are_never_formulas_and_read_back(value, cell):
    assert safe_cell(value) == cell
    assert csv_text(cell) == ("" if value is None else str(value))


def test_csv_lists_name_clips_relative_to_their_folder_or_absolute(manifest, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "lists"
    assert trials(manifest, out) == 0
    assert "wrote 4 trial lists of 5 trials" in capsys.readouterr().out
    lists = sorted(out.glob("participant_*.csv"))
    assert [p.name for p in lists] == [f"participant_00{i}.csv" for i in range(1, 5)]
    for path in lists:
        rows = read_csv(path)
        assert list(rows[0]) == ["participant", "trial", "block", "id", "file", "emotion", "intensity", "view"]
        assert sorted(csv_text(r["id"]) for r in rows) == sorted(HOSTILE_IDS)
        assert all(not Path(r["file"]).is_absolute() and (out / r["file"]).read_bytes().startswith(b"clip")
                   for r in rows)
        for r in rows:  # each row's levels are its stimulus's, read back through csv_text
            n = HOSTILE_IDS.index(csv_text(r["id"]))
            assert (csv_text(r["emotion"]), r["intensity"], r["file"].rsplit("/", 1)[1]) == \
                (EMOTIONS[n], safe_cell(INTENSITIES[n]), f"s{n}.mp4")
        assert_no_formulas(path)
    assert trials(manifest, tmp_path / "abs", "--absolute-paths") == 0
    rows = read_csv(tmp_path / "abs" / "participant_001.csv")
    assert all(Path(r["file"]).is_absolute() and Path(r["file"]).is_file() for r in rows)
    assert [r["id"] for r in rows] == [r["id"] for r in read_csv(lists[0])]  # same order, other paths
    settings = json.loads((tmp_path / "abs" / "settings.json").read_text())
    assert (settings["format"], settings["options"], settings["seed"]) == ("csv", {"absolute_paths": True}, 7)


def test_same_seed_same_bytes_and_settings_hash_every_file(manifest, tmp_path):
    for name in ("a", "b"):
        assert trials(manifest, tmp_path / name, "--format", "psychopy") == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file() and not p.name.startswith("."))  # not the folder's mark
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
               if f.name != "settings.json")
    settings = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert settings["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert settings["files"] == {f.as_posix(): hashlib.sha256((tmp_path / "a" / f).read_bytes()).hexdigest()
                                 for f in files if f.name != "settings.json"}
    assert (settings["format"], settings["options"]) == ("psychopy", {"link": False})
    assert trials(manifest, tmp_path / "c", "--format", "psychopy", "--seed", "8") == 0
    assert (tmp_path / "c" / "participant_001.csv").read_bytes() != (tmp_path / "a" / "participant_001.csv").read_bytes()


def test_psychopy_conditions_files_as_csv_and_xlsx(manifest, tmp_path):
    assert trials(manifest, tmp_path / "plain") == 0
    out = tmp_path / "psychopy"
    assert trials(manifest, out, "--format", "psychopy", "--link") == 0
    readme = (out / "README.md").read_text()
    assert "Movie file `$movie`" in readme and """$"participant_%03d.csv" % int(expInfo['participant'])""" in readme
    for n in range(1, 5):
        rows = read_csv(out / f"participant_00{n}.csv")
        assert list(rows[0]) == ["movie", "stimulus_id", "block", "trial_number", "emotion", "intensity", "view"]
        plain = read_csv(tmp_path / "plain" / f"participant_00{n}.csv")
        assert [(r["stimulus_id"], r["block"], r["trial_number"], r["emotion"]) for r in rows] == \
            [(r["id"], r["block"], r["trial"], r["emotion"]) for r in plain]  # the plain list's order
        assert all(r["movie"].startswith("stimuli/") and (out / r["movie"]).is_file() for r in rows)
        assert_no_formulas(out / f"participant_00{n}.csv")
    clip = out / "stimuli" / "s0.mp4"
    assert clip.read_bytes() == b"clip 0" and os.path.samefile(clip, manifest.parent / "clips" / "s0.mp4")
    openpyxl = pytest.importorskip("openpyxl")
    sheet = openpyxl.load_workbook(out / "participant_002.xlsx").active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)  # no formulas stored
    with open(out / "participant_002.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert values[0] == table[0] and len(values) == len(table) == 6
    for column, cells in enumerate(zip(*values[1:])):  # numbers where the whole CSV column is, else its text
        text = [row[column] for row in table[1:]]
        if all(isinstance(c, (int, float)) for c in cells):
            assert list(cells) == [float(t) for t in text] and table[0][column] in ("block", "trial_number")
        else:
            assert list(cells) == text, table[0][column]


def test_gorilla_spreadsheets_one_per_list(manifest, tmp_path, capsys):
    out = tmp_path / "gorilla"
    assert trials(manifest, out, "--format", "gorilla") == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0  # `avatar info` knows the folder
    assert "4 file(s) (list_001.csv..list_004.csv)" in capsys.readouterr().out
    sheets = sorted(out.glob("list_*.csv"))
    assert [p.name for p in sheets] == [f"list_00{i}.csv" for i in range(1, 5)]
    assert "list_001,list_002,list_003,list_004" in (out / "README.md").read_text()
    uploads = {p.name for p in (out / "stimuli").iterdir()}
    assert uploads == {f"s{n}.mp4" for n in range(5)}
    for n, sheet in enumerate(sheets, 1):
        rows = read_csv(sheet)
        assert list(rows[0])[:4] == ["display", "randomise_blocks", "randomise_trials", "video"]
        assert all(r["display"] == "trial" and r["randomise_blocks"] == r["randomise_trials"] == "" for r in rows)
        assert [r["trial"] for r in rows] == [str(i) for i in range(1, 6)] and {r["list"] for r in rows} == {str(n)}
        assert all(r["video"] in uploads for r in rows)
        blocks = [r["block"] for r in rows]
        assert blocks == sorted(blocks) and len(set(blocks)) == 2  # the Latin square's blocks, in order
        assert_no_formulas(sheet)


@pytest.mark.parametrize("options, said", [
    (("--format", "psychopy", "--absolute-paths"), "--absolute-paths: only for --format csv"),
    (("--link",), "--link: only for"), (("--rating", "How happy?"), "--rating: only for --format jspsych"),
    (("--format", "gorilla", "--response-keys", "f"), "--response-keys: only for --format jspsych")])
def test_options_of_another_format_are_refused(manifest, tmp_path, capsys, options, said):
    assert trials(manifest, tmp_path / "x", *options) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_two_clips_of_one_name_are_refused_for_a_flat_stimulus_pool(manifest, tmp_path, capsys):
    data = json.loads(manifest.read_text())
    (manifest.parent / "other").mkdir()
    (manifest.parent / "other" / "s0.mp4").write_bytes(b"clip other")
    data["stimuli"][1]["outputs"]["mp4"]["file"] = "other/s0.mp4"
    manifest.write_text(json.dumps(data))
    assert trials(manifest, tmp_path / "g", "--format", "gorilla") == 2
    assert "share the file name 's0.mp4'" in capsys.readouterr().err and not (tmp_path / "g").exists()
