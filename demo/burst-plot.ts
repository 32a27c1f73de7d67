/**
 * A live two-series plot on a canvas: throughput (rows/s, filled, left axis) and commit latency
 * (p50 and p99 in ms, lines, right axis) over the last `windowSamples` samples.
 */
import type { BurstSample } from './write-burst.ts';

const COLORS = {
  throughput: '#38bdf8',
  throughputFill: 'rgba(56, 189, 248, 0.18)',
  p50: '#fbbf24',
  p99: '#f87171',
  grid: 'rgba(148, 163, 184, 0.15)',
  text: '#94a3b8',
};

export class BurstPlot {
  private samples: BurstSample[] = [];

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private windowSamples = 120,
  ) {
    this.draw();
  }

  add(sample: BurstSample): void {
    this.samples.push(sample);
    if (this.samples.length > this.windowSamples) this.samples.shift();
    this.draw();
  }

  /** Empties the plot; `windowSamples` sets how many samples span its width from now on. */
  clear(windowSamples = this.windowSamples): void {
    this.windowSamples = Math.max(2, Math.floor(windowSamples));
    this.samples = [];
    this.draw();
  }

  draw(): void {
    const ratio = globalThis.devicePixelRatio || 1;
    const cssWidth = this.canvas.clientWidth || 600;
    const cssHeight = this.canvas.clientHeight || 200;
    if (this.canvas.width !== Math.round(cssWidth * ratio)) this.canvas.width = Math.round(cssWidth * ratio);
    if (this.canvas.height !== Math.round(cssHeight * ratio)) this.canvas.height = Math.round(cssHeight * ratio);
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    const left = 48;
    const right = 48;
    const top = 12;
    const bottom = 22;
    const width = cssWidth - left - right;
    const height = cssHeight - top - bottom;
    const maxRate = niceCeiling(Math.max(10, ...this.samples.map((s) => s.rowsPerSecond)));
    const maxLatency = niceCeiling(Math.max(5, ...this.samples.map((s) => s.latencyP99Ms)));

    ctx.font = '11px ui-monospace, SFMono-Regular, Menlo, monospace';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + (height * i) / 4;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      ctx.fillStyle = COLORS.throughput;
      ctx.textAlign = 'right';
      ctx.fillText(String(Math.round(maxRate * (1 - i / 4))), left - 6, y + 4);
      ctx.fillStyle = COLORS.p99;
      ctx.textAlign = 'left';
      ctx.fillText(`${Math.round(maxLatency * (1 - i / 4))}`, left + width + 6, y + 4);
    }
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = 'left';
    ctx.fillText('rows/s', 4, cssHeight - 6);
    ctx.textAlign = 'right';
    ctx.fillText('ms', cssWidth - 4, cssHeight - 6);
    if (this.samples.length === 0) {
      ctx.textAlign = 'center';
      ctx.fillText('start a write burst to plot throughput and commit latency', left + width / 2, top + height / 2);
      return;
    }
    const x = (i: number): number => left + (width * i) / Math.max(1, this.windowSamples - 1);
    const yRate = (v: number): number => top + height - (height * v) / maxRate;
    const yLatency = (v: number): number => top + height - (height * Math.min(v, maxLatency)) / maxLatency;

    ctx.beginPath();
    ctx.moveTo(x(0), top + height);
    this.samples.forEach((s, i) => ctx.lineTo(x(i), yRate(s.rowsPerSecond)));
    ctx.lineTo(x(this.samples.length - 1), top + height);
    ctx.closePath();
    ctx.fillStyle = COLORS.throughputFill;
    ctx.fill();
    this.line(this.samples.map((s, i) => [x(i), yRate(s.rowsPerSecond)]), COLORS.throughput, 2);
    this.line(this.samples.map((s, i) => [x(i), yLatency(s.latencyP99Ms)]), COLORS.p99, 1.5);
    this.line(this.samples.map((s, i) => [x(i), yLatency(s.latencyP50Ms)]), COLORS.p50, 1.5);
    this.samples.forEach((s, i) => {
      if (s.errors === 0) return;
      ctx.fillStyle = COLORS.p99;
      ctx.beginPath();
      ctx.arc(x(i), top + 4, 3, 0, Math.PI * 2);
      ctx.fill();
    });
  }

  private line(points: [number, number][], color: string, width: number): void {
    const ctx = this.canvas.getContext('2d')!;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    points.forEach(([px, py], i) => (i === 0 ? ctx.moveTo(px, py) : ctx.lineTo(px, py)));
    ctx.stroke();
  }
}

function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}
