"""read_ply against PLY files built here byte by byte (independently of write_ply): every
malformed or hostile file is one InputError line naming it; valid layouts read by name."""
import json
import os
import re
import shutil
import time
import tracemalloc

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from assets import DEMO_AVATAR, DEMO_FLAME
from avatar_app.cli import main
from common.errors import InputError
from renderer.binding import check_binding
from renderer.gaussians import GaussianSet
from renderer.ply import read_ply, write_ply
from tests.ply_layouts import FORMATS, LAYOUTS, body, header, ply_bytes, property_names, records, sh_columns


def gaussian_table(n, degree, rng, bound=True, normals=False, extras=False, shuffle=False, code="f4"):
    """Raw PLY records (log-scales, logit opacities, channel-major f_rest) of random Gaussians."""
    k = (degree + 1) ** 2 - 1
    cols = {a: rng.normal(size=n) for a in "xyz"}
    if normals:
        cols.update({f"n{a}": rng.normal(size=n) for a in "xyz"})
    cols.update({f"f_dc_{c}": rng.normal(size=n) for c in range(3)})
    cols.update({f"f_rest_{i}": rng.normal(size=n) for i in range(3 * k)})
    cols["opacity"] = rng.normal(size=n) * 3
    cols.update({f"scale_{i}": rng.uniform(-6, -2, n) for i in range(3)})
    cols.update({f"rot_{i}": rng.normal(size=n) for i in range(4)})
    types = {name: code for name in cols}
    if bound:
        cols["binding_0"], types["binding_0"] = rng.integers(0, 10000, n), "f4"
    if extras:
        for c in ("red", "green", "blue"):
            cols[c], types[c] = rng.integers(0, 256, n), "u1"
    names = list(cols)
    if shuffle:
        names = [names[i] for i in rng.permutation(len(names))]
    table = np.empty(n, dtype=[(name, types[name]) for name in names])
    for name in names:
        table[name] = cols[name]
    return table


def expected(table):
    """What read_ply should return for these records, computed in float64."""
    get = lambda *names: np.stack([table[n].astype(np.float64) for n in names], -1)  # noqa: E731
    n_rest = sum(name.startswith("f_rest_") for name in table.dtype.names)
    k = n_rest // 3
    rest = np.stack([table[f"f_rest_{i}"].astype(np.float64) for i in range(n_rest)] + [np.empty(len(table))],
                    -1)[:, :n_rest].reshape(len(table), 3, k).transpose(0, 2, 1)
    return {"means": get("x", "y", "z"), "quats": get("rot_0", "rot_1", "rot_2", "rot_3"),
            "scales": np.exp(get("scale_0", "scale_1", "scale_2")),
            "opacities": 1 / (1 + np.exp(-table["opacity"].astype(np.float64))),
            "sh": np.concatenate([get("f_dc_0", "f_dc_1", "f_dc_2")[:, None], rest], axis=1)}


