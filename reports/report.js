/* flightcheck report: table sorting, filtering and dependency trees. No network, no
   libraries; the data for the trees is the JSON block #graph in this page. */
(function () {
  "use strict";
  function text(el) { return (el.getAttribute("data-sort") || el.textContent || "").trim(); }

  // sorting: click a header; numbers sort as numbers
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains("sorted-asc");
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        rows.sort(function (a, b) {
          var x = text(a.cells[col] || a), y = text(b.cells[col] || b);
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  // findings: free text, severity, rule and state filters
  var table = document.getElementById("findings-table");
  function applyFindings() {
    if (!table) return;
    var q = (document.getElementById("f-search").value || "").toLowerCase();
    var sev = document.getElementById("f-severity").value;
    var rule = document.getElementById("f-rule").value;
    var state = document.getElementById("f-state").value;
    var shown = 0, total = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
      if (!tr.classList.contains("finding")) return;
      total++;
      var ok = (!sev || tr.dataset.severity === sev) && (!rule || tr.dataset.rule === rule) &&
               (!state || tr.dataset.state === state) && (!q || tr.textContent.toLowerCase().indexOf(q) >= 0);
      tr.hidden = !ok;
      if (ok) shown++;
    });
    var count = document.getElementById("f-count");
    if (count) count.textContent = shown + " of " + total + " findings";
  }
  ["f-search", "f-severity", "f-rule", "f-state"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener("input", applyFindings); el.addEventListener("change", applyFindings); }
  });
  applyFindings();

  // other tables: one search box each
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase(), t = document.getElementById(input.dataset.filter);
      Array.prototype.forEach.call(t.tBodies[0].rows, function (tr) {
        tr.hidden = q && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });

  // dependency trees, built on demand from the embedded graph
  var graphEl = document.getElementById("graph");
  var graph = graphEl ? JSON.parse(graphEl.textContent) : {};
  // every soname resolves as the executable's own load resolved it (one library per
  // soname in a process), so the root's closure answers for the whole tree
  function node(path, root, seen, depth) {
    var ul = document.createElement("ul");
    ul.className = "tree";
    var g = graph[path], closure = (graph[root] || {}).c || {};
    if (!g) return ul;
    g.n.forEach(function (soname) {
      var li = document.createElement("li");
      var target = closure[soname];
      li.textContent = soname + " \u2192 " + (target === null || target === undefined ? "not found" : target);
      if (target === null || target === undefined) li.className = "missing";
      if (target && seen.indexOf(target) < 0 && depth < 12) li.appendChild(node(target, root, seen.concat([target]), depth + 1));
      ul.appendChild(li);
    });
    return ul;
  }
  document.querySelectorAll("button.tree-toggle").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var box = btn.nextElementSibling;
      if (box.firstChild) { box.textContent = ""; return; }
      box.appendChild(node(btn.dataset.path, btn.dataset.path, [btn.dataset.path], 0));
    });
  });
})();
