// The Affinity tab's dashboard in Locust's web UI (lambda_affinity/report/webui.py).
// It reads only the fields docs/schema.md documents (tests/unit/test_schema.py checks).
// Self-contained (no library, no CDN): headline figures, the histogram, the
// run's time series as inline SVG charts, a sortable per-user table with
// search, and the downloads. While the tab is open it polls
// affinity/dashboard.json and sits where Locust renders the tab's (empty)
// table. Colours come from CSS variables chosen by Locust's light/dark theme,
// read from the page itself, so a theme switch needs no redraw.
(function () {
  "use strict";
  var CONFIG = window.lambdaAffinity || {};
  var TAB = CONFIG.tab || "affinity";
  var CHARTS = CONFIG.charts || [];
  var POLL_MS = CONFIG.poll_ms || 2000;
  var ID = "lambda-affinity-dashboard";
  var MAX_ROWS = 500;  // rows drawn at once: the browser stays quick with 10 000 users
  var COLUMNS = [["user", "User"], ["requests", "Requests"], ["max_share", "Max-share"], ["warm_hits", "Warm hits"],
                 ["environments", "Environments"], ["cold_starts", "Cold starts"],
                 ["new_environment_calls", "New-env calls"], ["switches", "Switches"]];
  // The per-endpoint table (replies of a wrapped function, by Locust stats name), shown when there are any.
  var ENDPOINT_COLUMNS = [["name", "Name", "text"], ["requests", "Replies", "count"], ["invalid", "Invalid", "count"],
                          ["cold_starts", "Cold starts", "count"],
                          ["new_environment_calls", "New-env calls", "count"], ["stay_rate", "Stay", "rate"],
                          ["warm_rate", "Warm", "rate"]];
  var LINKS = [["./affinity/json?download=1", "affinity JSON"], ["./affinity/csv?download=1", "per-user CSV"],
               ["./affinity/summary.csv?download=1", "summary CSV"],
               ["./affinity/timeline.json?download=1", "timeline JSON"], ["./affinity/histogram.svg", "histogram SVG"],
               ["./affinity/endpoints.csv?download=1", "per-endpoint CSV"]];

  // Series colours s0..s5 for each theme; Locust's primary green first.
  var STYLE = [
    "#" + ID + "{font-family:Roboto,Helvetica,Arial,sans-serif;margin:8px 0 16px;color:inherit}",
    "#" + ID + "[data-theme=light]{--la-muted:#616161;--la-grid:#e0e0e0;--la-card:#fafafa;--la-line:#d6d6d6;" +
      "--la-s0:#15803d;--la-s1:#2563eb;--la-s2:#c2410c;--la-s3:#7c3aed;--la-s4:#dc2626;--la-s5:#475569}",
    "#" + ID + "[data-theme=dark]{--la-muted:#b0b0b0;--la-grid:#3a3a3a;--la-card:#1e1e1e;--la-line:#444;" +
      "--la-s0:#4ade80;--la-s1:#60a5fa;--la-s2:#fb923c;--la-s3:#c4b5fd;--la-s4:#f87171;--la-s5:#94a3b8}",
    "#" + ID + " + .MuiTableContainer-root{display:none}",
    "#" + ID + " .la-figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}",
    "#" + ID + " .la-card{background:var(--la-card);border:1px solid var(--la-line);border-radius:6px;" +
      "padding:10px 14px;margin:0}",
    "#" + ID + " .la-value{font-size:26px;font-weight:500;line-height:1.3}",
    "#" + ID + " .la-label,#" + ID + " figcaption,#" + ID + " .la-status{color:var(--la-muted);font-size:13px}",
    "#" + ID + " .la-charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px;" +
      "margin:12px 0}",
    "#" + ID + " .la-svg svg{width:100%;height:auto;display:block}",
    "#" + ID + " svg text{fill:var(--la-muted);font-size:13px}",
    "#" + ID + " .la-grid{stroke:var(--la-grid)}",
    "#" + ID + " .la-axis{stroke:var(--la-muted)}",
    "#" + ID + " .la-bar{fill:var(--la-s1)}",
  ];
  for (var i = 0; i < 6; i++) {
    STYLE.push("#" + ID + " .la-s" + i + "{stroke:var(--la-s" + i + ");fill:var(--la-s" + i + ")}");
    STYLE.push("#" + ID + " path.la-s" + i + "{fill:none;stroke-width:2}");
  }
  STYLE.push(
    "#" + ID + " .la-toolbar{display:flex;flex-wrap:wrap;gap:16px;align-items:center;margin:8px 0}",
    "#" + ID + " input{font:inherit;color:inherit;background:transparent;border:1px solid var(--la-line);" +
      "border-radius:4px;padding:6px 8px;min-width:220px}",
    "#" + ID + " a{color:var(--la-s0)}",
    "#" + ID + " table{border-collapse:collapse;width:100%;font-size:14px}",
    "#" + ID + " th,#" + ID + " td{padding:6px 10px;border-bottom:1px solid var(--la-line);text-align:right}",
    "#" + ID + " th:first-child,#" + ID + " td:first-child{text-align:left}",
    "#" + ID + " th{cursor:pointer;user-select:none;font-weight:500;white-space:nowrap}",
    "#" + ID + " .la-endpoints{margin-top:20px}",
    "#" + ID + " .la-endpoints th{cursor:default}");

  var state = {data: null, sort: "max_share", dir: 1, search: "", lastPoll: 0, busy: false, error: null};

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  // Python's format(v, ".Nf"), which the console, the CSVs and the HTML report print: toFixed takes the
  // larger neighbour on an exact tie of the binary value (0.5625 -> "0.563") where Python rounds to even
  // ("0.562"), and the dashboard must not show another digit than the report of the same run.
  function fixed(v, digits) {
    var near = v.toFixed(digits), exact = v.toFixed(100);  // toFixed(100): the binary value's digits, exactly
    var dot = exact.indexOf(".");
    if (dot < 0 || !/^50*$/.test(exact.slice(dot + 1 + digits))) return near;  // not a tie
    var lower = exact.slice(0, digits ? dot + 1 + digits : dot);  // the smaller neighbour in magnitude
    return +lower.charAt(lower.length - 1) % 2 ? near : lower;
  }

  function fmt(v, kind) {
    if (v === null || v === undefined) return "-";
    return kind === "rate" ? fixed(v, 3) : String(v);  // "count", and "text" (formatted by the server)
  }

  function isOpen() { return new URLSearchParams(location.search).get("tab") === TAB; }

  // Locust keeps its theme in localStorage.theme and MUI paints the body with
  // it; the body's colour is what the user sees, whatever set it.
  function theme() {
    var m = getComputedStyle(document.body).backgroundColor.match(/\d+(\.\d+)?/g);
    if (m && m.length >= 3 && (m.length < 4 || +m[3] > 0)) {
      return 0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2] < 128 ? "dark" : "light";
    }
    return localStorage.theme === "dark" ? "dark" : "light";
  }

  function build() {
    if (!document.getElementById(ID + "-style")) {
      var style = document.createElement("style");
      style.id = ID + "-style";
      style.textContent = STYLE.join("\n");
      document.head.appendChild(style);
    }
    var box = document.createElement("div");
    box.id = ID;
    var charts = '<figure class="la-card" data-chart="histogram"><figcaption>Users per max-share bin</figcaption>' +
      '<div class="la-svg" role="img" aria-label="per-user max-share histogram"></div></figure>';
    CHARTS.forEach(function (c) {
      charts += '<figure class="la-card" data-chart="' + esc(c.key) + '"><figcaption>' + esc(c.title) +
        '</figcaption><div class="la-svg" role="img" aria-label="' + esc(c.title) + '"></div></figure>';
    });
    var head = COLUMNS.map(function (c) {
      return '<th data-key="' + c[0] + '" role="columnheader" tabindex="0">' + esc(c[1]) + "</th>";
    }).join("");
    box.innerHTML = '<div class="la-figures"></div><div class="la-charts">' + charts + "</div>" +
      '<div class="la-toolbar"><input type="search" placeholder="Search users" aria-label="Search users">' +
      '<span class="la-status la-state"></span><span class="la-status la-count"></span><span>' + LINKS.map(function (l) {
        return '<a href="' + l[0] + '">' + esc(l[1]) + "</a>";
      }).join(" &middot; ") + '</span><span class="la-status la-error"></span></div>' +
      '<table class="la-users"><thead><tr>' + head + "</tr></thead><tbody></tbody></table>" +
      '<div class="la-endpoints" hidden><p class="la-status">Per endpoint: stay = same environment as the ' +
      "user's previous reply, warm = session cached</p><table><thead><tr>" +
      ENDPOINT_COLUMNS.map(function (c) { return "<th>" + esc(c[1]) + "</th>"; }).join("") +
      "</tr></thead><tbody></tbody></table></div>";
    var input = box.querySelector("input");
    input.value = state.search;
    input.addEventListener("input", function () { state.search = input.value; drawTable(box); });
    box.querySelectorAll(".la-users th").forEach(function (th) {
      function sort() {
        var key = th.getAttribute("data-key");
        state.dir = state.sort === key ? -state.dir : 1;
        state.sort = key;
        drawTable(box);
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") sort(); });
    });
    return box;
  }

  function mount() {
    var box = document.getElementById(ID);
    var table = document.querySelector(".MuiTableContainer-root");
    if (!isOpen() || !table) {
      if (box) box.remove();
      return null;
    }
    if (!box) {
      box = build();
      if (state.data) draw(box);
    }
    if (box.nextSibling !== table) table.parentNode.insertBefore(box, table);
    var t = theme();
    if (box.getAttribute("data-theme") !== t) box.setAttribute("data-theme", t);
    return box;
  }

  // -- charts ---------------------------------------------------------------

  function niceStep(span, count) {
    var raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * mag >= raw) return steps[i] * mag;
    return 10 * mag;
  }

  var TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400];

  function clock(s) {
    s = Math.round(s);
    if (s < 60) return s + "s";
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m) + ":" + pad(r) : m + ":" + pad(r);
  }

  function lineChart(spec, points, offset) {
    var W = 360, H = 220, L = 40, R = 14, T = 26, B = 30, pw = W - L - R, ph = H - T - B;
    var start = points.length ? points[0].t - points[0].span_s : 0;
    var xMax = Math.max(10, points.length ? points[points.length - 1].t - start : 0);
    var peak = 0;
    spec.series.forEach(function (s) {
      points.forEach(function (p) { if (p[s.field] !== null && p[s.field] > peak) peak = p[s.field]; });
    });
    var yStep = spec.y_max ? spec.y_max / 4 : niceStep(Math.max(peak, 1), 4);
    if (!spec.y_max && yStep < 1) yStep = 1;  // counts: whole ticks
    var yMax = spec.y_max || yStep * Math.max(1, Math.ceil(peak / yStep));
    var xStep = TIME_STEPS.filter(function (s) { return xMax / s <= 6; })[0] || 86400;
    var X = function (v) { return (L + pw * v / xMax).toFixed(1); };
    var Y = function (v) { return (T + ph - ph * v / yMax).toFixed(1); };
    var out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' + W + " " + H + '" data-chart="' +
               esc(spec.key) + '" data-points="' + points.length + '">'];
    for (var y = 0; y <= yMax + 1e-9; y += yStep) {
      out.push('<line class="la-grid" x1="' + L + '" x2="' + (L + pw) + '" y1="' + Y(y) + '" y2="' + Y(y) + '"/>');
      out.push('<text x="' + (L - 6) + '" y="' + (+Y(y) + 4) + '" text-anchor="end">' +
               (spec.y_max ? y.toFixed(2) : String(+y.toFixed(2))) + "</text>");
    }
    for (var x = 0; x <= xMax + 1e-9; x += xStep) {
      out.push('<text x="' + X(x) + '" y="' + (T + ph + 16) + '" text-anchor="middle">' + clock(x) + "</text>");
    }
    out.push('<line class="la-axis" x1="' + L + '" x2="' + (L + pw) + '" y1="' + (T + ph) + '" y2="' + (T + ph) + '"/>');
    var firstLine = out.length;
    var lx = L, legend = [];
    spec.series.forEach(function (s, i) {
      var cls = "la-s" + ((offset + i) % 6), d = "", pen = "M", dots = [];
      points.forEach(function (p) {
        var v = p[s.field];
        if (v === null || v === undefined) { pen = "M"; return; }  // no value: the line breaks
        var px = X(p.t - start), py = Y(v);
        d += pen + px + " " + py + " ";
        pen = "L";
        dots.push('<circle class="' + cls + '" data-series="' + esc(s.field) + '" cx="' + px + '" cy="' + py +
                  '" r="2.5"><title>' + esc(s.label) + " at " + clock(p.t - start) + ": " +
                  (spec.y_max ? fixed(v, 3) : v) + "</title></circle>");
      });
      // the first series is the chart's subject: drawn last, on top where lines meet
      // later series dashed: told apart where colours are not, or where lines coincide
      var dash = i ? ' stroke-dasharray="6 3"' : "";
      out.splice(firstLine, 0, (d ? '<path class="' + cls + '" data-series="' + esc(s.field) + '"' + dash +
                                ' d="' + d.trim() + '"/>' : "") + dots.join(""));
      legend.push('<path class="' + cls + '"' + dash + ' d="M' + lx + ' 13 h22"/>' +
                  '<text x="' + (lx + 28) + '" y="18">' + esc(s.label) + "</text>");
      lx += 44 + 7.5 * s.label.length;
    });
    out.push(legend.join(""));
    if (!points.length) {
      out.push('<text x="' + (L + pw / 2) + '" y="' + (T + ph / 2) + '" text-anchor="middle">' +
               "no data yet: the first point comes 2 s into a run</text>");
    }
    out.push("</svg>");
    return out.join("");
  }

  // -- drawing --------------------------------------------------------------

  function compare(a, b) {
    var x = a[state.sort], y = b[state.sort];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;   // unmeasured users last, either way
    if (y === null || y === undefined) return -1;
    if (typeof x === "string") return state.dir * x.localeCompare(y, undefined, {numeric: true});
    return state.dir * (x < y ? -1 : 1);
  }

  function drawTable(box) {
    var data = state.data, body = box.querySelector("tbody"), count = box.querySelector(".la-count");
    box.querySelectorAll(".la-users th").forEach(function (th) {
      var key = th.getAttribute("data-key"), on = key === state.sort;
      th.setAttribute("aria-sort", on ? (state.dir > 0 ? "ascending" : "descending") : "none");
      th.textContent = COLUMNS.filter(function (c) { return c[0] === key; })[0][1] +
        (on ? (state.dir > 0 ? " \u25B2" : " \u25BC") : "");
    });
    if (!data) return;
    if (!data.per_user) {
      body.innerHTML = "";
      count.textContent = data.users + " users: per-user rows are left out above " + CONFIG.per_user_limit +
        " users; the per-user CSV has them all";
      return;
    }
    var q = state.search.trim().toLowerCase();
    var rows = data.per_user.filter(function (r) { return !q || String(r.user).toLowerCase().indexOf(q) >= 0; });
    rows.sort(compare);
    var shown = rows.slice(0, MAX_ROWS);
    body.innerHTML = shown.map(function (r) {
      return "<tr>" + COLUMNS.map(function (c) {
        return "<td>" + esc(fmt(r[c[0]], c[0] === "max_share" ? "rate" : "count")) + "</td>";
      }).join("") + "</tr>";
    }).join("");
    count.textContent = (rows.length > shown.length ? "showing " + shown.length + " of " : "") + rows.length +
      (q ? " matching" : "") + " users";
  }

  function drawEndpoints(box) {
    var part = box.querySelector(".la-endpoints"), rows = state.data.per_endpoint;
    part.hidden = !rows || !rows.length;
    if (part.hidden) return;
    part.querySelector("tbody").innerHTML = rows.slice(0, MAX_ROWS).map(function (ep) {
      return "<tr>" + ENDPOINT_COLUMNS.map(function (c) {
        return "<td>" + esc(c[2] === "text" ? ep[c[0]] : fmt(ep[c[0]], c[2])) + "</td>";
      }).join("") + "</tr>";
    }).join("");
  }

  function draw(box) {
    var data = state.data;
    box.querySelector(".la-figures").innerHTML = data.headline.map(function (f) {
      return '<div class="la-card la-figure" data-key="' + esc(f.key) + '"><div class="la-value">' +
        esc(fmt(f.value, f.kind)) + '</div><div class="la-label">' + esc(f.label) + "</div></div>";
    }).join("");
    var hist = box.querySelector('[data-chart=histogram] .la-svg');
    if (hist.getAttribute("data-drawn") !== data.histogram.join(",")) {
      hist.innerHTML = data.histogram_svg;
      hist.setAttribute("data-drawn", data.histogram.join(","));
    }
    CHARTS.forEach(function (c, i) {
      box.querySelector('[data-chart="' + c.key + '"] .la-svg').innerHTML = lineChart(c, data.points, 2 * i);
    });
    box.querySelector(".la-state").textContent = data.final ? "run over: final numbers" :
      data.points.length ? "live" : "no test has run yet";
    box.querySelector(".la-error").textContent = state.error || "";
    drawTable(box);
    drawEndpoints(box);
  }

  function poll() {
    if (state.busy) return;
    state.busy = true;
    state.lastPoll = Date.now();
    fetch("./affinity/dashboard.json", {cache: "no-store"})
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.json();
      })
      .then(function (data) { state.data = data; state.error = null; })
      .catch(function (e) { state.error = "could not update: " + e.message; })
      .then(function () {
        state.busy = false;
        var box = document.getElementById(ID);
        if (box && state.data) draw(box);
      });
  }

  var queued = false;
  function tick() {
    queued = false;
    var box = mount();
    if (box && Date.now() - state.lastPoll >= (state.data ? POLL_MS : 0)) poll();
  }
  // React redraws the page at will (tab switches, Locust's own 2 s refresh):
  // look again after each change, at most once a frame, and on a timer.
  new MutationObserver(function () {
    if (!queued) { queued = true; requestAnimationFrame(tick); }
  }).observe(document.body, {childList: true, subtree: true});
  setInterval(tick, 500);
})();