def write(tmp_path, data, name="g.ply"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path, *phrases):
    """The InputError message (asserted one line, naming the file, holding every phrase)."""
    with pytest.raises(InputError) as info:
        read_ply(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    for phrase in phrases:
        assert phrase in msg, msg
    return msg


def assert_reads_as(g, table):
    want = expected(table)
    for name, value in want.items():
        got = getattr(g, name)
        assert got.dtype == torch.float32 and got.shape == value.shape, name
        np.testing.assert_allclose(got.numpy(), value, rtol=1e-6, atol=1e-7, err_msg=name)
    if "binding_0" in table.dtype.names:
        assert g.binding.dtype == torch.int64
        np.testing.assert_array_equal(g.binding.numpy(), table["binding_0"])
    else:
        assert g.binding is None


# --- valid layouts --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_degrees_endians_orders(tmp_path, degree, fmt):
    rng = np.random.default_rng(degree)
    for bound in (True, False):
        for normals, extras, shuffle, code in [(False, False, False, "f4"), (True, True, True, "f8")]:
            table = gaussian_table(7, degree, rng, bound, normals, extras, shuffle, code)
            g = read_ply(write(tmp_path, ply_bytes(table, fmt)))
            assert g.sh_degree == degree and len(g) == 7
            assert_reads_as(g, table)


def published_columns(layout, n, degree, rng):
    """Raw columns of n Gaussians as `layout` stores them (tests/ply_layouts.py), with the SH
    coefficients they hold: dc [n, 3] and rest [n, K-1, 3]. Bound ones sit in their triangles'
    frames (units of the triangle's size), static ones in a head-sized blob."""
    bound = layout == "gaussianavatars"
    dc, rest = rng.normal(size=(n, 3)), rng.normal(scale=0.2, size=(n, (degree + 1) ** 2 - 1, 3))
    columns = {**{a: rng.normal(scale=0.3 if bound else 0.05, size=n) for a in "xyz"},
               **{f"n{a}": np.zeros(n) for a in "xyz"}, **sh_columns(dc, rest),
               "opacity": rng.normal(1.0, 2.0, n), **{f"rot_{i}": rng.normal(size=n) for i in range(4)},
               **{f"scale_{i}": rng.uniform(-1.5, 0.0, n) if bound else rng.uniform(-5.5, -3.5, n) for i in range(3)},
               "binding_0": rng.integers(0, 9976, n), "filter_3D": rng.uniform(1e-4, 1e-3, n),
               **{c: rng.integers(0, 256, n) for c in ("red", "green", "blue")}}
    return columns, dc.astype(np.float32), rest.astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_published_layouts(tmp_path, layout, degree, fmt):
    """Each trainer's exact layout reads by name; so do its records with the normals added or
    dropped, and shuffled among extra properties (colours as uchar, Mip-Splatting's filter_3D)."""
    columns, dc, rest = published_columns(layout, 9, degree, np.random.default_rng(degree))
    names = property_names(layout, degree)
    normals = ["nx", "ny", "nz"]
    toggled = [n for n in names if n not in normals] if "nx" in names else names[:3] + normals + names[3:]
    extras = [names[i] for i in np.random.default_rng(5).permutation(len(names))] + \
        ["red", "green", "blue", "filter_3D"]
    for variant in (names, toggled, extras):
        table = records(variant, columns, {c: "u1" for c in ("red", "green", "blue")})
        g = read_ply(write(tmp_path, ply_bytes(table, fmt)))
        assert g.sh_degree == degree and g.is_bound == (layout == "gaussianavatars") and len(g) == 9
        assert_reads_as(g, table)
        assert torch.equal(g.sh[:, 0], torch.from_numpy(dc)) and torch.equal(g.sh[:, 1:], torch.from_numpy(rest))


def test_compressed_ply_is_refused_by_name(tmp_path):
    """SuperSplat's compressed PLY (gsplat's `ply_compressed`: a chunk element, quantised
    packed_* vertex properties, SH in an element of its own) is not a plain point cloud."""
    chunks = records([f"min_{a}" for a in "xyz"], {f"min_{a}": np.zeros(1) for a in "xyz"})
    packed = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
    table = records(list(packed), {name: np.arange(3) for name in packed}, {name: "u4" for name in packed})
    data = header(table, before="element chunk 1\n" + "".join(f"property float min_{a}\n" for a in "xyz"),
                  after="element sh 3\nproperty uchar f_rest_0\n").encode() + chunks.tobytes() + table.tobytes()
    refused(write(tmp_path, data + bytes(3)), "a compressed PLY (packed_position", "plain 3DGS PLY")


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("bound", [True, False])
def test_write_ply_round_trip(tmp_path, degree, bound):
    """We write GaussianAvatars' layout (3DGS's without a binding), and read back what we wrote:
    every stored value exactly, scales and opacities through float32 log / logit and back."""
    rng = np.random.default_rng(10 + degree)
    n, k = 50, (degree + 1) ** 2
    g = GaussianSet(means=torch.randn(n, 3), quats=torch.randn(n, 4), scales=torch.rand(n, 3) * 0.1 + 1e-4,
                    opacities=torch.rand(n) * 0.98 + 0.01, sh=torch.randn(n, k, 3),
                    binding=torch.from_numpy(rng.integers(0, 10144, n)) if bound else None)
    path = tmp_path / "out" / "point_cloud.ply"
    write_ply(g, path)
    data = path.read_bytes()
    names = property_names("gaussianavatars" if bound else "3dgs", degree)
    assert data.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert re.findall(rb"property (\w+) (\w+)", data[:data.index(b"end_header")]) == \
        [(b"float", name.encode()) for name in names]
    raw = np.frombuffer(data[data.index(b"end_header\n") + 11:], dtype=[(name, "<f4") for name in names])
    sh = g.sh.numpy()
    want = {**{a: g.means[:, i].numpy() for i, a in enumerate("xyz")}, **{f"n{a}": np.zeros(n) for a in "xyz"},
            **sh_columns(sh[:, 0], sh[:, 1:]), **{f"rot_{i}": g.quats[:, i].numpy() for i in range(4)}}
    if bound:
        want["binding_0"] = g.binding.numpy()
    for name, value in want.items():
        np.testing.assert_array_equal(raw[name], value.astype(np.float32), err_msg=name)
    opacity = g.opacities.double().numpy()
    np.testing.assert_allclose(raw["opacity"], np.log(opacity / (1 - opacity)), rtol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(raw[f"scale_{i}"], np.log(g.scales[:, i].double().numpy()), rtol=1e-6)
    back = read_ply(path)
    assert back.sh_degree == degree and back.is_bound == bound
    for name in ("means", "quats", "sh"):  # stored as they are
        assert torch.equal(getattr(back, name), getattr(g, name)), name
    for name in ("scales", "opacities"):  # through log / logit and back, in float32
        torch.testing.assert_close(getattr(back, name), getattr(g, name), rtol=1e-6, atol=1e-7)
    if bound:
        assert back.binding.dtype == torch.int64 and torch.equal(back.binding, g.binding)


def test_elements_after_vertex_are_ignored(tmp_path):
    table = gaussian_table(4, 1, np.random.default_rng(1))
    faces = "element face 2\nproperty list uchar int vertex_indices\n"
    tail = np.array([3, 0, 1, 2, 3, 1, 2, 3], "<i4").astype("u1").tobytes()  # junk is fine too
    assert_reads_as(read_ply(write(tmp_path, ply_bytes(table, after=faces) + tail)), table)
    ascii_tail = b"3 0 1 2\n3 1 2 3\n"
    assert_reads_as(read_ply(write(tmp_path, ply_bytes(table, "ascii", after=faces) + ascii_tail)), table)


def test_scalar_elements_before_vertex_are_skipped(tmp_path):
    table = gaussian_table(4, 2, np.random.default_rng(2))
    before = "element camera 3\nproperty double fx\nproperty uchar id\nelement empty 5\n"
    cameras = np.zeros(3, [("fx", "<f8"), ("id", "u1")]).tobytes()
    data = ply_bytes(table, before=before)
    split = data.index(b"end_header\n") + len(b"end_header\n")
    assert_reads_as(read_ply(write(tmp_path, data[:split] + cameras + data[split:])), table)
    data = ply_bytes(table, "ascii", before="element camera 2\nproperty list uchar float k\n")
    split = data.index(b"end_header\n") + len(b"end_header\n")
    assert_reads_as(read_ply(write(tmp_path, data[:split] + b"2 1.0 2.0\n0\n" + data[split:])), table)


def test_list_element_before_vertex_is_refused_in_binary(tmp_path):
    table = gaussian_table(2, 0, np.random.default_rng(3))
    path = write(tmp_path, ply_bytes(table, before="element face 1\nproperty list uchar int v\n"))
    refused(path, "element 'face' before 'vertex' has a list property")


# --- malformed headers ----------------------------------------------------------------------

HEAD = "ply\nformat binary_little_endian 1.0\n"
PROPS = "".join(f"property float {p}\n" for p in ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                                                  "scale_0", "scale_1", "scale_2",
                                                  "rot_0", "rot_1", "rot_2", "rot_3"])
RECORDS = b"\x00\x00\x80\x3f" * 14 * 2  # two Gaussians of 1.0s

HEADERS = {
    "vertex count missing": (HEAD + "element vertex\n" + PROPS, "malformed element line"),
    "vertex count not an integer": (HEAD + "element vertex 2.5\n" + PROPS, "'2.5' is not a whole number"),
    "vertex count a word": (HEAD + "element vertex two\n" + PROPS, "'two' is not a whole number"),
    "vertex count negative": (HEAD + "element vertex -2\n" + PROPS, "'-2' is not a whole number"),
    "vertex count 5000 digits": (HEAD + "element vertex " + "9" * 5000 + "\n" + PROPS, "is not a whole number"),
    "vertex count extra word": (HEAD + "element vertex 2 3\n" + PROPS, "malformed element line"),
    "element without name": (HEAD + "element 2\n" + PROPS, "malformed element line"),
    "bare element": (HEAD + "element\n" + PROPS, "malformed element line"),
    "property without name": (HEAD + "element vertex 2\nproperty float\n" + PROPS, "malformed property line"),
    "property without type": (HEAD + "element vertex 2\nproperty x\n" + PROPS, "malformed property line"),
    "bare property": (HEAD + "element vertex 2\nproperty\n" + PROPS, "malformed property line"),
    "short list property": (HEAD + "element vertex 2\nproperty list uchar v\n" + PROPS, "malformed property line"),
    "unknown type": (HEAD + "element vertex 2\nproperty quad w\n" + PROPS, "unknown property type 'quad'"),
    "duplicated property": (HEAD + "element vertex 2\n" + PROPS + "property float x\n",
                            "property 'x' is declared twice"),
    "duplicated vertex element": (HEAD + "element vertex 2\n" + PROPS + "element vertex 2\n",
                                  "element 'vertex' is declared twice"),
    "property before element": (HEAD + "property float x\nelement vertex 2\n" + PROPS, "before any element"),
    "format missing": ("ply\nelement vertex 2\n" + PROPS, "no format line"),
    "format version 2.0": ("ply\nformat binary_little_endian 2.0\nelement vertex 2\n" + PROPS,
                           "unsupported format 'binary_little_endian 2.0'"),
    "format unknown": ("ply\nformat binary_middle_endian 1.0\nelement vertex 2\n" + PROPS, "unsupported format"),
    "format without version": ("ply\nformat ascii\nelement vertex 2\n" + PROPS, "unsupported format"),
    "format twice": (HEAD + "format ascii 1.0\nelement vertex 2\n" + PROPS, "format line must come once"),
    "format after element": ("ply\nelement vertex 2\nformat ascii 1.0\n" + PROPS, "format line must come once"),
    "unknown keyword": (HEAD + "vertex 2\n" + PROPS, "unknown header keyword 'vertex'"),
    "zero Gaussians": (HEAD + "element vertex 0\n" + PROPS, "no Gaussians"),
    "no vertex element": (HEAD + "element face 2\n" + PROPS, "no vertex element"),
    "list in vertex": (HEAD + "element vertex 2\nproperty list uchar float v\n" + PROPS, "'v' is a list"),
    "property missing": (HEAD + "element vertex 2\n" + PROPS.replace("property float rot_3\n", ""),
                         "missing PLY properties rot_3"),
    "f_rest count": (HEAD + "element vertex 2\n" + PROPS + "property float f_rest_0\n", "1 f_rest properties"),
    "f_rest gap": (HEAD + "element vertex 2\n" + PROPS + "".join(f"property float f_rest_{i}\n" for i in range(1, 10)),
                   "9 f_rest properties do not form f_rest_0.."),
    "too many Gaussians": (HEAD + "element vertex 100000000\n" + PROPS, "more than the 50,000,000"),
    "no magic": ("PLY\n" + HEAD[4:] + "element vertex 2\n" + PROPS, "not a PLY file"),
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_malformed_header(tmp_path, case):
    text, phrase = HEADERS[case]
    refused(write(tmp_path, (text + "end_header\n").encode("ascii") + RECORDS), phrase)


@pytest.mark.parametrize("junk, phrase", [
    (b"property float x\xff\xfe\n", "line 4 is not ASCII text"),
    (b"property float x\x01y\n", "line 4 holds control characters"),
    (b"property float \x00\n", "line 4 holds control characters"),
])
def test_header_junk(tmp_path, junk, phrase):
    data = (HEAD + "element vertex 2\n").encode() + junk + (PROPS + "end_header\n").encode() + RECORDS
    refused(write(tmp_path, data), phrase)


def test_header_comments_may_hold_any_bytes(tmp_path):
    table = gaussian_table(2, 0, np.random.default_rng(4))
    data = ply_bytes(table).replace(b"comment made by the tests", b"comment Andr\xc3\xa9 \xff\x01")
    assert_reads_as(read_ply(write(tmp_path, data)), table)


def test_header_that_never_ends(tmp_path):
    refused(write(tmp_path, HEAD.encode() + (b"comment " + b"a" * 70 + b"\n") * 20000), "within 64 KiB")
    refused(write(tmp_path, (HEAD + "element vertex 2\n" + PROPS).encode()), "no end_header line")
    refused(write(tmp_path, b"ply"), "no end_header line")
    refused(write(tmp_path, b""), "no end_header line")
    refused(write(tmp_path, np.random.default_rng(0).bytes(1 << 20).replace(b"\n", b" ")), "within 64 KiB")


def test_declared_count_beyond_file_size_allocates_nothing(tmp_path):
    text = HEAD + "element vertex 40000000\n" + PROPS + "end_header\n"
    path = write(tmp_path, text.encode() + RECORDS)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        msg = refused(path, "truncated")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "2,240,000,000" in msg and f"holds {len(RECORDS)}" in msg  # 40M × 56 bytes vs 112
    assert peak < 8 << 20 and time.perf_counter() - started < 1.0
    path = write(tmp_path, (HEAD + "element vertex 2\n" + PROPS + "end_header\n").encode() + RECORDS[:-1])
    refused(path, "truncated", "declares 112 bytes", "holds 111")
    ascii_head = HEAD.replace("binary_little_endian", "ascii") + "element vertex 2\n" + PROPS + "end_header\n"
    refused(write(tmp_path, ascii_head.encode() + b"1 " * 14 + b"\n"), "truncated", "says 2 Gaussians, file holds 1")
    refused(write(tmp_path, ascii_head.encode() + b"1 2\n"), "truncated", "2 Gaussians of 14 values", "holds 4 bytes")


@pytest.mark.parametrize("row, phrase", [
    (b"1 1 1 1 1 1 1 1 1 1 1 1 1\n", "(a line holds 13 values for the vertex element's 14 properties)"),
    (b"1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n", "(a line holds 15 values for the vertex element's 14 properties)"),
    (b"1 1 1 1 1 1 1 1 1 1 1 1 1 abc\n", "(could not convert string 'abc' to float32)"),
    (b"1 1 1 1 1 1 1 1 1 1 1 1 1 \x071\n", "does not match the header"),
    (b"1 1 1 1 1 1 1 1 1 1 1 1 1 \xff\n", "does not match the header"),
])
def test_ascii_rows(tmp_path, row, phrase):
    ascii_head = HEAD.replace("binary_little_endian", "ascii") + "element vertex 2\n" + PROPS + "end_header\n"
    refused(write(tmp_path, ascii_head.encode() + b"1 " * 14 + b"\n" + row), phrase)


# --- values that are not usable -------------------------------------------------------------

@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, 1e20, -1.0, 1.5, 2.0**31])
@pytest.mark.parametrize("code", ["f4", "f8"])
def test_bad_binding(tmp_path, value, code):
    table = gaussian_table(3, 0, np.random.default_rng(5))
    table = table.astype([(n, code if n == "binding_0" else table.dtype[n].str) for n in table.dtype.names])
    table["binding_0"][1:] = value
    msg = refused(write(tmp_path, ply_bytes(table)), "binding_0 must hold triangle indices 0..2147483647",
                  "2 Gaussian(s)")
    assert re.search(r"first: [-\w.+]+\)$", msg) and "9223372036854775808" not in msg, msg


