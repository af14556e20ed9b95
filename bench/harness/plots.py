"""bench/harness/plots.py: small SVG line and bar charts, written directly
(no plotting library: the harness must run with Debian's python3 alone).

line_chart(path, title, xlabel, ylabel, series, hline=None)
    series: [(label, [(x, y), ...]), ...]; hline: (y, label) drawn dashed.
bar_chart(path, title, xlabel, ylabel, labels, groups)
    labels: bucket names along x; groups: [(label, [count per bucket]), ...].
"""
import html

COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#17becf", "#bcbd22"]
W, H = 760, 360
L, R, T, B = 70, 170, 34, 46


def _nice(hi):
    if hi <= 0:
        return 1.0
    import math
    e = 10 ** math.floor(math.log10(hi))
    for m in (1, 2, 2.5, 5, 10):
        if hi <= m * e:
            return m * e
    return 10 * e


def _fmt(v):
    if abs(v) >= 1e6:
        return "%gM" % (v / 1e6)
    if abs(v) >= 1e3:
        return "%gk" % (v / 1e3)
    return "%g" % round(v, 3)


def _frame(title, xlabel, ylabel):
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>' % (L, html.escape(title)),
           '<text x="%d" y="%d" text-anchor="middle">%s</text>' % (L + (W - L - R) / 2, H - 8,
                                                                  html.escape(xlabel)),
           '<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>'
           % (T + (H - T - B) / 2, T + (H - T - B) / 2, html.escape(ylabel))]
    return out


def _axes(out, xmax, ymax, xticks=None):
    pw, ph = W - L - R, H - T - B
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (L, T, pw, ph))
    for i in range(6):
        y = T + ph - ph * i / 5
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (L, L + pw, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L - 4, y + 4, _fmt(ymax * i / 5)))
    if xticks is None:
        for i in range(6):
            x = L + pw * i / 5
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x, T + ph + 16, _fmt(xmax * i / 5)))


def _legend(out, labels):
    for i, lab in enumerate(labels):
        y = T + 10 + 18 * i
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (W - R + 10, y - 10, COLOURS[i % len(COLOURS)]))
        out.append('<text x="%d" y="%d">%s</text>' % (W - R + 26, y, html.escape(lab)))


def line_chart(path, title, xlabel, ylabel, series, hline=None, ymax=None):
    xs = [x for _, pts in series for x, _ in pts] or [1]
    ys = [y for _, pts in series for _, y in pts] or [1]
    xmax = _nice(max(xs) or 1)
    ymax = ymax or _nice(max(max(ys), hline[0] if hline else 0) or 1)
    pw, ph = W - L - R, H - T - B
    out = _frame(title, xlabel, ylabel)
    _axes(out, xmax, ymax)
    for i, (_, pts) in enumerate(series):
        if not pts:
            continue
        d = " ".join("%.1f,%.1f" % (L + pw * x / xmax, T + ph - ph * min(y, ymax) / ymax) for x, y in pts)
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (COLOURS[i % len(COLOURS)], d))
    if hline:
        y = T + ph - ph * hline[0] / ymax
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="6,4"/>'
                   % (L, L + pw, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L + pw - 4, y - 4, html.escape(hline[1])))
    _legend(out, [s[0] for s in series])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def bar_chart(path, title, xlabel, ylabel, labels, groups):
    ymax = _nice(max([v for _, vals in groups for v in vals] or [1]) or 1)
    pw, ph = W - L - R, H - T - B
    out = _frame(title, xlabel, ylabel)
    _axes(out, 1, ymax, xticks=labels)
    n = max(1, len(labels))
    slot = pw / n
    bw = slot * 0.8 / max(1, len(groups))
    for j, lab in enumerate(labels):
        out.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>'
                   % (L + slot * (j + 0.5), T + ph + 14, html.escape(lab)))
    for i, (_, vals) in enumerate(groups):
        for j, v in enumerate(vals):
            h = ph * min(v, ymax) / ymax
            x = L + slot * j + slot * 0.1 + bw * i
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (x, T + ph - h, bw, h, COLOURS[i % len(COLOURS)]))
    _legend(out, [g[0] for g in groups])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
