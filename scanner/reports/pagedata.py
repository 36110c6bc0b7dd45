"""The compact JSON the HTML report embeds, from which the page's own JavaScript renders
findings, packages, executables and unowned files on demand.

A host holds tens of thousands of ELF files, findings and closure entries; written out as
table rows they made a 14 MB page. Here every string is written once, in a shared table
``S``, and every path once as a node of a directory tree (``P`` parents, ``N`` names), so
``/usr/lib/x86_64-linux-gnu`` is spelled once for the thousands of files below it. Records
refer to them by number:

* a reference ``r >= 0`` is ``S[r]``; ``r < 0`` is the path of node ``-r - 1``;
  ``null`` (or a missing trailing value) is no value. A node's parent is ``P[i]`` nodes
  before it (0: a top-level name), so most parents are a digit or two.
* the findings are listed in group order, so a group's members are ``[first, count]``.
* a finding's message has its subject replaced by ``\\x01`` (a character the visible
  spelling never leaves), so the 14,000 messages "X belongs to no installed package" share
  one string.
* evidence keeps its shape: a string is a reference, a list is a list, an object is
  ``["{", key, value, key, value ...]`` (keys are references too), any other value (a
  number, a boolean, null) is ``["=", value]``: a list whose first item is a raw string,
  which an encoded list never holds.
* an executable's closure lists sonames; the library a soname resolves to is the one most
  executables resolve it to (``R``) unless the entry says otherwise (``[soname, path]``),
  and the library's package, license and category are those of its ELF record unless the
  entry carries them (``[soname, path, package, license, category]``).

Every string is in the visible spelling (:func:`scanner.textsafe.visible`) before it goes
in; the JSON is escaped for a ``<script>`` element by the renderer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from scanner.findings import SEV_RANK, SEVERITIES, STATES
from scanner.licensing.categories import ORDER as CATEGORY_ORDER
from scanner.reports.groups import RuleGroup, group_findings
from scanner.textsafe import visible

SUBJECT = "\x01"
#: evidence keys the page leaves out: a digest per file is a third of a host's page, and
#: result.json and the PDF's attachments keep them
LEFT_OUT = frozenset({"sha256", "sha1"})
KINDS = ("tree", "package", "subject")
TYPES = ("executable", "pie", "shared-library", "relocatable", "kernel-module", "debuginfo", "other")
STATUSES = ("exact", "guess", "unknown", "none")
#: the number of members a group shows before "show more"
EXECUTABLE_TYPES = ("executable", "pie")


class Pack:
    """The shared tables: strings and path nodes, each written once."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._s: dict[str, int] = {}
        self.parents: list[int] = []
        self.names: list[str] = []
        self._p: dict[str, int] = {}

    def _node(self, path: str) -> int:
        """The node of ``path``, its missing ancestors added (iteratively: a hostile path
        may be thousands of levels deep)."""
        missing = []
        while path and path not in self._p:
            missing.append(path)
            path = path.rpartition("/")[0]
        node = self._p[path] if path else -1
        for p in reversed(missing):
            self._p[p] = len(self.names)
            self.parents.append(node)
            self.names.append(p.rpartition("/")[2])
            node = self._p[p]
        return node

    def ref(self, value: Any) -> int | None:
        """The reference of a string (a path when it is absolute and has no empty part)."""
        if value is None:
            return None
        return self.spelled(visible(str(value)))

    def spelled(self, s: str) -> int:
        """The reference of a string already in its visible spelling (a message holding
        the subject's place mark, which :func:`visible` would escape)."""
        if s.startswith("/") and len(s) > 1 and "//" not in s and not s.endswith("/"):
            return -self._node(s) - 1
        found = self._s.get(s)
        if found is None:
            found = self._s[s] = len(self.strings)
            self.strings.append(s)
        return found

    def tree(self, value: Any) -> Any:
        """Evidence, encoded (see the module's docstring)."""
        if isinstance(value, str):
            return self.ref(value)
        if isinstance(value, Mapping):
            return ["{", *[x for k, v in value.items() if k not in LEFT_OUT
                           for x in (self.ref(str(k)), self.tree(v))]]
        if isinstance(value, list | tuple):
            return [self.tree(v) for v in value]
        return ["=", value]


def _trim(row: list[Any]) -> list[Any]:
    """``row`` without its trailing ``None`` values (the page reads a missing value as none)."""
    while row and row[-1] is None:
        row.pop()
    return row


def _code(table: tuple[str, ...], value: Any) -> int:
    return table.index(value) if value in table else len(table) - 1


def _findings(pack: Pack, doc: Mapping[str, Any], rules: list[RuleGroup]) -> tuple[list[Any], list[Any]]:
    """The rule groups and the findings they point at, in the order the groups list them."""
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    state = {s: i for i, s in enumerate(STATES)}
    out_rules: list[Any] = []
    out_findings: list[Any] = []
    for r_index, rg in enumerate(rules):
        groups = []
        for g in rg.groups:
            members = []
            for f in g.findings:
                subject = visible(str(f["subject"]))
                message = visible(str(f["message"]))
                if subject:
                    message = message.replace(subject, SUBJECT)
                waiver = f.get("waiver")
                members.append(len(out_findings))
                out_findings.append(_trim([r_index, sev[f["severity"]], state.get(f["state"], 0), pack.ref(f["subject"]),
                                     pack.spelled(message), pack.tree(f.get("evidence") or {}),
                                     [pack.ref(waiver.get("reason")), pack.ref(waiver.get("expires"))]
                                     if waiver else None]))
            groups.append([KINDS.index(g.kind), pack.ref(g.key), pack.ref(g.label), state.get(g.state, 0),
                           sev[g.severity], g.failing, [members[0], len(members)]])
        out_rules.append([pack.ref(rg.rule), pack.ref(rg.title), sev[rg.severity], rg.failing, groups])
    return out_rules, out_findings