def test_int_binding(tmp_path):
    table = gaussian_table(3, 0, np.random.default_rng(6))
    table = table.astype([(n, "i4" if n == "binding_0" else table.dtype[n].str) for n in table.dtype.names])
    assert_reads_as(read_ply(write(tmp_path, ply_bytes(table))), table)
    table["binding_0"][0] = -7
    refused(write(tmp_path, ply_bytes(table)), "binding_0", "1 Gaussian(s)", "first: -7")


@pytest.mark.parametrize("column, value, phrase", [
    ("x", 1e300, "x is NaN or infinite as float32"),          # finite float64, inf after the cast
    ("f_rest_5", np.nan, "f_rest_5 is NaN or infinite"),
    ("opacity", -np.inf, "opacity is NaN or infinite"),
    ("scale_1", 200.0, "scale_1 is too large (its exp overflows float32)"),
    ("rot_*", 0.0, "rot_0..rot_3 has zero length"),
    ("rot_*", 1e-30, "rot_0..rot_3 has zero length"),
    ("rot_*", 1e30, "rot_0..rot_3 has zero length (or one float32 cannot hold)"),
])
def test_values_unusable_after_conversion(tmp_path, column, value, phrase):
    table = gaussian_table(4, 1, np.random.default_rng(7), code="f8")
    for name in ([f"rot_{i}" for i in range(4)] if column == "rot_*" else [column]):
        table[name][[0, 2]] = value
    refused(write(tmp_path, ply_bytes(table)), phrase, "for 2 Gaussian(s)")
    refused(write(tmp_path, ply_bytes(table, "ascii")), phrase, "for 2 Gaussian(s)")


