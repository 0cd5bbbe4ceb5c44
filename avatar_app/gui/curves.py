"""The curve panel: speech weights, emotion intensities with their keyframes, expression
weights, and jaw opening with the leading FLAME expression parameters, over the whole clip,
with a playhead; clicking a plot seeks there."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from pyqtgraph.GraphicsScene.mouseEvents import MouseClickEvent
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..player import Player

LEADING_EXPR = 4


@dataclass
class CurveData:
    times: np.ndarray
    speech: dict[str, np.ndarray] = field(default_factory=dict)
    emotions: dict[str, np.ndarray] = field(default_factory=dict)
    expression: dict[str, np.ndarray] = field(default_factory=dict)
    flame: dict[str, np.ndarray] = field(default_factory=dict)
    keyframes: list[tuple[float, dict[str, float]]] = field(default_factory=list)


def curve_data(player: Player) -> CurveData:
    """Everything the panel draws, from the player's current settings."""
    clip, bs, perf = player.clip, player.avatar.blendshapes, player.performance
    times = np.arange(clip.num_frames) / clip.fps
    data = CurveData(times)
    if bs is not None:
        speech, expression = player.weights(0, clip.num_frames)
        data.speech = dict(zip(bs.speech_names, speech.T))
        data.expression = dict(zip(bs.expression_names, expression.T))
        data.emotions = dict(zip(bs.emotion_names, perf.intensities(times, bs.emotion_names).T))
        data.keyframes = [(k.time, dict(k.emotions)) for k in perf.keyframes.keys]
    if player.rig is not None:
        params = player.flame_params(0, clip.num_frames)
        data.flame["jaw opening (rad)"] = np.asarray(params.jaw_pose, np.float32)[:, 0]
        expr = np.asarray(params.expr, np.float32)
        for i in np.argsort(-expr.std(0))[:LEADING_EXPR]:
            if expr[:, i].std() > 0:
                data.flame[f"expr {i}"] = expr[:, i]
    return data


class CurvePanel(QWidget):
    seek_requested = Signal(float)  # seconds

    TITLES = ("speech", "emotion", "expression", "FLAME")
    LEGEND_ROWS = 3  # with the legends' spacing, short enough for all four plots in an 860 px window

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.graphics = pg.GraphicsLayoutWidget(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.plots: list[pg.PlotItem] = []
        self.legends: list[pg.LegendItem] = []
        self.playheads: list[pg.InfiniteLine] = []
        for row, title in enumerate(self.TITLES):
            plot = self.graphics.addPlot(row=row, col=0)
            plot.setLabel("left", title, **{"font-size": "8pt"})
            plot.setMouseEnabled(x=True, y=False)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.getAxis("left").setWidth(52)
            plot.getAxis("left").enableAutoSIPrefix(False)
            legend = pg.LegendItem(labelTextSize="7pt", verSpacing=-8)
            self.graphics.addItem(legend, row=row, col=1)
            self.legends.append(legend)
            if self.plots:
                plot.setXLink(self.plots[0])
            if row < len(self.TITLES) - 1:
                plot.getAxis("bottom").setStyle(showValues=False)
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((220, 30, 30), width=2))
            plot.addItem(line, ignoreBounds=True)
            self.plots.append(plot)
            self.playheads.append(line)
        self.plots[-1].setLabel("bottom", "time (s)")
        self.key_lines: list[pg.InfiniteLine] = []
        self.data = CurveData(np.zeros(0))
        self.graphics.scene().sigMouseClicked.connect(self._on_click)

    def set_data(self, data: CurveData) -> None:
        self.data = data
        groups = (data.speech, data.emotions, data.expression, data.flame)
        for plot, legend, group in zip(self.plots, self.legends, groups):
            for item in plot.listDataItems():
                plot.removeItem(item)
            legend.clear()
            legend.setColumnCount(max(1, -(-len(group) // self.LEGEND_ROWS)))
            for i, (name, values) in enumerate(group.items()):
                pen = pg.mkPen(pg.intColor(i, hues=max(len(group), 1)), width=1.5)
                legend.addItem(plot.plot(data.times, values, pen=pen), name)
            values = np.concatenate([v for v in group.values()]) if group else np.zeros(1)
            low, high = min(float(values.min()), 0.0), max(float(values.max()), 1.0 if group is data.emotions else 0.0)
            plot.setYRange(low, max(high, low + 0.1), padding=0.05)
        emotion_plot = self.plots[1]
        for line in self.key_lines:
            emotion_plot.removeItem(line)
        self.key_lines = []
        names = list(data.emotions)
        for time, mix in data.keyframes:
            line = pg.InfiniteLine(time, angle=90, pen=pg.mkPen((90, 90, 90), style=pg.QtCore.Qt.DashLine))
            emotion_plot.addItem(line, ignoreBounds=True)
            self.key_lines.append(line)
        if data.keyframes:
            xs = [t for t, _ in data.keyframes for _ in names]
            ys = [mix.get(n, 0.0) for _, mix in data.keyframes for n in names]
            brushes = [pg.intColor(i, hues=len(names)) for _ in data.keyframes for i in range(len(names))]
            emotion_plot.plot(xs, ys, pen=None, symbol="o", symbolSize=7, symbolBrush=brushes)
        if len(data.times):
            self.plots[0].setXRange(0, data.times[-1] + (data.times[1] - data.times[0] if len(data.times) > 1 else 1),
                                    padding=0.01)

    def set_playhead(self, seconds: float) -> None:
        for line in self.playheads:
            line.setValue(seconds)

    def _on_click(self, event: MouseClickEvent) -> None:
        pos = event.scenePos()
        for plot in self.plots:
            if plot.sceneBoundingRect().contains(pos):
                self.seek_requested.emit(float(plot.vb.mapSceneToView(pos).x()))
                event.accept()
                return