def _defaults(doc: Mapping[str, Any]) -> dict[str, str | None]:
    """Each soname's most common resolution over every executable's closure."""
    seen: dict[str, Counter[str | None]] = {}
    for e in doc.get("elves", []):
        if e["type"] in EXECUTABLE_TYPES:
            for soname, path in e.get("closure", {}).items():
                seen.setdefault(soname, Counter())[path] += 1
    return {soname: c.most_common(1)[0][0] for soname, c in seen.items()}


def _closure(pack: Pack, e: Mapping[str, Any], defaults: Mapping[str, str | None],
             records: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for row in e.get("linked_licenses", []):
        soname, path = row["soname"], row.get("path")
        lib = records.get(path) if path else None
        derived = ((lib.get("owner"), lib.get("license"), lib.get("license_category")) if lib
                   else (None, None, "unknown"))
        if (row.get("package"), row.get("license"), row.get("category")) != derived:
            out.append([pack.ref(soname), pack.ref(path), pack.ref(row.get("package")), pack.ref(row.get("license")),
                        _code(CATEGORY_ORDER, row.get("category"))])
        elif soname in defaults and defaults[soname] == path:
            out.append(pack.ref(soname))
        else:
            out.append([pack.ref(soname), pack.ref(path)])
    return out


def _elves(pack: Pack, doc: Mapping[str, Any], packages: Mapping[str, int]) -> tuple[list[Any], dict[str, int]]:
    """Every ELF record but debug files: path, type, package, license, category, flags
    (1 static, 2 setuid, 4 setgid), needed sonames, closure (executables), unowned tree;
    trailing empty values left out."""
    records = {e["path"]: e for e in doc.get("elves", [])}
    defaults = _defaults(doc)
    out: list[Any] = []
    index: dict[str, int] = {}
    for e in doc.get("elves", []):
        if e["type"] == "debuginfo":
            continue
        owner = e.get("owner")
        flags = (1 if e.get("static") else 0) | (2 if e.get("setuid") else 0) | (4 if e.get("setgid") else 0)
        closure = _closure(pack, e, defaults, records) if e["type"] in EXECUTABLE_TYPES else None
        index[e["path"]] = len(out)
        out.append(_trim([pack.ref(e["path"]), _code(TYPES, e["type"]), packages.get(owner, -1) if owner else -1,
                    pack.ref(e.get("license")), _code(CATEGORY_ORDER, e.get("license_category")), flags,
                    [pack.ref(n) for n in e.get("needed", [])], closure,
                    pack.ref(e.get("tree")) if owner is None else None]))
    return out, index


def _packages(pack: Pack, doc: Mapping[str, Any]) -> tuple[list[Any], dict[str, int]]:
    out: list[Any] = []
    index: dict[str, int] = {}
    for p in sorted(doc.get("packages", []), key=lambda p: (p["name"], p["version"])):
        index[p["id"]] = len(out)
        version = p["version"] + (f"-{p['release']}" if p.get("release") else "")
        out.append([pack.ref(p["id"]), pack.ref(p["name"]), pack.ref(p.get("arch")), pack.ref(version),
                    pack.ref(p.get("license_raw")), pack.ref(p.get("license_spdx")),
                    _code(STATUSES, p.get("license_status")), [pack.ref(n) for n in p.get("license_notes") or []],
                    _code(CATEGORY_ORDER, p.get("license_category")), p.get("files", 0)])
    return out, index


def page_data(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as the page's JavaScript reads it (see the module's docstring)."""
    pack = Pack()
    rules, findings = _findings(pack, doc, group_findings(doc))
    packages, pkg_index = _packages(pack, doc)
    elves, _ = _elves(pack, doc, pkg_index)
    defaults = {pack.ref(s): pack.ref(p) for s, p in _defaults(doc).items()}
    trees = [[pack.ref(t.get("top")), t.get("files", 0)] for t in doc.get("unowned_trees") or []]
    unresolved = [[pack.ref(u["soname"]), len(u["needed_by"]), [pack.ref(p) for p in u["needed_by"][:20]]]
                  for u in doc.get("unresolved", [])]
    parents = [i - p if p >= 0 else 0 for i, p in enumerate(pack.parents)]
    return {"S": pack.strings, "P": parents, "N": pack.names,
            "sev": list(SEVERITIES), "states": list(STATES), "kinds": list(KINDS), "types": list(TYPES),
            "cats": list(CATEGORY_ORDER), "statuses": list(STATUSES),
            "rules": rules, "F": findings, "K": packages, "E": elves,
            "R": [[k, v] for k, v in defaults.items()], "T": trees, "U": unresolved,
            "rank": {s: SEV_RANK[s] for s in SEVERITIES}}


def unpack_ref(data: Mapping[str, Any], r: int | None) -> str | None:
    """A reference read back (for tests and tools: the page's JavaScript does the same)."""
    if r is None:
        return None
    if r >= 0:
        return str(data["S"][r])
    node, parts = -r - 1, []
    while node >= 0:
        parts.append(data["N"][node])
        step = data["P"][node]
        node = node - step if step else -1
    return "/" + "/".join(reversed(parts))