def test_not_a_regular_file(tmp_path):
    refused(tmp_path / "missing.ply", "no such file")
    refused(tmp_path, "is a folder")
    fifo = tmp_path / "fifo.ply"
    os.mkfifo(fifo)
    refused(fifo, "not a regular file")  # returns at once: nothing waits for a writer


def test_check_binding_names_the_avatar():
    g = GaussianSet(torch.zeros(2, 3), torch.ones(2, 4), torch.ones(2, 3), torch.ones(2), torch.zeros(2, 1, 3),
                    binding=torch.tensor([0, 9976]))
    with pytest.raises(InputError, match=r"^a.ply: Gaussians are bound to triangle 9976, but the mesh has only 9976"):
        check_binding(g, 9976, "a.ply")
    check_binding(g, 9977, "a.ply")
    with pytest.raises(InputError, match=r"^a.ply: Gaussians are bound to triangle -1;"):
        check_binding(GaussianSet(*[t.clone() for t in (g.means, g.quats, g.scales, g.opacities, g.sh)],
                                  binding=torch.tensor([-1, 0])), 9976, "a.ply")


# --- fuzz: random mutations of a valid file -------------------------------------------------

HOSTILE_LINES = [b"element vertex -3", b"element vertex 99999999999999", b"element vertex 0", b"element face 7",
                 b"property float", b"property list uchar int vertex_indices", b"property double x",
                 b"format ascii 1.0", b"format binary_big_endian 1.0", b"end_header", b"element",
                 b"property float f_rest_0", b"property int binding_0", b"\xff\xfe\x00", b"obj_info \xff",
                 b"property uchar red", b"element camera 3", b"comment", b""]
