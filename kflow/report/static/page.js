// kflow run page. Builds the DOM from the embedded model with textContent only:
// nothing from a record is ever parsed as markup. No request except to the ui server.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var PAGE = 50, MAX_ROWS = 1000, NEAR = 50;
  var cfg = JSON.parse(document.getElementById("kflow-config").textContent);
  var model = JSON.parse(document.getElementById("kflow-data").textContent);
  var state = {task: "", status: "", text: "", sort: "plan", page: 0, selected: null};
  var etag = null;

  // control characters (ESC, NUL, bidi overrides) written out, as in Markdown and the terminal
  var CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
  function visible(s) {
    return String(s).replace(CONTROL, function (c) {
      var n = c.charCodeAt(0), h = n.toString(16);
      return n < 256 ? "\\x" + ("0" + h).slice(-2) : "\\u" + ("000" + h).slice(-4);
    });
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    // style through the CSSOM: the CSP allows no style attributes (no 'unsafe-inline')
    if (attrs) for (var k in attrs) { if (k === "style") node.style.cssText = attrs[k]; else node.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) node.textContent = visible(text);
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = visible(text);
    return node;
  }
  function dash(v) { return v === null || v === undefined || v === "" ? "\u2014" : visible(v); }
  function secs(v) { return v === null || v === undefined ? "\u2014" : v.toFixed(1) + "s"; }
  function when(t) { return t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "\u2014"; }
  function badge(s) { return el("span", {"class": "status s-" + dash(s)}, dash(s)); }
  function section(id, title) {
    var s = el("section", {id: id}); s.appendChild(el("h2", null, title)); return s;
  }
  function row(table, cells) {
    var tr = el("tr");
    cells.forEach(function (c) {
      var td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = dash(c);
      tr.appendChild(td);
    });
    table.appendChild(tr); return tr;
  }
  function link(text, onclick) {
    var a = el("span", {"class": "link"}, text); a.addEventListener("click", onclick); return a;
  }
  function byId() {
    var map = {}; model.instances.forEach(function (i) { map[i.id] = i; }); return map;
  }

  function summary() {
    var run = model.run, s = section("summary", "Run " + run.run_id);
    s.firstChild.appendChild(document.createTextNode(" ")); s.firstChild.appendChild(badge(run.status));
    var t = el("table");
    row(t, ["exit code", run.exit_code]);
    row(t, ["targets", run.targets.join(" ")]);
    row(t, ["params", Object.keys(run.params).map(function (k) { return k + "=" + run.params[k]; }).join(" ")]);
    row(t, ["profile / executor / host", [dash(run.profile), dash(run.executor), dash(run.host)].join(" / ")]);
    row(t, ["started / ended / took", when(run.started) + " / " + when(run.ended) + " / " + secs(run.duration)]);
    row(t, ["counts", Object.keys(model.counts).sort().map(function (k) { return model.counts[k] + " " + k; }).join(", ")]);
    row(t, ["reasons", model.reasons.map(function (r) { return r[0] + " \u00d7" + r[1]; }).join(", ")]);
    s.appendChild(t);
    var f = model.first_failure;
    if (f) {
      var h = el("h2", {id: "first-failure"}, "First failure: ");
      h.appendChild(link(f.id, function () { select(f.id); }));
      h.appendChild(document.createTextNode(" (attempt " + f.attempt + ", exit " + dash(f.exit_code) + "): " + dash(f.reason)));
      s.appendChild(h);
      s.appendChild(el("pre", {"class": "log"}, f.log_tail === null ? "(no log)" : f.log_tail));
    }
    return s;
  }

  function graph() {
    var s = section("graph", "Task graph (" + model.tasks.length + " tasks, " + model.instances.length + " instances)");
    var W = 230, H = 96, GAP = 50, layers = 0, rows = 0, pos = {};
    model.tasks.forEach(function (t) { layers = Math.max(layers, t.layer + 1); rows = Math.max(rows, t.row + 1); });
    var root = svg("svg", {width: layers * (W + GAP) + 10, height: rows * (H + 20) + 10, "class": "task-graph"});
    model.tasks.forEach(function (t) { pos[t.name] = {x: 5 + t.layer * (W + GAP), y: 5 + t.row * (H + 20)}; });
    model.task_edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]]; if (!a || !b) return;
      var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      root.appendChild(svg("path", {"class": "edge", d: "M" + x1 + "," + y1 + " C" + (x1 + 25) + "," + y1 + " " + (x2 - 25) + "," + y2 + " " + x2 + "," + y2}));
    });
    model.tasks.forEach(function (t) {
      var p = pos[t.name], g = svg("g", {"class": "task-node" + (t.failed.length ? " has-failed" : "") + (state.task === t.name ? " selected" : ""), transform: "translate(" + p.x + "," + p.y + ")", "data-task": t.name});
      g.appendChild(svg("rect", {width: W, height: H, rx: 6}));
      g.appendChild(svg("text", {x: 8, y: 16, "font-weight": "bold"}, t.name));
      g.appendChild(svg("text", {x: 8, y: 32}, Object.keys(t.counts).sort().map(function (k) { return t.counts[k] + " " + k; }).join(", ") + " \u00b7 " + secs(t.time)));
      var y = 48;
      t.failed.concat(t.slowest.filter(function (i) { return t.failed.indexOf(i) < 0; })).slice(0, 3).forEach(function (id) {
        var label = (t.failed.indexOf(id) >= 0 ? "\u2717 " : "\u25b8 ") + id;
        var pin = svg("text", {x: 8, y: y, "class": "pin" + (t.failed.indexOf(id) >= 0 ? " failed" : "")}, label.length > 34 ? label.slice(0, 33) + "\u2026" : label);
        pin.addEventListener("click", function (ev) { ev.stopPropagation(); select(id); });
        g.appendChild(pin); y += 15;
      });
      g.addEventListener("click", function () {
        state.task = t.name; state.page = 0;
        select(t.failed[0] || t.slowest[0] || null);
      });
      root.appendChild(g);
    });
    s.appendChild(root);
    return s;
  }

  function timeline() {
    var s = section("timeline", "Timeline (one bar per attempt; grey: waiting from ready to start; orange: critical path)");
    // attempts without a start time (an older record) are not drawn
    var rowsData = model.instances.filter(function (i) { return i.attempts.length && i.attempts[0].started !== null; });
    var t0 = model.run.started !== null ? model.run.started : Math.min.apply(null, rowsData.map(function (i) { return i.attempts[0].started; }).concat([Date.now() / 1000]));
    rowsData.sort(function (a, b) { return a.attempts[0].started - b.attempts[0].started; });
    var end = model.run.ended || (Date.now() / 1000);
    rowsData.forEach(function (i) { i.attempts.forEach(function (a) { end = Math.max(end, a.ended || a.started); }); });
    var span = Math.max(end - t0, 0.001), shown = rowsData.slice(0, MAX_ROWS), box = el("div", {"class": "tl"});
    function pct(t) { return (100 * (t - t0) / span).toFixed(3) + "%"; }
    function width(a, b) { return (100 * Math.max(b - a, 0) / span).toFixed(3) + "%"; }
    shown.forEach(function (i) {
      var r = el("div", {"class": "tl-row" + (i.critical ? " critical" : ""), "data-instance": i.id});
      r.appendChild(el("span", {"class": "tl-label"}, i.id));
      if (i.ready !== null && i.ready < i.attempts[0].started) {
        r.appendChild(el("div", {"class": "wait", style: "left:" + pct(i.ready) + ";width:" + width(i.ready, i.attempts[0].started), title: "waited " + secs(i.attempts[0].started - i.ready)}));
      }
      i.attempts.forEach(function (a) {
        if (a.started === null) return;
        var stop = a.ended === null ? end : a.ended;
        r.appendChild(el("div", {"class": "bar attempt " + dash(a.status) + (a.free ? " free" : ""), style: "left:" + pct(a.started) + ";width:" + width(a.started, stop),
          title: i.id + " attempt " + a.number + (a.free ? " (free retry)" : "") + ": " + dash(a.status) + " " + secs(a.duration) + (a.reason ? " (" + a.reason + ")" : "")}));
      });
      r.addEventListener("click", function () { select(i.id); });
      box.appendChild(r);
    });
    s.appendChild(box);
    if (rowsData.length > shown.length) s.appendChild(el("p", {"class": "muted"}, (rowsData.length - shown.length) + " more instances not drawn: use the table"));
    return s;
  }

  function table() {
    var s = section("instances", "Instances"), c = el("div", {"class": "controls"});
    var task = el("select", {id: "filter-task"}), status = el("select", {id: "filter-status"});
    [""].concat(model.tasks.map(function (t) { return t.name; })).forEach(function (n) { var o = el("option", {value: n}, n || "all tasks"); if (n === state.task) o.selected = true; task.appendChild(o); });
    [""].concat(Object.keys(model.counts).sort()).forEach(function (n) { var o = el("option", {value: n}, n || "all statuses"); if (n === state.status) o.selected = true; status.appendChild(o); });
    var text = el("input", {id: "filter-text", placeholder: "filter", value: state.text});
    var sort = el("select", {id: "sort"});
    [["plan", "plan order"], ["duration", "slowest first"], ["start", "start time"]].forEach(function (p) { var o = el("option", {value: p[0]}, p[1]); if (p[0] === state.sort) o.selected = true; sort.appendChild(o); });
    task.onchange = function () { state.task = task.value; state.page = 0; render(); };
    status.onchange = function () { state.status = status.value; state.page = 0; render(); };
    text.onchange = function () { state.text = text.value; state.page = 0; render(); };
    sort.onchange = function () { state.sort = sort.value; render(); };
    [task, status, text, sort].forEach(function (n) { c.appendChild(n); });
    s.appendChild(c);
    var list = model.instances.filter(function (i) {
      return (!state.task || i.task === state.task) && (!state.status || i.status === state.status) && (!state.text || i.id.indexOf(state.text) >= 0);
    });
    if (state.sort === "duration") list = list.slice().sort(function (a, b) { return (b.duration || 0) - (a.duration || 0); });
    if (state.sort === "start") list = list.slice().sort(function (a, b) { return (a.attempts.length ? a.attempts[0].started : Infinity) - (b.attempts.length ? b.attempts[0].started : Infinity); });
    var pages = Math.max(1, Math.ceil(list.length / PAGE)); state.page = Math.min(state.page, pages - 1);
    var t = el("table", {id: "instance-table"});
    row(t, ["instance", "status", "why", "attempts", "time"]).className = "head";
    list.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (i) {
      row(t, [link(i.id, function () { select(i.id); }), badge(i.status), i.reason, i.attempts.length, secs(i.duration)]);
    });
    s.appendChild(t);
    var nav = el("div", {"class": "controls"});
    var prev = el("button", {id: "prev"}, "\u2190"), next = el("button", {id: "next"}, "\u2192");
    prev.disabled = state.page === 0; next.disabled = state.page >= pages - 1;
    prev.onclick = function () { state.page--; render(); }; next.onclick = function () { state.page++; render(); };
    nav.appendChild(prev); nav.appendChild(el("span", null, "page " + (state.page + 1) + " of " + pages + " (" + list.length + ")")); nav.appendChild(next);
    s.appendChild(nav);
    return s;
  }

  function near(id, map, up) {
    // ancestors (up) or descendants of an instance, breadth first, capped
    var out = [], seen = {}, queue = [id], down = {};
    if (!up) model.instances.forEach(function (i) { i.requires.forEach(function (r) { (down[r] = down[r] || []).push(i.id); }); });
    seen[id] = true;
    while (queue.length && out.length < NEAR) {
      var cur = queue.shift(), next = up ? ((map[cur] || {}).requires || []) : (down[cur] || []);
      next.forEach(function (n) { if (!seen[n] && out.length < NEAR) { seen[n] = true; out.push(n); queue.push(n); } });
    }
    return out;
  }

  function detail() {
    var map = byId(), i = map[state.selected], s = section("detail", "Instance");
    if (!i) { s.appendChild(el("p", {"class": "muted"}, "Click a task, a bar or an instance to see it here.")); return s; }
    s.firstChild.textContent = "Instance " + visible(i.id) + " ";
    s.firstChild.appendChild(badge(i.status));
    var t = el("table");
    row(t, ["why it ran", i.why.kind]); row(t, ["what changed", i.why.detail]);
    row(t, ["detail", i.other_run ? otherRun(i.detail, i.other_run) : i.detail]);
    row(t, ["params", Object.keys(i.params).map(function (k) { return k + "=" + i.params[k]; }).join(" ")]);
    row(t, ["ready", when(i.ready)]);
    [["requires (ancestors)", true], ["required by (descendants)", false]].forEach(function (p) {
      var ids = near(i.id, map, p[1]), cell = el("span");
      ids.forEach(function (n) { cell.appendChild(link(n, function () { select(n); })); cell.appendChild(document.createTextNode(" ")); });
      if (ids.length >= NEAR) cell.appendChild(el("span", {"class": "muted"}, "(first " + NEAR + ")"));
      row(t, [p[0], ids.length ? cell : null]);
    });
    s.appendChild(t);
    if (i.changes) {  // plan --why at the time of the run, in full (capped in bytes)
      s.appendChild(el("h3", null, "What changed (old \u2192 new)"));
      s.appendChild(el("pre", {"class": "log", id: "changes"}, i.changes.join("\n")));
    }
    var at = el("table", {id: "attempts"});
    row(at, ["attempt", "status", "started", "took", "exit", "where", "reason"]);
    i.attempts.forEach(function (a) { row(at, [a.number + (a.free ? " (free)" : ""), badge(a.status), when(a.started), secs(a.duration), a.exit_code, a.where, a.reason]); });
    s.appendChild(at);
    if (i.outputs && i.outputs.length) {
      var ot = el("table", {id: "outputs"});
      row(ot, ["output", "size (bytes)", "stamp (modified)"]);
      i.outputs.forEach(function (o) { row(ot, [o.location, o.size, when(o.mtime)]); });
      s.appendChild(ot);
    }
    var pre = el("pre", {"class": "log", id: "log-tail"}, i.log_tail === null ? "(no log tail in this report)" : i.log_tail);
    s.appendChild(pre);
    if (cfg.log_url && i.attempts.length) {
      s.appendChild(link("whole log", function () { wholeLog(i, pre); }));
    }
    return s;
  }

  function wholeLog(i, pre) {
    // by byte offset, in chunks; a chunk may end inside a character: the decoder keeps it
    var last = i.attempts[i.attempts.length - 1], offset = 0, decoder = new TextDecoder();
    pre.textContent = "";
    function more() {
      var url = cfg.log_url + "/" + encodeURIComponent(i.id) + "/" + last.number + "?offset=" + offset;
      fetch(url).then(function (r) { return r.ok ? r.arrayBuffer() : null; }).then(function (buf) {
        if (!buf || !buf.byteLength) return;
        offset += buf.byteLength;
        pre.appendChild(document.createTextNode(visible(decoder.decode(buf, {stream: true}))));
        more();  // until a chunk comes back empty
      });
    }
    more();
  }

  // "built by run X …": in kflow ui a link to run X's page; in a report file, a note (the
  // file cannot link to a report it did not write)
  function otherRun(text, run) {
    var cell = el("span", {"class": "other-run"}, text + " ");
    if (cfg.log_url) cell.appendChild(el("a", {href: "/run/" + encodeURIComponent(run)}, "open run " + run));
    else cell.appendChild(el("span", {"class": "muted"}, "(not in this file: kflow report " + run + ")"));
    return cell;
  }

  function notRun() {
    var s = section("not-run", "What did not run, and why (" + model.not_run.length + ")"), t = el("table");
    model.not_run.slice(0, 200).forEach(function (r) {
      row(t, [r.id, badge(r.status), r.run ? otherRun(r.why, r.run) : r.why]);
    });
    s.appendChild(t);
    if (model.not_run.length > 200) s.appendChild(el("p", {"class": "muted"}, (model.not_run.length - 200) + " more"));
    return s;
  }

  function against() {
    var d = model.against, s = section("against", "Compared with run " + d.run_id), t = el("table");
    [["new failures", d.new_failures], ["ran in this run only", d.only_here], ["ran in the other run only", d.only_there]].forEach(function (p) {
      row(t, [p[0] + " (" + p[1].length + ")", p[1].slice(0, 50).join(", ")]);
    });
    d.changed_reasons.slice(0, 50).forEach(function (c) { row(t, [c.id, dash(c.before) + " \u2192 " + dash(c.now)]); });
    s.appendChild(t);
    var tt = el("table", {id: "task-times"});
    row(tt, ["task", "before", "now"]);
    d.task_times.forEach(function (r) { row(tt, [r.task, secs(r.before), secs(r.now)]); });
    s.appendChild(tt);
    return s;
  }

  function select(id) { state.selected = id; render(); var d = document.getElementById("detail"); if (d && d.scrollIntoView) d.scrollIntoView(); }

  function render() {
    var app = document.getElementById("app");
    while (app.firstChild) app.removeChild(app.firstChild);
    var views = [summary(), graph(), timeline(), detail(), table(), notRun()];
    if (model.against) views.splice(1, 0, against());
    views.forEach(function (n) { app.appendChild(n); });
  }

  function runsList() {
    var app = document.getElementById("app"), s = section("runs", "Runs"), t = el("table", {id: "runs-table"});
    row(t, ["run", "status", "started", "took", "counts", "targets"]);
    model.runs.forEach(function (r) {
      var a = el("a", {href: "run/" + encodeURIComponent(r.run_id)}, r.run_id);
      row(t, [a, badge(r.status), when(r.started), secs(r.duration), Object.keys(r.counts).sort().map(function (k) { return r.counts[k] + " " + k; }).join(", "), r.targets.join(" ")]);
    });
    s.appendChild(t); app.appendChild(s);
    var tr = section("trend", "Task duration over the last runs (oldest \u2192 newest)"), tt = el("table");
    var bars = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588";
    Object.keys(model.trend).sort().forEach(function (task) {
      var vals = model.trend[task], max = Math.max.apply(null, vals.map(function (v) { return v || 0; })) || 1;
      var spark = vals.map(function (v) { return v === null ? "\u00b7" : bars[Math.min(7, Math.floor(7 * v / max))]; }).join("");
      row(tt, [task, el("span", {"class": "trend"}, spark), vals.map(secs).join(" ")]);
    });
    tr.appendChild(tt); app.appendChild(tr);
  }

  function poll() {
    var headers = etag ? {"If-None-Match": etag} : {};
    fetch(cfg.live, {headers: headers}).then(function (r) {
      if (r.status !== 200) return null;
      etag = r.headers.get("ETag");
      return r.json();
    }).then(function (data) {
      if (data) { model = data; render(); }
    }).catch(function () {}).then(function () { setTimeout(poll, cfg.poll_ms || 2000); });
  }

  if (cfg.mode === "runs") runsList(); else render();
  if (cfg.live) { etag = cfg.etag || null; setTimeout(poll, cfg.poll_ms || 2000); }
})();
