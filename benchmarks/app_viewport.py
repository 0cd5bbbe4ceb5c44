"""Viewport speed of the desktop app on the demo: frames per second it shows while playing and
orbiting (full size, or a preview where a full frame misses 1/24 s on the CPU) and when idle
(full size), and the latency from an emotion-slider move
to the first frame showing it. Runs the real window offscreen; prints a table.

    QT_QPA_PLATFORM=offscreen python benchmarks/app_viewport.py [--backend cpu|gsplat]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402

from assets import DEMO_AUDIO  # noqa: E402
from avatar_app.avatar import DEMO_SOURCE  # noqa: E402
from avatar_app.clip import ClipSource  # noqa: E402
from avatar_app.gui import main_window  # noqa: E402
from avatar_app.gui.app import application  # noqa: E402
from avatar_app.player import Player  # noqa: E402


def pump(app, seconds: float, until=lambda: False) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        app.processEvents()
        time.sleep(0.001)


def shown_rate(app, window, seconds: float) -> tuple[float, str]:
    """Frames shown per second over `seconds`, and the size they were shown at."""
    shown = []
    window.frame_shown.connect(lambda _p: shown.append(time.perf_counter()))
    pump(app, seconds)
    window.frame_shown.disconnect()
    size = "×".join(str(v) for v in reversed(window.viewport.shown.shape[:2]))
    return (len(shown) - 1) / (shown[-1] - shown[0]) if len(shown) > 1 else 0.0, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--size", default="1100x760", help="window size")
    args = parser.parse_args()
    app = application()
    player = Player(DEMO_SOURCE.load(), backend=args.backend)
    source = ClipSource(audio=DEMO_AUDIO)
    player.load_clip(source)
    window = main_window.MainWindow(player, DEMO_SOURCE, source,
                                    QSettings("/tmp/avatar-bench-settings.ini", QSettings.IniFormat))
    window.resize(*(int(v) for v in args.size.split("x")))
    window.show()
    pump(app, 30, window.settled)

    rows = []
    window.toggle_play()
    fps, size = shown_rate(app, window, 5.0)
    window.toggle_play()
    rows.append(("playing", size, fps))

    # orbiting over a paused frame: a drag event every 16 ms, as a mouse sends them
    shown = []
    window.frame_shown.connect(lambda _p: shown.append(time.perf_counter()))
    end = time.monotonic() + 4.0
    while time.monotonic() < end:
        window.viewport.orbited.emit(2.0, 0.0)
        pump(app, 0.016)
    window.frame_shown.disconnect()
    size = "×".join(str(v) for v in reversed(window.viewport.shown.shape[:2]))
    rows.append(("orbit drag", size, (len(shown) - 1) / (shown[-1] - shown[0])))
    pump(app, 10, window.settled)

    # idle full size: ask for the same frame again and again, as fast as it comes back
    times = []
    for _ in range(8):
        start = time.perf_counter()
        window.request_render()
        pump(app, 10, window.settled)
        pump(app, 10, lambda: window._shown_serial == window._serial)
        times.append(time.perf_counter() - start)
    size = "×".join(str(v) for v in reversed(window.viewport.shown.shape[:2]))
    rows.append(("idle (full size)", size, 1 / statistics.median(times)))

    latencies = {True: [], False: []}
    for playing in (False, True):
        if playing:
            window.toggle_play()
        for value in (80, 0, 60, 10, 90, 30, 70, 20):
            window.emotion_panel.emotions["surprised"].slider.setValue(value)
            pump(app, 5, lambda: window._change_mark is None)
            latencies[playing].append(window.last_change_latency * 1000)
            pump(app, 0.3)
        if playing:
            window.toggle_play()

    print(f"backend: {player.backend}, {player.num_gaussians:,} Gaussians, window {args.size}")
    print(f"| {'viewport':<28} | {'image':>9} | {'frames/s':>8} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 10}|")
    for name, size, fps in rows:
        print(f"| {name:<28} | {size:>9} | {fps:8.1f} |")
    print()
    print("| slider move → changed frame | median ms | max ms |")
    print("|------------------------------|----------:|-------:|")
    for playing, values in latencies.items():
        name = "while playing" if playing else "paused"
        print(f"| {name:<28} | {statistics.median(values):9.0f} | {max(values):6.0f} |")
    window.close()


if __name__ == "__main__":
    main()