SPECIALS = [np.nan, np.inf, -np.inf, 1e20, -1e20, 1e300, 0.0, 200.0, -1.0, 0.5, 3e38]


def mutate(data, table, fmt, rng):
    """One random change: a byte, a header line, a value, a cut or a tail."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head, rest = data[:end], data[end:]
    lines = head.split(b"\n")[:-1]
    kind = rng.integers(8)
    if kind == 0:
        data = bytearray(data)
        data[rng.integers(len(data))] = rng.integers(256)
        return bytes(data)
    if kind == 1:
        head = bytearray(head)
        head[rng.integers(len(head))] = rng.choice([0, 10, 13, 32, 45, 48, 57, 255, rng.integers(256)])
        return bytes(head) + rest
    if kind == 2:
        return data[:rng.integers(len(data))]
    if kind == 3:
        lines[rng.integers(1, len(lines))] = HOSTILE_LINES[rng.integers(len(HOSTILE_LINES))]
    elif kind == 4:
        lines.insert(rng.integers(1, len(lines)), HOSTILE_LINES[rng.integers(len(HOSTILE_LINES))])
    elif kind == 5:
        del lines[rng.integers(1, len(lines))]
    elif kind == 6:
        i = rng.integers(1, len(lines))
        lines.insert(i, lines[i])
    else:
        changed = table.copy()
        changed[table.dtype.names[rng.integers(len(table.dtype.names))]][rng.integers(len(table))] = \
            SPECIALS[rng.integers(len(SPECIALS))]
        return head + body(changed, fmt) + rest[len(body(table, fmt)):]
    return b"\n".join(lines) + b"\n" + rest


def test_mutations_read_or_refuse(tmp_path):
    rng = np.random.default_rng(2024)
    started, outcomes = time.perf_counter(), {"read": 0, "refused": 0}
    for fmt in ("binary_little_endian", "binary_big_endian", "ascii"):
        table = gaussian_table(3, 1, rng, normals=True, code="f8" if fmt == "binary_big_endian" else "f4")
        tail = b"3 0 1 2\n" if fmt == "ascii" else b"\x03\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"
        data = ply_bytes(table, fmt, after="element face 1\nproperty list uchar int vertex_indices\n") + tail
        for i in range(150):
            with np.errstate(all="ignore"):
                path = write(tmp_path, mutate(data, table, fmt, rng), f"m{i}.ply")
            try:
                g = read_ply(path)
            except InputError as err:
                assert str(err).startswith(f"{path}: ") and "\n" not in str(err), str(err)
                outcomes["refused"] += 1
                continue
            outcomes["read"] += 1
            assert len(g) >= 1 and g.sh.shape[1] in (1, 4, 9, 16)
            for t in (g.means, g.quats, g.scales, g.opacities, g.sh):
                assert t.shape[0] == len(g) and torch.isfinite(t).all()
            assert g.binding is None or (g.binding.dtype == torch.int64 and (g.binding >= 0).all())
    assert outcomes["read"] > 20 and outcomes["refused"] > 100, outcomes
    assert time.perf_counter() - started < 10


# --- published layouts end to end: `avatar info`, `avatar render`, a stimulus -----------------

def published_file(folder, layout, degree, n=400):
    """`layout`'s file of n Gaussians at SH `degree`, binary little-endian as the trainers write it."""
    columns, _, _ = published_columns(layout, n, degree, np.random.default_rng(20 + degree))
    path = folder / f"{layout}_{degree}.ply"
    path.write_bytes(ply_bytes(records(property_names(layout, degree), columns)))
    return path


