/* flightcheck report: the findings in groups, the packages, executables and unowned files,
   rendered on demand from the compact JSON block #data (scanner/reports/pagedata.py
   describes it). No network, no libraries; every target string goes in as text
   (textContent), never as markup. */
(function () {
  "use strict";
(function () {
  var dataEl = document.getElementById("data");
  if (!dataEl) return;
  // the data is JSON, gzip-compressed in base64: the browser's own DecompressionStream
  // reads it (no request leaves the page); body[data-ready] is set once it is shown
  var text = dataEl.textContent.trim();
  if (dataEl.getAttribute("data-encoding") !== "gzip+base64") { start(JSON.parse(text)); return; }
  var bin = atob(text), bytes = new Uint8Array(bin.length);
  for (var b = 0; b < bin.length; b++) bytes[b] = bin.charCodeAt(b);
  new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text()
    .then(function (json) { start(JSON.parse(json)); })
    .catch(function (err) {
      var body = document.querySelector("#findings-table tbody");
      if (body) body.textContent = "This browser cannot read the report's data (" + err + "); result.json holds it.";
    });
})();

function start(D) {
  var PAGE = 200, MEMBERS = 100;
  var pathCache = {};
  function str(r) {
    if (r === null || r === undefined) return null;
    if (r >= 0) return D.S[r];
    var hit = pathCache[r];
    if (hit !== undefined) return hit;
    var parts = [], n = -r - 1;
    while (n >= 0) { parts.push(D.N[n]); n = D.P[n] ? n - D.P[n] : -1; }
    return (pathCache[r] = "/" + parts.reverse().join("/"));
  }
  function ev(x) {  // evidence back to its JSON shape
    if (typeof x === "number") return str(x);
    if (x[0] === "=") return x[1];
    if (x[0] === "{") { var o = {}; for (var i = 1; i < x.length; i += 2) o[str(x[i])] = ev(x[i + 1]); return o; }
    return x.map(ev);
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function td(content, cls) {
    var c = el("td", cls);
    if (content instanceof Node) c.appendChild(content); else c.textContent = content === null ? "\u2014" : content;
    return c;
  }
  function sev(code) { var s = D.sev[code]; return el("span", "sev " + s, s); }
  function cat(code) { var c = D.cats[code] || "unknown"; return el("span", "cat " + c, c); }
  function frag() { var f = document.createDocumentFragment(); for (var i = 0; i < arguments.length; i++) { var a = arguments[i]; f.appendChild(typeof a === "string" ? document.createTextNode(a) : a); } return f; }
  function lower(s) { return (s || "").toLowerCase(); }

  // ---------------------------------------------------------------- findings, grouped
  var ftable = document.getElementById("findings-table");
  var open = {}, limit = {}, order = null;
  var RULES = D.rules.map(function (r, i) { return {i: i, id: str(r[0]), title: str(r[1]), sev: r[2], failing: r[3], groups: r[4]}; });
  function message(f) { var m = str(f[4]) || "", s = str(f[3]) || ""; return m.split("\u0001").join(s); }
  var ftext = [];
  function findingText(i) {
    if (ftext[i] === undefined) {
      var f = D.F[i], r = RULES[f[0]];
      ftext[i] = lower(r.id + " " + r.title + " " + str(f[3]) + " " + message(f) + " " + D.states[f[2]] + " " + D.sev[f[1]]);
    }
    return ftext[i];
  }
  function filters() {
    var g = function (id) { var e = document.getElementById(id); return e ? e.value : ""; };
    return {q: lower(g("f-search")), sev: g("f-severity"), rule: g("f-rule"), state: g("f-state")};
  }
  function matches(i, fl) {
    var f = D.F[i];
    return (!fl.sev || D.sev[f[1]] === fl.sev) && (!fl.rule || RULES[f[0]].id === fl.rule) &&
           (!fl.state || D.states[f[2]] === fl.state) && (!fl.q || findingText(i).indexOf(fl.q) >= 0);
  }
  function toggle(key, label) {
    var b = el("button", "toggle", (open[key] ? "\u25BE " : "\u25B8 ") + label);
    b.type = "button"; b.setAttribute("aria-expanded", open[key] ? "true" : "false");
    b.addEventListener("click", function () { open[key] = !open[key]; renderFindings(); });
    return b;
  }
  function memberRow(i) {
    var f = D.F[i], r = RULES[f[0]], state = D.states[f[2]];
    var tr = el("tr", "finding state-" + state);
    // digests are left out of the page's data: result.json and the PDF's attachments hold them
    tr.dataset.severity = D.sev[f[1]]; tr.dataset.rule = r.id; tr.dataset.state = state;
    var st = td(state);
    if (f[6]) st.appendChild(el("div", "muted", (str(f[6][0]) || "") + (f[6][1] !== null ? " (until " + str(f[6][1]) + ")" : "")));
    var msg = td(message(f));
    var det = el("details"); det.appendChild(el("summary", null, "evidence"));
    det.appendChild(el("div", "evidence", JSON.stringify(f[5] === undefined ? {} : ev(f[5]), null, 1)));
    var link = el("a", null, "rule " + r.id); link.href = "#rule-" + r.id; det.appendChild(link);
    msg.appendChild(det);
    [td(sev(f[1])), td(r.id, "mono nowrap"), st, td(str(f[3]), "path"), msg].forEach(function (c) { tr.appendChild(c); });
    return tr;
  }
  function ruleSortKey(col, r) {
    return [-r.sevRank, r.id, r.worst, lower(r.title), -r.shown][col];
  }
  function renderFindings() {
    if (!ftable) return;
    var fl = filters(), body = ftable.tBodies[0], shown = 0, total = D.F.length;
    var rows = RULES.map(function (r) {
      var gs = r.groups.map(function (g, gi) {
        var m = [];
        for (var i = g[6][0]; i < g[6][0] + g[6][1]; i++) if (matches(i, fl)) m.push(i);
        return {g: g, gi: gi, m: m};
      }).filter(function (x) { return x.m.length; });
      var n = gs.reduce(function (a, x) { return a + x.m.length; }, 0);
      return {r: r, gs: gs, shown: n, sevRank: D.rank[D.sev[r.sev]], id: r.id, title: r.title,
              worst: Math.min.apply(null, gs.map(function (x) { return x.g[3]; }).concat([99]))};
    }).filter(function (x) { return x.shown; });
    if (order) rows.sort(function (a, b) {
      var x = ruleSortKey(order.col, a), y = ruleSortKey(order.col, b);
      var c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return order.asc ? c : -c;
    });
    var out = document.createDocumentFragment();
    rows.forEach(function (x) {
      shown += x.shown;
      var r = x.r, key = "r" + r.i;
      var tr = el("tr", "rule"); tr.dataset.rule = r.id; tr.dataset.count = x.shown;
      var lab = td(frag(toggle(key, r.title)));
      [td(sev(r.sev)), td(r.id, "mono nowrap"), td(r.failing ? r.failing + " failing" : D.states[x.worst] || ""), lab,
       td(x.shown === total ? String(x.shown) : String(x.shown))].forEach(function (c) { tr.appendChild(c); });
      tr.lastChild.className = "num";
      out.appendChild(tr);
      if (!open[key]) return;
      x.gs.forEach(function (gx) {
        var g = gx.g, gkey = key + "g" + gx.gi;
        var gr = el("tr", "group kind-" + D.kinds[g[0]]); gr.dataset.rule = r.id;
        [td(sev(g[4])), td(""), td(D.states[g[3]]), td(frag(toggle(gkey, str(g[2]))), "path"),
         td(String(gx.m.length), "num")].forEach(function (c) { gr.appendChild(c); });
        out.appendChild(gr);
        if (!open[gkey]) return;
        var lim = limit[gkey] || MEMBERS;
        gx.m.slice(0, lim).forEach(function (i) { out.appendChild(memberRow(i)); });
        if (gx.m.length > lim) {
          var more = el("tr", "more"), c = el("td"); c.colSpan = 5;
          var b = el("button", null, "show " + Math.min(MEMBERS * 5, gx.m.length - lim) + " more of " + (gx.m.length - lim));
          b.type = "button";
          b.addEventListener("click", function () { limit[gkey] = lim + MEMBERS * 5; renderFindings(); });
          c.appendChild(b); more.appendChild(c); out.appendChild(more);
        }
      });
    });
    body.textContent = "";
    if (!rows.length) { var none = el("tr"), c0 = td(total ? "No finding matches." : "No findings.", "muted"); c0.colSpan = 5; none.appendChild(c0); out.appendChild(none); }
    body.appendChild(out);
    var count = document.getElementById("f-count");
    if (count) count.textContent = shown + " of " + total + " findings";
  }
  ["f-search", "f-severity", "f-rule", "f-state"].forEach(function (id) {
    var e = document.getElementById(id);
    if (e) { e.addEventListener("input", renderFindings); e.addEventListener("change", renderFindings); }
  });
  function setAll(value) {
    RULES.forEach(function (r) { open["r" + r.i] = value; r.groups.forEach(function (g, gi) { open["r" + r.i + "g" + gi] = value; }); });
    renderFindings();
  }
  var ex = document.getElementById("f-expand"), co = document.getElementById("f-collapse");
  if (ex) ex.addEventListener("click", function () { setAll(true); });
  if (co) co.addEventListener("click", function () { setAll(false); });
  if (ftable) Array.prototype.forEach.call(ftable.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () {
      var asc = !(order && order.col === col && order.asc);
      order = {col: col, asc: asc};
      Array.prototype.forEach.call(ftable.tHead.rows[0].cells, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      renderFindings();
    });
  });
  renderFindings();

  // ---------------------------------------------------------------- paged tables
  // columns: [{cell: row -> td, sort: row -> value}]; search over text(row)
  function pagedTable(table, rows, columns, text, search) {
    if (!table) return;
    var sorted = rows.slice(), shown = PAGE, q = "";
    var heads = table.tHead.rows[0].cells;
    function render() {
      var hits = q ? sorted.filter(function (r) { return lower(text(r)).indexOf(q) >= 0; }) : sorted;
      var body = table.tBodies[0], out = document.createDocumentFragment();
      hits.slice(0, shown).forEach(function (r) {
        var tr = el("tr");
        columns.forEach(function (c) { tr.appendChild(c.cell(r)); });
        out.appendChild(tr);
      });
      if (hits.length > shown) {
        var more = el("tr", "more"), c = el("td"), b = el("button", null, "show " + Math.min(PAGE * 5, hits.length - shown) + " more of " + (hits.length - shown));
        c.colSpan = columns.length; b.type = "button";
        b.addEventListener("click", function () { shown += PAGE * 5; render(); });
        c.appendChild(b); more.appendChild(c); out.appendChild(more);
      }
      if (!hits.length) { var none = el("tr"), c1 = td(rows.length ? "Nothing matches." : "None.", "muted"); c1.colSpan = columns.length; none.appendChild(c1); out.appendChild(none); }
      body.textContent = ""; body.appendChild(out);
      var count = table.parentNode.querySelector(".count[data-for='" + table.id + "']");
      if (count) count.textContent = Math.min(shown, hits.length) + " shown of " + hits.length + (q ? " matching" : "");
    }
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("sorted-asc"), key = columns[col].sort;
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        var keyed = sorted.map(function (r) { return [key(r), r]; });
        keyed.sort(function (a, b) { var c = typeof a[0] === "number" ? a[0] - b[0] : String(a[0]).localeCompare(String(b[0])); return asc ? c : -c; });
        sorted = keyed.map(function (x) { return x[1]; });
        render();
      });
    });
    if (search) search.addEventListener("input", function () { q = lower(search.value); shown = PAGE; render(); });
    render();
  }
  function searchFor(id) { return document.querySelector("input[data-filter='" + id + "']"); }

  // packages: [id, name, arch, version, raw, spdx, status, notes, category, files]
  pagedTable(document.getElementById("packages-table"), D.K, [
    {cell: function (p) { var c = td(str(p[1]), "mono"); if (p[2] !== null) c.appendChild(el("span", "muted", "." + str(p[2]))); return c; }, sort: function (p) { return lower(str(p[1])); }},
    {cell: function (p) { return td(str(p[3]), "mono"); }, sort: function (p) { return str(p[3]); }},
    {cell: function (p) { return td(str(p[4])); }, sort: function (p) { return lower(str(p[4])); }},
    {cell: function (p) { return td(str(p[5]), "mono"); }, sort: function (p) { return str(p[5]) || ""; }},
    {cell: function (p) { var c = td(D.statuses[p[6]], "status-" + D.statuses[p[6]]); if (p[7].length) c.appendChild(el("div", "muted", p[7].map(str).join("; "))); return c; }, sort: function (p) { return p[6]; }},
    {cell: function (p) { return td(cat(p[8])); }, sort: function (p) { return p[8]; }},
    {cell: function (p) { return td(String(p[9]), "num"); }, sort: function (p) { return p[9]; }}
  ], function (p) { return [str(p[1]), str(p[3]), str(p[4]), str(p[5]), D.cats[p[8]]].join(" "); }, searchFor("packages-table"));

  // ELF records: [path, type, package, license, category, flags, needed, closure, tree]; trailing nulls left out
  var byPath = {};
  D.E.forEach(function (e) { byPath[e[0]] = e; });
  var defaults = {};
  D.R.forEach(function (kv) { defaults[kv[0]] = kv[1]; });
  function pkgName(i) { return i >= 0 ? str(D.K[i][0]) : null; }
  function linked(e) {  // the closure as rows: soname, path, package, license, category
    return (e[7] || []).map(function (x) {
      var soname = typeof x === "number" ? x : x[0], path = typeof x === "number" ? defaults[x] : x[1];
      if (typeof x !== "number" && x.length === 5) return {soname: soname, path: path, pkg: str(x[2]), lic: str(x[3]), cat: x[4]};
      var lib = path === null || path === undefined ? null : byPath[path];
      return {soname: soname, path: path === undefined ? null : path, pkg: lib ? pkgName(lib[2]) : null,
              lic: lib ? str(lib[3]) : null, cat: lib ? lib[4] : D.cats.indexOf("unknown")};
    });
  }
  function strictest(e) {
    var rows = linked(e);
    return rows.length ? Math.max.apply(null, rows.map(function (r) { return r.cat; })) : -1;
  }
  function tree(e) {  // the dependency tree, each library with its license category
    var closure = {};
    linked(e).forEach(function (r) { closure[r.soname] = r; });
    function node(rec, seen, depth) {
      var ul = el("ul", "tree");
      rec[6].forEach(function (soname) {
        var r = closure[soname], li = el("li");
        var found = r && r.path !== null;
        li.appendChild(document.createTextNode(str(soname) + " \u2192 " + (found ? str(r.path) : "not found") + " "));
        if (found) { li.appendChild(cat(r.cat)); li.appendChild(el("span", "muted", " " + (r.pkg || "unowned") + ", " + (r.lic || "\u2014"))); }
        else li.className = "missing";
        var next = found ? byPath[r.path] : null;
        if (next && seen.indexOf(r.path) < 0 && depth < 12) li.appendChild(node(next, seen.concat([r.path]), depth + 1));
        ul.appendChild(li);
      });
      return ul;
    }
    return node(e, [e[0]], 0);
  }
  // the license graph of one executable: an inline SVG, the executable on the left, each
  // library of its closure in the column of its depth (shortest DT_NEEDED chain), coloured
  // by its license category; an edge per DT_NEEDED entry; a node's title names its package
  // and license; clicking a node shows only its edges
  var CAT_COLORS = {"public-domain": "#3f8f5a", "permissive": "#5aa469", "weak-copyleft": "#d89b2b",
                    "copyleft": "#c9473f", "network-copyleft": "#8e1f1a", "proprietary": "#7b52ae", "unknown": "#9aa3b2"};
  var SVG = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, text) {
    var n = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function graph(e) {
    var closure = {};
    linked(e).forEach(function (r) { closure[r.soname] = r; });
    var depth = {}, order = [e[0]], edges = [];
    depth[e[0]] = 0;
    for (var i = 0; i < order.length && order.length < 400; i++) {
      var rec = byPath[order[i]];
      if (!rec) continue;
      (rec[6] || []).forEach(function (soname) {
        var r = closure[soname], to = r && r.path !== null ? r.path : "missing:" + str(soname);
        edges.push([order[i], to]);
        if (depth[to] === undefined) { depth[to] = depth[order[i]] + 1; order.push(to); }
      });
    }
    var cols = {}, W = 230, H = 26, pos = {};
    order.forEach(function (p) { (cols[depth[p]] = cols[depth[p]] || []).push(p); });
    var ncol = Object.keys(cols).length, nrow = Math.max.apply(null, Object.keys(cols).map(function (k) { return cols[k].length; }));
    var svg = svgEl("svg", {width: ncol * W + 20, height: nrow * H + 20, role: "img", "aria-label": "license graph of " + str(e[0])});
    Object.keys(cols).forEach(function (d) { cols[d].forEach(function (p, row) { pos[p] = [10 + d * W, 10 + row * H]; }); });
    var lines = svgEl("g", {}), nodes = svgEl("g", {});
    svg.appendChild(lines); svg.appendChild(nodes);
    edges.forEach(function (ed) {
      var a = pos[ed[0]], b = pos[ed[1]];
      if (!a || !b) return;
      var l = svgEl("line", {x1: a[0] + 180, y1: a[1] + 9, x2: b[0], y2: b[1] + 9, stroke: "#8899aa", "stroke-width": 1});
      l.dataset.from = String(ed[0]); l.dataset.to = String(ed[1]);
      lines.appendChild(l);
    });
    order.forEach(function (p) {
      var missing = typeof p === "string" && p.indexOf("missing:") === 0, rec = missing ? null : byPath[p];
      var r = null;
      Object.keys(closure).forEach(function (k) { if (closure[k].path === p) r = closure[k]; });
      var catName = missing ? "unknown" : D.cats[p === e[0] ? e[4] : (r ? r.cat : (rec ? rec[4] : null))] || "unknown";
      var g = svgEl("g", {transform: "translate(" + pos[p][0] + "," + pos[p][1] + ")", cursor: "pointer"});
      g.appendChild(svgEl("rect", {width: 180, height: 18, rx: 3, fill: missing ? "#fff" : CAT_COLORS[catName],
                                   stroke: missing ? "#c9473f" : "none", "stroke-dasharray": missing ? "3 2" : "none"}));
      var label = missing ? p.slice(8) + " (not found)" : (str(p) || "").split("/").pop();
      g.appendChild(svgEl("text", {x: 4, y: 13, "font-size": 11, fill: missing ? "#c9473f" : "#fff"}, label.slice(0, 28)));
      var who = missing ? "not found by the loader" : (p === e[0] ? (pkgName(e[2]) || "unowned") + ", " + (str(e[3]) || "\u2014")
                : (r ? (r.pkg || "unowned") + ", " + (r.lic || "\u2014") : ""));
      g.appendChild(svgEl("title", {}, (missing ? label : str(p)) + ": " + who + " (" + catName + ")"));
      g.addEventListener("click", function () {
        var on = g.dataset.on !== "1";
        nodes.querySelectorAll("g").forEach(function (x) { x.dataset.on = ""; });
        g.dataset.on = on ? "1" : "";
        lines.querySelectorAll("line").forEach(function (l) {
          var mine = l.dataset.from === String(p) || l.dataset.to === String(p);
          l.setAttribute("stroke-opacity", !on || mine ? "1" : "0.08");
          l.setAttribute("stroke-width", on && mine ? "2" : "1");
        });
      });
      nodes.appendChild(g);
    });
    return svg;
  }
  function linkCell(e) {
    var c = el("td");
    if (!e[7] || !e[7].length) { c.appendChild(el("span", "muted", e[5] & 1 ? "statically linked" : "links nothing")); return c; }
    var det = el("details"), s = strictest(e);
    det.appendChild(el("summary", null, e[7].length + " libraries; strictest: " + (D.cats[s] || "\u2014")));
    det.addEventListener("toggle", function () {
      if (!det.open || det.dataset.done) return;
      det.dataset.done = "1";
      var t = el("table"), head = el("tr");
      ["soname", "path", "package", "license", "category"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      t.appendChild(el("thead")).appendChild(head);
      var body = t.appendChild(el("tbody"));
      linked(e).forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(td(str(r.soname), "mono"));
        tr.appendChild(r.path === null ? td(el("span", "missing", "not found"), "path") : td(str(r.path), "path"));
        [td(r.pkg, "mono"), td(r.lic, "mono"), td(cat(r.cat))].forEach(function (x) { tr.appendChild(x); });
        body.appendChild(tr);
      });
      det.appendChild(t);
      var btn = el("button", "tree-toggle", "dependency tree");
      btn.type = "button"; btn.dataset.path = str(e[0]);
      var box = el("div", "tree-box");
      btn.addEventListener("click", function () { if (box.firstChild) box.textContent = ""; else box.appendChild(tree(e)); });
      det.appendChild(btn);
      var gbtn = el("button", "graph-toggle", "license graph");
      gbtn.type = "button"; gbtn.dataset.path = str(e[0]);
      var gbox = el("div", "graph-box");
      gbtn.addEventListener("click", function () { if (gbox.firstChild) gbox.textContent = ""; else gbox.appendChild(graph(e)); });
      det.appendChild(box); det.appendChild(gbtn); det.appendChild(gbox);
    });
    c.appendChild(det);
    return c;
  }
  var executables = D.E.filter(function (e) { var t = D.types[e[1]]; return t === "executable" || t === "pie"; });
  pagedTable(document.getElementById("executables-table"), executables, [
    {cell: function (e) { var c = td(str(e[0]), "path"); if (e[5] & 6) c.appendChild(frag(" ", el("span", "sev high", "set-id"))); if (e[5] & 1) c.appendChild(el("span", "muted", " static")); return c; }, sort: function (e) { return str(e[0]); }},
    {cell: function (e) { return td(pkgName(e[2]) || "unowned", "mono"); }, sort: function (e) { return pkgName(e[2]) || ""; }},
    {cell: function (e) { return td(frag((str(e[3]) || "\u2014") + " ", cat(e[4]))); }, sort: function (e) { return e[4]; }},
    {cell: linkCell, sort: strictest}
  ], function (e) { return str(e[0]) + " " + (pkgName(e[2]) || "unowned") + " " + (str(e[3]) || ""); }, searchFor("executables-table"));

  // unowned files, by tree: [top, files]; members are the unowned records of that tree
  var members = {};
  D.E.forEach(function (e) { if (e[2] < 0 && e[8] !== undefined && e[8] !== null) (members[e[8]] = members[e[8]] || []).push(e); });
  var known = {};
  D.T.forEach(function (t) { known[t[0]] = 1; });
  var trees = D.T.slice();
  Object.keys(members).forEach(function (k) { if (!known[k]) trees.push([Number(k), members[k].length]); });
  pagedTable(document.getElementById("unowned-table"), trees, [
    {cell: function (t) {
      var c = td(""), det = el("details");
      det.appendChild(el("summary", "path", str(t[0])));
      det.addEventListener("toggle", function () {
        if (!det.open || det.dataset.done) return;
        det.dataset.done = "1";
        var list = members[t[0]] || [], ul = el("ul", "members");
        list.slice(0, 2000).forEach(function (e) { ul.appendChild(el("li", null, str(e[0]) + "  (" + D.types[e[1]] + ")")); });
        if (list.length > 2000) ul.appendChild(el("li", "muted", "\u2026 and " + (list.length - 2000) + " more in result.json"));
        det.appendChild(ul);
      });
      c.appendChild(det);
      return c;
    }, sort: function (t) { return str(t[0]); }},
    {cell: function (t) { return td(String(t[1]), "num"); }, sort: function (t) { return t[1]; }},
    {cell: function (t) { return td(String((members[t[0]] || []).length), "num"); }, sort: function (t) { return (members[t[0]] || []).length; }}
  ], function (t) { return str(t[0]) + " " + (members[t[0]] || []).map(function (e) { return str(e[0]); }).join(" "); }, searchFor("unowned-table"));

  // small static tables (rules, errors, unresolved): click a header to sort
  document.querySelectorAll("table.sortable:not(.paged)").forEach(function (table) {
    if (table === ftable) return;
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains("sorted-asc");
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        rows.sort(function (a, b) {
          var ca = a.cells[col], cb = b.cells[col];
          var x = ca ? (ca.getAttribute("data-sort") || ca.textContent).trim() : "", y = cb ? (cb.getAttribute("data-sort") || cb.textContent).trim() : "";
          var nx = parseFloat(x), ny = parseFloat(y), c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.body.setAttribute("data-ready", "1");
}
})();
