// Time-series charts with uPlot (vendored): colours from the theme, width from the box.
const charts = new Set();

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export class Chart {
  // series: [{label, color: "--completed", bars?, scale?: "y" | "%", fmt?: fn, points?}]
  constructor(el, series, { height = 200 } = {}) {
    this.el = el;
    this.series = series;
    this.height = height;
    this.data = [[], ...series.map(() => [])];
    this.plot = null;
    charts.add(this);
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(el);
  }

  options() {
    const fg = cssVar("--muted");
    const grid = cssVar("--line");
    const axis = (scale, side) => ({ scale, side, stroke: fg, grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid }, size: 50 });
    const scales = [...new Set(this.series.map((s) => s.scale || "y"))];
    return {
      width: Math.max(200, this.el.clientWidth || 300),
      height: this.height,
      cursor: { drag: { x: false, y: false } },
      scales: Object.fromEntries(scales.map((s) => [s, { auto: true, range: (u, min, max) => [0, Math.max(1, max)] }])),
      axes: [{ stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        ...scales.map((s, i) => axis(s, i === 0 ? 3 : 1))],
      series: [{}, ...this.series.map((s) => {
        const color = cssVar(s.color);
        return {
          label: s.label, stroke: color, width: 2, scale: s.scale || "y",
          fill: s.bars ? color : undefined,
          paths: s.bars && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
          value: (u, v) => (v == null ? "–" : s.fmt ? s.fmt(v) : String(v)),
          points: { show: !!s.points },
        };
      })],
    };
  }

  set(xs, ys) {
    this.data = [xs, ...ys];
    if (!window.uPlot) return;
    if (!this.plot) {
      this.el.textContent = "";
      this.plot = new window.uPlot(this.options(), this.data, this.el);
    } else {
      this.plot.setData(this.data);
    }
  }

  resize() {
    if (this.plot && this.el.clientWidth) this.plot.setSize({ width: this.el.clientWidth, height: this.height });
  }

  restyle() {
    if (!this.plot) return;
    this.plot.destroy();
    this.plot = null;
    this.set(this.data[0], this.data.slice(1));
  }

  destroy() {
    this.observer.disconnect();
    if (this.plot) this.plot.destroy();
    charts.delete(this);
  }
}

export function restyleAll() {
  for (const c of charts) c.restyle();
}

export const epoch = (iso) => Date.parse(iso) / 1000;