@pytest.mark.parametrize("layout", LAYOUTS)
def test_published_layouts_describe_and_render(tmp_path, capsys, layout):
    """Every degree of every layout: `avatar info` says what it is, `avatar render` writes frames
    that show it; exit code 0, no traceback. A GaussianAvatars one as its trainer leaves it, in an
    output folder (point_cloud/iteration_N/ with flame_param.npz), on a FLAME-layout model."""
    bound = layout == "gaussianavatars"
    for degree in range(4):
        path = published_file(tmp_path, layout, degree)
        if bound:
            folder = tmp_path / f"output_{degree}"
            (folder / "point_cloud" / "iteration_30000").mkdir(parents=True)
            path = path.rename(folder / "point_cloud" / "iteration_30000" / "point_cloud.ply")
            shutil.copy(DEMO_AVATAR / "flame_param.npz", path.parent)
            path = folder
        assert main(["info", str(path)]) == 0
        said = capsys.readouterr().out
        assert f"SH degree: {degree}" in said and "Gaussians: 400" in said
        assert ("GaussianAvatars layout" in said) == bound and ("flame_param.npz: 1 frame(s)" in said) == bound
        out = tmp_path / f"frames_{layout}_{degree}"
        rig = ["--flame", str(DEMO_FLAME)] if bound else []
        assert main(["render", "--avatar", str(path), *rig, "--duration", "0.04", "--size", "48x40",
                     "--background", "black", "-q", "-o", str(out)]) == 0
        frame = iio.imread(out / "frame_00000.png")
        assert frame.shape == (40, 48, 3) and frame.max() > 50  # the Gaussians show on black


def test_static_scene_stimulus(tmp_path):
    """A plain 3DGS scene (no rig, no blendshapes) as a stimulus: its apex is its first frame."""
    path = published_file(tmp_path, "3dgs", 0)
    (tmp_path / "design.csv").write_text(f"id,avatar,end\nscene,{path},0.1\n")
    out = tmp_path / "stimuli"
    assert main(["stimuli", str(tmp_path / "design.csv"), "-o", str(out), "--png", "--set", "size=48x40",
                 "-q"]) == 0
    assert (out / "scene.mp4").is_file() and (out / "scene.png").is_file()
    assert json.loads((out / "manifest.json").read_text())["stimuli"][0]["apex_frame"] == 0
