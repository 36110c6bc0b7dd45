"""SPDX 2.3 software bill of materials of one scanned target, built with spdx-tools.

:func:`to_document` turns a result document into an ``spdx_tools`` model;
:func:`write_json` and :func:`write_tagvalue` validate it in full (raising ValueError on
any message) and write it with spdx-tools' writers, as SPDX JSON or tag-value.
:func:`validation_messages` is spdx-tools' ``validate_full_spdx_document`` with its
relationship checks made in linear time (the library's own take half a minute on a /usr
scan). The document follows these SPDX 2.3 sections:

* 6 Document creation information: ``SPDX-2.3``, ``CC0-1.0``, ``SPDXRef-DOCUMENT``, a
  deterministic namespace (UUIDv5 of the target's root and the scan's start time, so
  rendering one result twice gives the same document), creator ``Tool: flightcheck-<v>``,
  created = the scan's start.
* 7 Package information: one package per installed package (``rpm``/``dpkg``), with
  its purl as a PACKAGE-MANAGER external reference (7.21), its declared license as an
  SPDX expression (7.15), supplier = the vendor or maintainer (7.5) and, when it contains
  ELF files of the document, files-analyzed true and a verification code (7.9) over
  their SHA1s. One more package holds the ELF files no package database claims
  (``SPDXRef-Package-unowned-files``), and one package stands for the scanned system
  itself (``SPDXRef-Target``, purpose OPERATING-SYSTEM).
* 8 File information: one file per ELF record of the result: ``./<path>``, SHA1 and
  SHA256, type BINARY (and APPLICATION for executables), licenses NOASSERTION.
* 10 Other licensing information: every ``LicenseRef-`` used, with the text the package
  database has for it (the result's ``license_refs``; the id itself when it has none).
  ``LicenseRef-`` ids are written as the result has them; other ids as the SPDX License
  List known to spdx-tools spells them, and an id not on it becomes a ``LicenseRef-``
  standing for it (noted in the package's license comment), so the document stays valid.
* 11 Relationships: ``SPDXRef-DOCUMENT DESCRIBES SPDXRef-Target``; the target CONTAINS
  every package; a package CONTAINS its files; ``A DYNAMIC_LINK B`` when ELF file A
  loads library B at run time (11.1: "SPDXRef-A dynamically links to SPDXRef-B"; example:
  an application dynamically links to ``zlib.so``). The edges come from each file's link
  closure (what ``ldd`` would list) where the library is a file of the document; those
  that are not the file's own DT_NEEDED entries carry a comment saying ``transitive``.

Strings from the target may hold anything. SPDX ids are built from letters, digits,
``.`` and ``-`` plus a hash (unique by construction); free text keeps its characters but
control characters and undecodable bytes become visible ``\\xNN`` escapes, and the few
values tag-value would misread (``</text>`` in a text block, a value that starts like a
tag value such as ``Tool:`` or ``NOASSERTION``) get their first ``<``/letter escaped the
same way. The same model is written in both formats.

The package: :mod:`~scanner.reports.spdx.document` (one converter per SPDX element, and
:func:`to_document`), :mod:`~scanner.reports.spdx.licenses` (license values and
``LicenseRef-`` ids), :mod:`~scanner.reports.spdx.text` (strings and ids),
:mod:`~scanner.reports.spdx.values` (small values: supplier, references, dates),
:mod:`~scanner.reports.spdx.validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spdx_tools.spdx.writer.json import json_writer
from spdx_tools.spdx.writer.tagvalue import tagvalue_writer

from scanner.reports.spdx.document import (
    DOCUMENT_ID, NAMESPACE_BASE, SPDX_VERSION, TARGET_ID, TRANSITIVE, UNOWNED_ID, to_document,
)
from scanner.reports.spdx.text import line, text
from scanner.reports.spdx.validation import validate_document, validation_messages

__all__ = ["DOCUMENT_ID", "NAMESPACE_BASE", "SPDX_VERSION", "TARGET_ID", "TRANSITIVE", "UNOWNED_ID", "line", "text",
           "to_document", "validate_document", "validation_messages", "write_json", "write_tagvalue"]


def write_json(doc: Mapping[str, Any], dest: Path, validate: bool = True) -> None:
    """Write the SPDX 2.3 JSON document of a result, validated first unless ``validate``
    is false (nothing is written when validation fails)."""
    document = to_document(doc)
    if validate:
        validate_document(document)
    with open(dest, "w", encoding="utf-8") as out:
        json_writer.write_document_to_stream(document, out, validate=False, drop_duplicates=False)


def write_tagvalue(doc: Mapping[str, Any], dest: Path, validate: bool = True) -> None:
    """Write the SPDX 2.3 tag-value document of a result, validated first unless
    ``validate`` is false (nothing is written when validation fails)."""
    document = to_document(doc)
    if validate:
        validate_document(document)
    with open(dest, "w", encoding="utf-8") as out:
        tagvalue_writer.write_document_to_stream(document, out, validate=False, drop_duplicates=False)
