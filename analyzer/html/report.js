// gpumem report page: draws the embedded data (script#report-data) with inline SVG.
// Every string from a trace goes into the page through textContent or setAttribute, never as
// markup, so a marker that looks like a script tag shows as text. See docs/report-html.md.
(function () {
  "use strict";

  const errorsBox = document.getElementById("errors");
  function reportError(message) {
    const line = document.createElement("div");
    line.textContent = message;
    errorsBox.appendChild(line);
  }
  window.addEventListener("error", (e) =>
    reportError("Error: " + e.message + " (line " + e.lineno + ")"));
  window.addEventListener("unhandledrejection", (e) =>
    reportError("Error: " + (e.reason && e.reason.message ? e.reason.message : e.reason)));

  // ---- formatting: the same units as the terminal summary (binary units, 2 decimals) ----
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function fmtBytes(bytes) {
    let v = Number(bytes);
    let u = 0;
    while (v >= 1024 && u < 5) {
      v /= 1024;
      u++;
    }
    return u === 0 ? String(Math.round(v)) + " B" : v.toFixed(2) + " " + UNITS[u];
  }
  function fmtTime(ns) {
    const a = Math.abs(ns);
    if (a >= 1e9) return (ns / 1e9).toFixed(3) + " s";
    if (a >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
    if (a >= 1e3) return (ns / 1e3).toFixed(1) + " µs";
    return String(ns) + " ns";
  }
  const fmtPct = (share) => (share * 100).toFixed(1) + "%";
  const fmtCount = (n) => Number(n).toLocaleString("en-US");
  const plural = (n, word) => fmtCount(n) + " " + word + (Number(n) === 1 ? "" : "s");

  // ---- DOM helpers: text only through textContent ----
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const SVGNS = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }
  const byId = (id) => document.getElementById(id);

  // ---- table helper: columns = [{title, num, cell(row) -> string | Node}] ----
  function fillTable(table, columns, rows, emptyText, extraRows) {
    clear(table);
    const head = el("thead");
    const tr = el("tr");
    for (const c of columns) {
      const cls = [c.num ? "num" : "", c.cls || ""].filter(Boolean).join(" ");
      tr.appendChild(el("th", cls ? { class: cls } : {}, c.title));
    }
    head.appendChild(tr);
    table.appendChild(head);
    const body = el("tbody");
    if (rows.length === 0) {
      body.appendChild(el("tr")).appendChild(
        el("td", { class: "empty", colspan: String(columns.length) }, emptyText));
    }
    rows.forEach((row, i) => {
      const r = el("tr");
      for (const c of columns) {
        const td = el("td", c.num ? { class: "num" } : {});
        const v = c.cell(row, i);
        if (v instanceof Node) td.appendChild(v);
        else td.textContent = v === undefined || v === null ? "" : String(v);
        r.appendChild(td);
      }
      if (row.onclick) {
        r.style.cursor = "pointer";
        r.addEventListener("click", row.onclick);
      }
      body.appendChild(r);
    });
    for (const extra of extraRows || []) {
      const r = el("tr", { class: extra.cls || "more" });
      extra.cells.forEach((text, i) => {
        const num = columns[i] && columns[i].num;
        r.appendChild(el("td", num ? { class: "num" } : {}, text));
      });
      body.appendChild(r);
    }
    table.appendChild(body);
  }

  // ---- scales and ticks ----
  function linear(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    const f = (v) => r0 + ((v - d0) / span) * (r1 - r0);
    f.invert = (p) => d0 + ((p - r0) / (r1 - r0)) * span;
    return f;
  }
  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
  }
  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const step = niceStep(hi - lo, count);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }
  // Byte axis: ticks at round numbers of one binary unit.
  function byteTicks(max, count) {
    let u = 0;
    while (max / Math.pow(1024, u) >= 1024 && u < 5) u++;
    const scale = Math.pow(1024, u);
    return ticks(0, max / scale, count).map((v) => ({
      value: v * scale,
      label: (Number.isInteger(Math.round(v * 100) / 100) ? String(Math.round(v)) : String(+v.toFixed(2))) + " " + UNITS[u],
    }));
  }
  // Time axis: one unit for the whole visible span.
  function timeTicks(t0, t1, count) {
    const span = t1 - t0;
    const unit = span >= 2e9 ? [1e9, "s"] : span >= 2e6 ? [1e6, "ms"] : span >= 2e3 ? [1e3, "µs"] : [1, "ns"];
    return ticks(t0 / unit[0], t1 / unit[0], count).map((v) => ({
      value: v * unit[0],
      label: String(+v.toFixed(6)) + " " + unit[1],
    }));
  }

  // Index of the last point at or before t (the value in force at t), or -1.
  function pointAt(ts, t) {
    let lo = 0, hi = ts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ts[mid] <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  // Step path through the points (memory holds its value until the next event).
  function stepPath(ts, vs, i0, i1, x, y, xEnd) {
    let d = "";
    for (let i = i0; i <= i1; i++) {
      const px = x(ts[i]).toFixed(1), py = y(vs[i]).toFixed(1);
      d += i === i0 ? "M" + px + "," + py : "H" + px + "V" + py;
    }
    return d + "H" + xEnd.toFixed(1);
  }

  // ---- the timeline chart ----
  function drawTimeline(container, dev, domain, onZoom) {
    clear(container);
    const tl = dev.timeline;
    // NVTX ranges on several threads: one strip per thread under the chart (dev.lanes).
    const lanes = dev.lanes || [], laneH = 14;
    const extra = lanes.length ? lanes.length * (laneH + 2) + 6 : 0;
    const W = Math.max(container.clientWidth || 1100, 480), H = 340 + extra;
    const m = { l: 72, r: 58, t: 24, b: 30 };
    const pw = W - m.l - m.r, ph = H - extra - m.t - m.b;
    const [t0, t1] = domain;
    const x = linear(t0, t1, m.l, m.l + pw);
    let ymax = Math.max(dev.peak.reserved, dev.peak.allocated, 1);
    if (dev.limit > 0) ymax = Math.max(ymax, dev.limit);
    const yTicks = byteTicks(ymax * 1.08, 5);
    const ytop = Math.max(yTicks[yTicks.length - 1].value, ymax * 1.08);
    const y = linear(0, ytop, m.t + ph, m.t);
    const yf = linear(0, 1, m.t + ph, m.t);

    const svg = svgEl("svg", { id: "timeline-svg", viewBox: "0 0 " + W + " " + H, height: H,
                               role: "img", "aria-label": "allocated and reserved bytes over time" });
    const clipId = "plot-clip";
    const defs = svgEl("defs");
    const clip = svgEl("clipPath", { id: clipId });
    clip.appendChild(svgEl("rect", { x: m.l, y: m.t - 20, width: pw,
                                     height: ph + 20 + (extra ? m.b + extra : 0) }));
    defs.appendChild(clip);
    svg.appendChild(defs);

    // phase bands (outermost phases) with their names
    const bands = svgEl("g", { "clip-path": "url(#" + clipId + ")", class: "bands" });
    const laneY = (l) => m.t + ph + m.b + 2 + l * (laneH + 2);
    const laneLabels = svgEl("g", { class: "lanes" });  // outside the clip: in the left margin
    lanes.forEach((lane, l) => {
      laneLabels.appendChild(svgEl("text", { class: "lane-label", x: m.l - 8,
                                             y: laneY(l) + laneH - 3, "text-anchor": "end" },
                                   lane.label));
    });
    svg.appendChild(laneLabels);
    dev.bands.forEach((b, i) => {
      if (b.end < t0 || b.start > t1) return;
      const xa = Math.max(x(b.start), m.l), xb = Math.min(x(Math.max(b.end, b.start)), m.l + pw);
      if (lanes.length) {  // a bar in its thread's strip, named when there is room
        const yl = laneY(b.lane || 0);
        bands.appendChild(svgEl("rect", { class: "band lane-band" + (i % 2 ? " odd" : ""), x: xa,
                                          y: yl, width: Math.max(xb - xa, 0.5), height: laneH }));
        const fit = Math.floor((xb - xa - 4) / 6.2);
        if (fit >= 3)
          bands.appendChild(svgEl("text", { class: "band-label", x: xa + 2, y: yl + laneH - 3 },
                                  b.name.length > fit ? b.name.slice(0, fit - 1) + "…" : b.name));
        return;
      }
      bands.appendChild(svgEl("rect", { class: "band" + (i % 2 ? " odd" : ""), x: xa, y: m.t,
                                        width: Math.max(xb - xa, 0.5), height: ph }));
      bands.appendChild(svgEl("line", { class: "band-edge", x1: xa, x2: xa, y1: m.t - 16, y2: m.t + ph }));
      const room = Math.floor((xb - xa - 6) / 6.2);
      if (room >= 3) {
        const name = b.name.length > room ? b.name.slice(0, room - 1) + "…" : b.name;
        bands.appendChild(svgEl("text", { class: "band-label", x: xa + 4, y: m.t - 6 }, name));
      }
    });
    svg.appendChild(bands);

    // instant markers: a thin line and a diamond on top, named on hover
    const marks = svgEl("g", { "clip-path": "url(#" + clipId + ")", class: "marks" });
    (dev.marks || []).forEach((mk) => {
      if (mk.t < t0 || mk.t > t1) return;
      const xm = x(mk.t);
      marks.appendChild(svgEl("line", { class: "mark-line", x1: xm, x2: xm, y1: m.t - 4, y2: m.t + ph }));
      const d = svgEl("path", { class: "mark", d: "M" + xm + "," + (m.t - 10) + "l4,4l-4,4l-4,-4z" });
      d.appendChild(svgEl("title", {}, mk.name + " (thread " + mk.tid + ")"));
      marks.appendChild(d);
    });
    svg.appendChild(marks);

    // grid and axes
    const axis = svgEl("g", { class: "axis" });
    for (const tk of yTicks) {
      axis.appendChild(svgEl("line", { class: "gridline", x1: m.l, x2: m.l + pw, y1: y(tk.value), y2: y(tk.value) }));
      axis.appendChild(svgEl("text", { x: m.l - 8, y: y(tk.value) + 4, "text-anchor": "end" }, tk.label));
    }
    for (const v of [0, 0.25, 0.5, 0.75, 1])
      axis.appendChild(svgEl("text", { x: m.l + pw + 8, y: yf(v) + 4, style: "fill: var(--frag)" },
                             Math.round(v * 100) + "%"));
    for (const tk of timeTicks(t0, t1, Math.max(2, Math.floor(pw / 110)))) {
      const px = x(tk.value);
      if (px < m.l - 0.5 || px > m.l + pw + 0.5) continue;
      axis.appendChild(svgEl("line", { x1: px, x2: px, y1: m.t + ph, y2: m.t + ph + 5, class: "axis-line" }));
      axis.appendChild(svgEl("text", { x: px, y: m.t + ph + 19, "text-anchor": "middle" }, tk.label));
    }
    axis.appendChild(svgEl("line", { class: "axis-line", x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }));
    svg.appendChild(axis);

    // the series, drawn from the points inside the window plus one on each side
    const plot = svgEl("g", { "clip-path": "url(#" + clipId + ")" });
    const n = tl.t.length;
    if (n > 0) {
      const i0 = Math.max(pointAt(tl.t, t0), 0);
      let i1 = pointAt(tl.t, t1);
      i1 = Math.min(Math.max(i1 + 1, i0), n - 1);
      const xEnd = Math.min(x(Math.max(dev.last, tl.t[n - 1])), m.l + pw);
      const base = (y(0)).toFixed(1);
      const startX = x(tl.t[i0]).toFixed(1);
      const rPath = stepPath(tl.t, tl.r, i0, i1, x, y, xEnd);
      const aPath = stepPath(tl.t, tl.a, i0, i1, x, y, xEnd);
      plot.appendChild(svgEl("path", { class: "reserved-area", d: rPath + "V" + base + "H" + startX + "Z" }));
      plot.appendChild(svgEl("path", { class: "alloc-area", d: aPath + "V" + base + "H" + startX + "Z" }));
      plot.appendChild(svgEl("path", { class: "reserved-line", id: "reserved-line", d: rPath }));
      plot.appendChild(svgEl("path", { class: "alloc-line", id: "allocated-line", d: aPath }));
      plot.appendChild(svgEl("path", { class: "frag-line", id: "frag-line", d: stepPath(tl.t, tl.f, i0, i1, x, yf, xEnd) }));
    }
    if (dev.limit > 0) {
      plot.appendChild(svgEl("line", { class: "limit-line", id: "limit-line", x1: m.l, x2: m.l + pw,
                                       y1: y(dev.limit), y2: y(dev.limit) }));
      plot.appendChild(svgEl("text", { class: "limit-label", x: m.l + pw - 6, y: y(dev.limit) - 5,
                                       "text-anchor": "end" }, "limit " + fmtBytes(dev.limit)));
    }
    // failed allocations: a red mark at the top and a faint line down to the axis
    const fails = svgEl("g", { id: "failed-marks" });
    for (const f of dev.failed) {
      if (f.t < t0 || f.t > t1) continue;
      const px = x(f.t);
      fails.appendChild(svgEl("line", { class: "fail-line", x1: px, x2: px, y1: m.t, y2: m.t + ph }));
      const mark = svgEl("path", { class: "fail-mark", d: "M" + (px - 5) + "," + (m.t - 1) + "h10l-5,8z" });
      mark.appendChild(svgEl("title", {}, "allocation of " + fmtBytes(f.bytes) + " failed at " + fmtTime(f.t)));
      fails.appendChild(mark);
    }
    plot.appendChild(fails);
    // out-of-memory failures (ooms[]): a mark on the axis each; a click opens its explanation
    const ooms = svgEl("g", { id: "oom-marks" });
    (dev.ooms || []).forEach((o, k) => {
      if (o.t < t0 || o.t > t1) return;
      const px = x(o.t);
      const mark = svgEl("path", { class: "oom-mark oom-" + o.outcome, id: "oom-mark-" + k,
                                   d: "M" + px + "," + (m.t + ph - 9) + "l6,9h-12z" });
      mark.appendChild(svgEl("title", {}, "out of memory (" + o.outcome + "): " + o.api + " of " +
                             fmtBytes(o.requested) + " at " + fmtTime(o.t) + "; click for why"));
      mark.addEventListener("click", () => openOom(k));
      ooms.appendChild(mark);
    });
    plot.appendChild(ooms);
    // the peak
    if (dev.peak.allocated > 0 && dev.peak.t >= t0 && dev.peak.t <= t1) {
      const px = x(dev.peak.t), py = y(dev.peak.allocated);
      plot.appendChild(svgEl("circle", { class: "peak-dot", id: "peak-dot", cx: px, cy: py, r: 5 }));
      const right = px < m.l + pw - 160;
      plot.appendChild(svgEl("text", { class: "peak-label", id: "peak-label", x: px + (right ? 9 : -9), y: py - 8,
                                       "text-anchor": right ? "start" : "end" },
                             "peak " + fmtBytes(dev.peak.allocated)));
    }
    svg.appendChild(plot);

    // interaction: hover, drag to zoom, double-click to reset
    const tip = byId("tooltip");
    attachCursor(container, svg, W, m, pw, ph, x, (t, evt) => {
      if (t === null) tip.hidden = true;
      else showPointTip(tip, dev, t, evt);
    }, onZoom);
  }

  // A time chart's interaction, shared by the timeline and the chart by site: a cursor that
  // follows the mouse (onHover(t, evt); onHover(null) when it leaves), drag to zoom
  // (onZoom([t0, t1])), double-click to reset (onZoom(null)).
  function attachCursor(container, svg, W, m, pw, ph, x, onHover, onZoom) {
    const cursor = svgEl("line", { class: "cursor", y1: m.t, y2: m.t + ph, visibility: "hidden" });
    const sel = svgEl("rect", { class: "selection", y: m.t, height: ph, width: 0, visibility: "hidden" });
    const overlay = svgEl("rect", { x: m.l, y: m.t, width: pw, height: ph, fill: "transparent",
                                    style: "cursor: crosshair" });
    svg.appendChild(cursor);
    svg.appendChild(sel);
    svg.appendChild(overlay);
    container.appendChild(svg);

    const toPlotX = (evt) => {
      const box = svg.getBoundingClientRect();
      return ((evt.clientX - box.left) / box.width) * W;
    };
    let dragFrom = null;
    overlay.addEventListener("mousedown", (evt) => {
      dragFrom = toPlotX(evt);
      evt.preventDefault();
    });
    overlay.addEventListener("mousemove", (evt) => {
      const px = Math.min(Math.max(toPlotX(evt), m.l), m.l + pw);
      cursor.setAttribute("x1", px);
      cursor.setAttribute("x2", px);
      cursor.setAttribute("visibility", "visible");
      if (dragFrom !== null) {
        sel.setAttribute("x", Math.min(dragFrom, px));
        sel.setAttribute("width", Math.abs(px - dragFrom));
        sel.setAttribute("visibility", "visible");
      }
      onHover(x.invert(px), evt);
    });
    overlay.addEventListener("mouseleave", () => {
      cursor.setAttribute("visibility", "hidden");
      onHover(null, null);
    });
    window.addEventListener("mouseup", function up(evt) {
      if (dragFrom === null) return;
      const px = Math.min(Math.max(toPlotX(evt), m.l), m.l + pw);
      const a = Math.min(dragFrom, px), b = Math.max(dragFrom, px);
      dragFrom = null;
      sel.setAttribute("visibility", "hidden");
      if (b - a >= 4) {
        window.removeEventListener("mouseup", up);
        onZoom([x.invert(a), x.invert(b)]);
      }
    });
    overlay.addEventListener("dblclick", () => onZoom(null));
  }

  // Innermost phase holding t (rows carry nested phases, bands the outermost ones).
  function phaseAt(dev, t) {
    let best = null;
    for (const p of dev.phase_rows.concat(dev.bands))
      if (p.start <= t && t <= p.end && (!best || p.depth > best.depth)) best = p;
    return best;
  }

  function showPointTip(tip, dev, t, evt) {
    const tl = dev.timeline;
    const i = pointAt(tl.t, t);
    clear(tip);
    const line = (k, v) => {
      const d = el("div");
      d.appendChild(el("span", { class: "k" }, k));
      d.appendChild(document.createTextNode(v));
      tip.appendChild(d);
    };
    line("time", fmtTime(Math.round(t)));
    if (i >= 0) {
      line("allocated", fmtBytes(tl.a[i]));
      line("reserved", fmtBytes(tl.r[i]));
      line("fragmentation", fmtPct(tl.f[i]));
    } else {
      line("allocated", "0 B");
    }
    const p = phaseAt(dev, t);
    if (p) line("phase", p.name);
    tip.hidden = false;
    const left = Math.min(evt.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    tip.style.left = left + "px";
    tip.style.top = evt.clientY + 14 + "px";
  }

  // ---- horizontal bar chart: [{label, value, text}] ----
  function drawBars(container, items, id) {
    clear(container);
    if (items.length === 0) return;
    const W = Math.max(container.clientWidth || 600, 320), rowH = 22, m = { l: 190, r: 84 };
    const H = items.length * rowH + 6;
    const svg = svgEl("svg", { id: id, viewBox: "0 0 " + W + " " + H, height: H, role: "img" });
    const max = Math.max(...items.map((it) => it.value), 1);
    const x = linear(0, max, 0, W - m.l - m.r);
    items.forEach((it, i) => {
      const yy = i * rowH + 3;
      const label = it.label.length > 30 ? it.label.slice(0, 29) + "…" : it.label;
      const t = svgEl("text", { x: m.l - 8, y: yy + 14, "text-anchor": "end" }, label);
      t.appendChild(svgEl("title", {}, it.label));
      svg.appendChild(t);
      svg.appendChild(svgEl("rect", { class: "bar" + (it.alt ? " alt" : ""), x: m.l, y: yy + 3,
                                      width: Math.max(x(it.value), 1), height: rowH - 8, rx: 2 }));
      svg.appendChild(svgEl("text", { class: "bar-label", x: m.l + Math.max(x(it.value), 1) + 6, y: yy + 14 }, it.text));
    });
    container.appendChild(svg);
  }

  // ---- vertical bars for the size histogram ----
  function drawColumns(container, buckets) {
    clear(container);
    if (buckets.length === 0) return;
    const W = Math.max(container.clientWidth || 600, 320), H = 190, m = { l: 48, r: 8, t: 16, b: 34 };
    const svg = svgEl("svg", { id: "hist-svg", viewBox: "0 0 " + W + " " + H, height: H, role: "img" });
    const max = Math.max(...buckets.map((b) => b.count), 1);
    const bw = (W - m.l - m.r) / buckets.length;
    const y = linear(0, max, H - m.b, m.t);
    for (const v of ticks(0, max, Math.min(4, max))) {  // counts: whole numbers only
      svg.appendChild(svgEl("line", { class: "gridline", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
      svg.appendChild(svgEl("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmtCount(v)));
    }
    const every = Math.ceil(buckets.length / Math.max(1, Math.floor((W - m.l) / 64)));
    buckets.forEach((b, i) => {
      const bx = m.l + i * bw;
      const r = svgEl("rect", { class: "bar", x: bx + 2, y: y(b.count), width: Math.max(bw - 4, 1),
                                height: Math.max(H - m.b - y(b.count), b.count ? 1 : 0), rx: 2 });
      r.appendChild(svgEl("title", {}, sizeRange(b.min, b.max) + ": " + fmtCount(b.count) + " allocations, " + fmtBytes(b.bytes)));
      svg.appendChild(r);
      if (i % every === 0)
        svg.appendChild(svgEl("text", { x: bx + bw / 2, y: H - m.b + 15, "text-anchor": "middle" }, fmtBytes(b.min).replace(".00", "")));
    });
    svg.appendChild(svgEl("text", { x: m.l, y: H - 4 }, "allocation size (at least)"));
    container.appendChild(svg);
  }

  const sizeRange = (lo, hi) => fmtBytes(lo) + " – " + fmtBytes(hi);

  // A group row's description: its call stack, or its size class.
  function rowLabel(r) {
    if (r.frames === undefined) return sizeRange(r.min, r.max);
    if (r.python_line) return r.python_line;
    if (r.site === 0) return "(no call stack recorded)";
    if (r.frames.length === 0) return "site " + r.site + " (stack not in trace)";
    return r.frames[0];
  }
  function rowCell(r) {
    if (r.frames === undefined || r.frames.length <= 1) return rowLabel(r);
    // A Python line's row: that line, then its callers (the frames after it in the stack).
    const at = r.python_line ? r.frames.indexOf(r.python_line) : 0;
    const frames = at >= 0 ? r.frames.slice(at) : [r.python_line].concat(r.frames);
    const box = el("div", { class: "frames" });
    box.appendChild(document.createTextNode(frames[0]));
    for (const f of frames.slice(1)) {
      box.appendChild(document.createTextNode("\n"));
      box.appendChild(el("span", { class: "from" }, "  from " + f));
    }
    return box;
  }

  function groupTable(table, rows, rest, total, emptyText) {
    const cols = [
      { title: "#", num: true, cell: (r, i) => i + 1 },
      { title: "where", cell: rowCell },
      { title: "allocations", num: true, cell: (r) => fmtCount(r.count) },
      { title: "bytes", num: true, cell: (r) => fmtBytes(r.bytes) },
      { title: "share", num: true, cell: (r) => (total > 0 ? fmtPct(r.bytes / total) : "") },
    ];
    const extra = [];
    if (rest.rows > 0)
      extra.push({ cells: ["", rest.rows + " more groups", fmtCount(rest.count), fmtBytes(rest.bytes),
                           total > 0 ? fmtPct(rest.bytes / total) : ""] });
    if (rows.length > 0) {
      let count = rest.count;
      for (const r of rows) count += r.count;
      extra.push({ cls: "total", cells: ["", "total", fmtCount(count), fmtBytes(total), total > 0 ? "100.0%" : ""] });
    }
    fillTable(table, cols, rows, emptyText, extra);
  }

  // ---- memory over time by allocation site (timeline_by_site): stacked step areas ----
  const siteColor = (k, n) => (k < n ? "var(--s" + (k % 10) + ")" : "var(--s-other)");
  function siteName(s) {
    if (s.python_line) return s.python_line;
    return rowLabel(s);
  }
  // The layers bottom to top: the series (largest at the peak first), then other.
  function siteLayers(bs) {
    return bs.s.concat([bs.other]);
  }
  // Area between two step functions over points i0..i1: top left to right, bottom back.
  function bandPath(ts, top, bottom, i0, i1, x, y, xEnd) {
    let d = stepPath(ts, top, i0, i1, x, y, xEnd);
    d += "V" + y(bottom[i1]).toFixed(1);
    for (let i = i1; i > i0; i--) d += "H" + x(ts[i]).toFixed(1) + "V" + y(bottom[i - 1]).toFixed(1);
    return d + "H" + x(ts[i0]).toFixed(1) + "Z";
  }
  function drawSites(container, dev, domain, onHover, onZoom) {
    clear(container);
    const tl = dev.timeline, bs = dev.by_site, layers = siteLayers(bs);
    const W = Math.max(container.clientWidth || 800, 400), H = 300;
    const m = { l: 72, r: 16, t: 12, b: 30 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const [t0, t1] = domain;
    const x = linear(t0, t1, m.l, m.l + pw);
    const ymax = Math.max(dev.peak.allocated, 1);
    const yTicks = byteTicks(ymax * 1.05, 5);
    const y = linear(0, Math.max(yTicks[yTicks.length - 1].value, ymax * 1.05), m.t + ph, m.t);
    const svg = svgEl("svg", { id: "sites-svg", viewBox: "0 0 " + W + " " + H, height: H, role: "img",
                               "aria-label": "allocated bytes over time, stacked by allocation site" });
    const defs = svgEl("defs");
    const clip = svgEl("clipPath", { id: "sites-clip" });
    clip.appendChild(svgEl("rect", { x: m.l, y: m.t, width: pw, height: ph }));
    defs.appendChild(clip);
    svg.appendChild(defs);
    const axis = svgEl("g", { class: "axis" });
    for (const tk of yTicks) {
      axis.appendChild(svgEl("line", { class: "gridline", x1: m.l, x2: m.l + pw, y1: y(tk.value), y2: y(tk.value) }));
      axis.appendChild(svgEl("text", { x: m.l - 8, y: y(tk.value) + 4, "text-anchor": "end" }, tk.label));
    }
    for (const tk of timeTicks(t0, t1, Math.max(2, Math.floor(pw / 110)))) {
      const px = x(tk.value);
      if (px < m.l - 0.5 || px > m.l + pw + 0.5) continue;
      axis.appendChild(svgEl("line", { x1: px, x2: px, y1: m.t + ph, y2: m.t + ph + 5, class: "axis-line" }));
      axis.appendChild(svgEl("text", { x: px, y: m.t + ph + 19, "text-anchor": "middle" }, tk.label));
    }
    axis.appendChild(svgEl("line", { class: "axis-line", x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }));
    svg.appendChild(axis);
    const plot = svgEl("g", { "clip-path": "url(#sites-clip)", id: "sites-areas" });
    const n = tl.t.length;
    if (n > 0) {
      const i0 = Math.max(pointAt(tl.t, t0), 0);
      const i1 = Math.min(Math.max(pointAt(tl.t, t1) + 1, i0), n - 1);
      const xEnd = Math.min(x(Math.max(dev.last, tl.t[n - 1])), m.l + pw);
      let below = new Array(n).fill(0);
      layers.forEach((vs, k) => {
        const top = below.map((b, i) => b + vs[i]);
        const path = svgEl("path", { class: "site-area", "data-series": String(k),
                                     d: bandPath(tl.t, top, below, i0, i1, x, y, xEnd) });
        path.style.fill = siteColor(k, bs.sites.length);
        plot.appendChild(path);
        below = top;
      });
    }
    svg.appendChild(plot);
    attachCursor(container, svg, W, m, pw, ph, x, onHover, onZoom);
  }

  // ---- the page ----
  const data = JSON.parse(byId("report-data").textContent);
  const devices = data.devices;
  const multi = data.traces.length > 1;
  let current = 0;
  let zoom = null;

  function deviceName(d) {
    const who = d.rank >= 0 ? "rank " + d.rank : "pid " + d.pid;
    return (multi ? who + " · " : "") + "GPU " + d.device;
  }

  function renderMeta() {
    const meta = byId("meta");
    clear(meta);
    const hosts = [...new Set(data.traces.map((t) => t.host))];
    if (hosts.length > 1) byId("host").textContent = hosts.length + " hosts: " + hosts.join(", ");
    let duration = 0, events = 0;
    for (const t of data.traces) {
      duration = Math.max(duration, t.last - t.first);
      events += t.events;
    }
    const ranks = data.traces.filter((t) => t.rank >= 0).length;
    const parts = [
      ["processes", String(data.traces.length) + (ranks ? " (" + ranks + " ranks)" : "")],
      ["devices", String(devices.length)],
      ["duration", fmtTime(duration)],
      ["events", fmtCount(events)],
    ];
    const pools = [...new Set(data.traces.map((t) => t.pool))];
    parts.push(["pool", pools.join(", ")]);
    if (data.traces.some((t) => t.simulated)) parts.push(["device", "simulated"]);
    for (const [k, v] of parts) {
      const s = el("span", { "data-key": k }, k + " ");
      s.appendChild(el("b", {}, v));
      meta.appendChild(s);
      meta.appendChild(document.createTextNode(" "));
    }
    const notices = byId("notices");
    for (const t of data.traces) {
      if (t.truncated)
        notices.appendChild(el("p", { class: "notice" }, t.path + " is truncated (" + t.truncated_reason +
          "): the numbers cover what was written before it stopped."));
      if (t.torn > 0)
        notices.appendChild(el("p", { class: "notice" }, t.path + ": " + t.torn + " torn records were skipped."));
      if (t.dropped)
        notices.appendChild(el("p", { class: "notice" }, t.path + " is bounded (GPUMEM_TRACE_MAX): " +
          t.dropped.records + " records from " + (t.dropped.first / 1e9).toFixed(3) + " s to " +
          (t.dropped.last / 1e9).toFixed(3) + " s were dropped (" + t.dropped.kept + " kept in its digest); " +
          "peaks, leaks, live sets and counts cover the whole run, the timeline is coarse in that span."));
    }
    if (devices.length === 0)
      notices.appendChild(el("p", { class: "notice" }, "These traces hold no device allocations."));
  }

  function renderPicker() {
    const nav = clear(byId("device-picker"));
    if (devices.length < 2) return;
    devices.forEach((d, i) => {
      const b = el("button", { type: "button", "aria-pressed": String(i === current) }, deviceName(d));
      b.addEventListener("click", () => select(i));
      nav.appendChild(b);
    });
  }

  function card(id, label, value, detail, formula, warn) {
    const c = el("div", { class: "card" + (warn ? " warn" : ""), id: id, tabindex: "0", title: formula });
    c.appendChild(el("div", { class: "label" }, label));
    c.appendChild(el("div", { class: "value" }, value));
    c.appendChild(el("div", { class: "detail" }, detail));
    c.appendChild(el("div", { class: "tip" }, formula));
    return c;
  }

  function renderCards(d) {
    const box = clear(byId("cards"));
    const where = (t, phase) => "at " + fmtTime(t) + (phase ? " in " + phase : "");
    box.appendChild(card("card-peak-allocated", "Peak allocated", fmtBytes(d.peak.allocated),
      where(d.peak.t, d.peak.phase),
      "max over the run of allocated; allocated = Σ bytes of the live allocations (what the program holds)"));
    box.appendChild(card("card-peak-reserved", "Peak reserved", fmtBytes(d.peak.reserved),
      where(d.peak.reserved_t, null),
      "max over the run of reserved; reserved = Σ bytes taken from the device (a pool's segments; equals allocated without a pool)"));
    const cap = d.limit > 0 ? d.limit : d.capacity;
    box.appendChild(card("card-capacity", d.limit > 0 ? "Limit" : "Capacity", cap > 0 ? fmtBytes(cap) : "unknown",
      (d.limit > 0 ? "capacity " + fmtBytes(d.capacity) + "; " : "") +
        (cap > 0 ? "peak reserved = " + fmtPct(d.peak.reserved / cap) : ""),
      d.limit > 0 ? "limit = the gpumem cap in force (GPUMEM_LIMIT); capacity = physical device memory"
                  : "capacity = physical device memory reported by the device; no gpumem limit was set",
      cap > 0 && d.peak.reserved > cap));
    const u = d.frag.utilization;
    box.appendChild(card("card-utilization", "Utilization", u === null ? "n/a" : fmtPct(u),
      "waste at peak " + fmtBytes(d.frag.waste_at_peak),
      "peak allocated / peak reserved (GMLake); waste at peak = reserved − allocated at the peak instant (PyTorch)"));
    box.appendChild(card("card-fragmentation", "Fragmentation", fmtPct(d.frag.at_peak),
      "at the peak; max " + fmtPct(d.frag.max) + " at " + fmtTime(d.frag.max_t),
      "1 − largest free block / total free, inside reserved segments, at the peak-allocated instant (TensorFlow BFC)"));
    box.appendChild(card("card-leaks", "Leaks", fmtBytes(d.final.leaked_bytes),
      plural(d.final.leaked_allocations, "allocation") + " live at exit",
      "Σ bytes of the allocations still live when the trace ended", d.final.leaked_bytes > 0));
    box.appendChild(card("card-failed", "Failed allocations", fmtCount(d.counts.alloc_failed),
      "of " + fmtCount(d.counts.alloc + d.counts.alloc_failed) + " allocation calls",
      "count of allocation calls that returned an out-of-memory error", d.counts.alloc_failed > 0));
  }

  function renderLegend(d) {
    const box = clear(byId("timeline-legend"));
    const item = (label, color, dash) => {
      const s = el("span");
      const i = el("i", { class: dash ? "dash" : "" });
      i.style.background = color;
      i.style.borderColor = color;
      s.appendChild(i);
      s.appendChild(document.createTextNode(label));
      box.appendChild(s);
    };
    item("allocated", "var(--alloc)");
    item("reserved", "var(--reserved)");
    item("fragmentation (right axis)", "var(--frag)", true);
    if (d.limit > 0) item("limit", "var(--limit)", true);
    if (d.failed.length > 0) item("failed allocation", "var(--fail)");
  }

  function renderTimeline(d) {
    const full = [Math.min(d.first, d.timeline.t.length ? d.timeline.t[0] : d.first),
                  Math.max(d.last, d.timeline.t.length ? d.timeline.t[d.timeline.t.length - 1] : d.last)];
    if (full[1] <= full[0]) full[1] = full[0] + 1;
    drawTimeline(byId("timeline"), d, zoom || full, (z) => {
      zoom = z;
      renderTimeline(d);
    });
    renderSites(d);  // the same window of time
  }

  // The breakdown beside the chart: at point i (the peak's until the cursor moves).
  function siteTable(d, i, label) {
    const bs = d.by_site, layers = siteLayers(bs), tl = d.timeline;
    const total = i >= 0 ? tl.a[i] : 0;
    const at = clear(byId("sites-at"));
    at.appendChild(document.createTextNode(label + " "));
    at.appendChild(el("b", {}, i >= 0 ? fmtTime(tl.t[i]) : "the start"));
    at.appendChild(document.createTextNode(" · allocated "));
    at.appendChild(el("b", {}, fmtBytes(total)));
    const rows = layers.map((vs, k) => ({ k: k, bytes: i >= 0 ? vs[i] : 0, site: bs.sites[k] }));
    const cols = [
      { title: "", cell: (r) => {
          const sw = el("span", { class: "swatch" });
          sw.style.background = siteColor(r.k, bs.sites.length);
          return sw;
        } },
      { title: bs.grouped_by === "python_line" ? "Python line (or site)" : "call site", cell: (r) => {
          const cell = el("div", { class: "where" });
          if (!r.site) {
            cell.textContent = "other sites";
            return cell;
          }
          cell.textContent = siteName(r.site);
          cell.title = r.site.frames.join("\n");
          return cell;
        } },
      { title: "bytes", num: true, cell: (r) => fmtBytes(r.bytes) },
      { title: "share", num: true, cell: (r) => (total > 0 ? fmtPct(r.bytes / total) : "") },
    ];
    for (const r of rows)
      if (r.site)
        r.onclick = (evt) => {
          // The whole stack one click away: the row's cell shows every frame, or just the first.
          const cell = evt.currentTarget.querySelector("div.where");
          const open = cell.getAttribute("data-open") === "1";
          cell.textContent = open ? siteName(r.site) : [siteName(r.site)].concat(
            r.site.frames.map((f) => "  " + f)).join("\n");
          cell.setAttribute("data-open", open ? "0" : "1");
        };
    fillTable(byId("sites-table"), cols, rows, "", [
      { cls: "total", cells: ["", "total", fmtBytes(total), total > 0 ? "100.0%" : ""] }]);
    const trs = byId("sites-table").querySelectorAll("tbody tr");
    rows.forEach((r, k) => { if (!r.site && trs[k]) trs[k].classList.add("other"); });
  }

  function renderSites(d) {
    const panel = byId("sites-panel");
    panel.hidden = !d.by_site;
    if (!d.by_site) return;
    const bs = d.by_site;
    byId("sites-sub").textContent = (bs.grouped_by === "python_line" ? "by Python source line" : "by call site") +
      "; the " + plural(bs.sites.length, "largest site") + " at the peak, then every other site";
    const full = [Math.min(d.first, d.timeline.t.length ? d.timeline.t[0] : d.first),
                  Math.max(d.last, d.timeline.t.length ? d.timeline.t[d.timeline.t.length - 1] : d.last)];
    if (full[1] <= full[0]) full[1] = full[0] + 1;
    const peakPoint = pointAt(d.timeline.t, d.peak.t);
    siteTable(d, peakPoint, "at the peak,");
    const tip = byId("tooltip");
    drawSites(byId("sites-chart"), d, zoom || full, (t, evt) => {
      if (t === null) {
        tip.hidden = true;
        siteTable(d, peakPoint, "at the peak,");
        return;
      }
      const i = pointAt(d.timeline.t, t);
      siteTable(d, i, "at");
      clear(tip);
      const line = (k, v) => {
        const div = el("div");
        div.appendChild(el("span", { class: "k" }, k));
        div.appendChild(document.createTextNode(v));
        tip.appendChild(div);
      };
      line("time", fmtTime(Math.round(t)));
      line("allocated", i >= 0 ? fmtBytes(d.timeline.a[i]) : "0 B");
      siteLayers(bs).forEach((vs, k) => {
        if (i < 0 || vs[i] === 0) return;
        const name = k < bs.sites.length ? siteName(bs.sites[k]) : "other sites";
        line(name.length > 40 ? name.slice(0, 39) + "…" : name, fmtBytes(vs[i]));
      });
      tip.hidden = false;
      tip.style.left = Math.min(evt.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
      tip.style.top = evt.clientY + 14 + "px";
    }, (z) => {
      zoom = z;
      renderTimeline(d);
    });
  }

  function renderLive(d) {
    const by = { site: "call site", python_line: "Python source line" }[d.peak.grouped_by] || "size class";
    byId("live-sub").textContent = "grouped by " + by +
      "; rows add up to the peak, " + fmtBytes(d.peak.allocated);
    drawBars(byId("live-chart"), d.live.slice(0, 8).map((r) => ({
      label: rowLabel(r), value: r.bytes, text: fmtBytes(r.bytes) })), "live-svg");
    groupTable(byId("live-table"), d.live, d.live_rest, d.peak.allocated, "nothing was live at the peak");
  }

  function renderHistogram(d) {
    let count = 0, bytes = 0;
    for (const b of d.hist) count += b.count, bytes += b.bytes;
    byId("hist-sub").textContent = fmtCount(count) + " allocations, " + fmtBytes(bytes) + " in all; " +
      fmtCount(Math.round(d.churn.allocs_per_second)) + " per second";
    drawColumns(byId("hist-chart"), d.hist);
    fillTable(byId("hist-table"), [
      { title: "size", cell: (b) => sizeRange(b.min, b.max) },
      { title: "allocations", num: true, cell: (b) => fmtCount(b.count) },
      { title: "bytes", num: true, cell: (b) => fmtBytes(b.bytes) },
      { title: "share of allocations", num: true, cell: (b) => (count ? fmtPct(b.count / count) : "") },
    ], d.hist, "no allocations");
  }

  function renderPhases(d) {
    const shown = d.phase_rows.length;
    byId("phase-sub").textContent = d.phases_total === 0 ? "no phase markers in the trace"
      : shown < d.phases_total ? "showing the " + shown + " largest of " + fmtCount(d.phases_total) + " phases, in time order"
      : fmtCount(d.phases_total) + " phases";
    const max = Math.max(d.peak.allocated, 1);
    fillTable(byId("phase-table"), [
      { title: "phase", cell: (p) => {
          const s = el("span", {}, "\u2003".repeat(Math.min(p.depth, 6)) + p.name);
          if (!p.closed) s.appendChild(el("span", { class: "pill bad" }, "still open"));
          return s;
        } },
      { title: "start", num: true, cell: (p) => fmtTime(p.start) },
      { title: "duration", num: true, cell: (p) => fmtTime(p.end - p.start) },
      { title: "peak allocated", num: true, cell: (p) => fmtBytes(p.peak) },
      { title: "", cls: "bar-col", cell: (p) => {
          const bar = el("div", { class: "inline-bar" });
          bar.style.width = ((p.peak / max) * 100).toFixed(1) + "%";
          return bar;
        } },
      { title: "peak at", num: true, cell: (p) => fmtTime(p.peak_t) },
      { title: "peak reserved", num: true, cell: (p) => fmtBytes(p.peak_reserved) },
    ], d.phase_rows, "no phases: mark them with gpumem_phase_begin/end or GPUMEM_PHASE");
  }

  function renderLeaks(d) {
    byId("leak-sub").textContent = plural(d.final.leaked_allocations, "allocation") + ", " +
      fmtBytes(d.final.leaked_bytes);
    groupTable(byId("leak-table"), d.leaks, d.leaks_rest, d.final.leaked_bytes, "no leaks: everything was freed");
  }

  // The OOM panel: each failure's explanation (as `gpumem report --text` prints it) and advice.
  function renderOoms(d) {
    const list = d.ooms || [];
    byId("oom-panel").hidden = list.length === 0;
    const box = clear(byId("oom-list"));
    const final = list.filter((o) => o.outcome === "final").length;
    byId("oom-sub").textContent = fmtCount(list.length) + " on this device: " + fmtCount(final) +
      " final, " + fmtCount(list.length - final) + " retried and succeeded";
    list.forEach((o, k) => {
      const item = el("details", { class: "oom-item oom-" + o.outcome, id: "oom-" + k });
      if (k === 0 && o.outcome === "final") item.setAttribute("open", "");
      item.appendChild(el("summary", {}, (o.outcome === "final" ? "final" : "retried") + ": " +
        o.api + " of " + fmtBytes(o.requested) + " at " + fmtTime(o.t) + ", refused by " +
        o.refused_by + "; " + fmtBytes(o.allocated) + " allocated, " + fmtBytes(o.reserved) +
        " reserved, largest free block " + fmtBytes(o.largest_free)));
      item.appendChild(el("pre", { class: "oom-text" }, o.text));
      for (const a of o.advice) {
        const p = el("p", { class: "oom-advice" });
        p.appendChild(el("span", { class: "pill" }, a.scope));
        p.appendChild(el("code", {}, a.setting));
        p.appendChild(el("span", {}, " because " + a.reason));
        item.appendChild(p);
      }
      box.appendChild(item);
    });
  }
  function openOom(k) {
    const item = byId("oom-" + k);
    if (!item) return;
    item.setAttribute("open", "");
    item.scrollIntoView({ block: "nearest" });
  }

  function renderAnomalies(d) {
    const rows = data.anomalies.filter((a) => a.pid === d.pid && (a.device === d.device || a.device < 0));
    const left = data.anomalies_total - data.anomalies.length;
    byId("anomaly-sub").textContent = fmtCount(rows.length) + " for this process" +
      (left > 0 ? "; " + fmtCount(left) + " more counted but not listed" : "");
    fillTable(byId("anomaly-table"), [
      { title: "kind", cell: (a) => el("span", { class: "pill bad" }, a.kind) },
      { title: "time", num: true, cell: (a) => fmtTime(a.t) },
      { title: "device", num: true, cell: (a) => (a.device >= 0 ? a.device : "") },
      { title: "bytes", num: true, cell: (a) => (a.bytes ? fmtBytes(a.bytes) : "") },
      { title: "in use then", num: true, cell: (a) => (a.in_use === null ? "" : fmtBytes(a.in_use)) },
      { title: "address", cell: (a) => (a.address === "0x0" ? "" : el("code", {}, a.address)) },
      { title: "site", num: true, cell: (a) => (a.site ? a.site : "") },
    ], rows, "no anomalies");
  }

  function renderRanks() {
    if (!data.ranks) return;
    byId("ranks-panel").hidden = false;
    byId("ranks-sub").textContent = fmtCount(data.ranks.processes) + " processes; imbalance (max / mean − 1): allocated " +
      fmtPct(data.ranks.imbalance_allocated) + ", reserved " + fmtPct(data.ranks.imbalance_reserved);
    const items = [];
    devices.forEach((d) => {
      items.push({ label: deviceName(d) + " allocated", value: d.peak.allocated, text: fmtBytes(d.peak.allocated) });
      items.push({ label: deviceName(d) + " reserved", value: d.peak.reserved, text: fmtBytes(d.peak.reserved), alt: true });
    });
    drawBars(byId("ranks-chart"), items.slice(0, 32), "ranks-svg");
    fillTable(byId("rank-table"), [
      { title: "process", cell: (d) => deviceName(d) },
      { title: "host", cell: (d) => d.host },
      { title: "peak allocated", num: true, cell: (d) => fmtBytes(d.peak.allocated) },
      { title: "peak reserved", num: true, cell: (d) => fmtBytes(d.peak.reserved) },
      { title: "frag. at peak", num: true, cell: (d) => fmtPct(d.frag.at_peak) },
      { title: "leaks", num: true, cell: (d) => fmtBytes(d.final.leaked_bytes) },
      { title: "failed", num: true, cell: (d) => fmtCount(d.counts.alloc_failed) },
    ], devices.map((d, i) => Object.assign({}, d, { onclick: () => select(i) })), "");
  }

  // Each shared budget: its peak total, and what each process held at that instant.
  function renderBudgets() {
    const budgets = data.budgets || [];
    if (budgets.length === 0) return;
    byId("budgets-panel").hidden = false;
    byId("budgets-sub").textContent = budgets.map((b) => b.name + " (device " + b.device + "): peak " +
      (b.exact ? "" : "at most ") + fmtBytes(b.peak) + " of " + fmtBytes(b.limit) + " at " +
      fmtTime(b.peak_t)).join("; ");
    const items = [], rows = [];
    budgets.forEach((b) => b.processes.forEach((p) => {
      items.push({ label: b.name + " pid " + p.pid, value: p.at_peak, text: fmtBytes(p.at_peak) });
      rows.push(Object.assign({ budget: b.name, device: b.device, share: b.peak ? p.at_peak / b.peak : 0 }, p));
    }));
    drawBars(byId("budgets-chart"), items.slice(0, 32), "budgets-svg");
    fillTable(byId("budget-table"), [
      { title: "budget", cell: (r) => r.budget },
      { title: "device", num: true, cell: (r) => r.device },
      { title: "pid", num: true, cell: (r) => r.pid },
      { title: "at the budget's peak", num: true, cell: (r) => fmtBytes(r.at_peak) },
      { title: "share", num: true, cell: (r) => fmtPct(r.share) },
      { title: "own peak", num: true, cell: (r) => fmtBytes(r.peak) },
    ], rows, "");
  }

  function renderTraces() {
    fillTable(byId("trace-table"), [
      { title: "trace", cell: (t) => el("code", {}, t.path) },
      { title: "pid", num: true, cell: (t) => t.pid },
      { title: "rank", num: true, cell: (t) => (t.rank >= 0 ? t.rank : "") },
      { title: "host", cell: (t) => t.host },
      { title: "command", cell: (t) => el("code", {}, t.command) },
      { title: "events", num: true, cell: (t) => fmtCount(t.events) },
      { title: "duration", num: true, cell: (t) => fmtTime(t.last - t.first) },
      { title: "pool", cell: (t) => t.pool },
    ], data.traces, "");
  }

  function select(i) {
    current = i;
    zoom = null;
    renderPicker();
    const d = devices[i];
    renderCards(d);
    renderLegend(d);
    renderTimeline(d);
    renderLive(d);
    renderHistogram(d);
    renderPhases(d);
    renderLeaks(d);
    renderOoms(d);
    renderAnomalies(d);
  }

  try {
    renderMeta();
    renderRanks();
    renderBudgets();
    renderTraces();
    if (devices.length > 0) {
      // Open on the device with the largest peak: the one most likely to run out.
      let top = 0;
      devices.forEach((d, i) => { if (d.peak.allocated > devices[top].peak.allocated) top = i; });
      select(top);
    } else {
      for (const id of ["timeline-panel", "live-panel", "hist-panel", "phase-panel", "leak-panel", "anomaly-panel"])
        byId(id).hidden = true;
    }
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => devices.length && select(current), 150);
    });
    document.body.setAttribute("data-rendered", "true");
  } catch (e) {
    reportError("Error: " + (e && e.stack ? e.stack : e));
  }
})();
