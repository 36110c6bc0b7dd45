"""scanner.result: the document every later stage reads, and its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from scanner import result as resultmod


def test_fixture_result_validates(rpmroot_result: dict) -> None:
    resultmod.validate(rpmroot_result)
    assert rpmroot_result["schema"] == "flightcheck/result/1"
    assert rpmroot_result["target"]["os"]["ID"] == "fixture"
    assert rpmroot_result["target"]["machine"] == "x86_64"


def test_hostile_result_validates(hostile_root: Path) -> None:
    from conftest import scan_root

    doc = scan_root(hostile_root)
    resultmod.validate(doc)
    assert doc["summary"]["errors"] == len(doc["errors"]) > 0


def test_schema_rejects_a_broken_document(rpmroot_result: dict) -> None:
    doc = json.loads(json.dumps(rpmroot_result))
    doc["elves"][0]["closure"]["libx.so.1"] = "relative/path"
    with pytest.raises(jsonschema.ValidationError):
        resultmod.validate(doc)
    doc = json.loads(json.dumps(rpmroot_result))
    del doc["elves"][0]["imports"]
    with pytest.raises(jsonschema.ValidationError):
        resultmod.validate(doc)


def test_write_and_load_round_trip(rpmroot_result: dict, tmp_path: Path) -> None:
    dest = resultmod.write(rpmroot_result, tmp_path / "new" / "dir")
    assert dest == tmp_path / "new" / "dir" / "result.json"
    assert resultmod.load(dest) == rpmroot_result
    (tmp_path / "other.json").write_text('{"schema": "something/else"}')
    with pytest.raises(ValueError):
        resultmod.load(tmp_path / "other.json")


def test_undecodable_names_stay_valid_json(tmp_path: Path, rpmroot: Path) -> None:
    from conftest import scan_root

    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    weird = root.joinpath("usr/bin").as_posix().encode() + b"/caf\xe9-\xff"
    Path(weird.decode("utf-8", "surrogateescape")).write_bytes((rpmroot / "usr/bin/static-app").read_bytes())
    doc = scan_root(root)
    resultmod.validate(doc)
    (elf,) = doc["elves"]
    assert elf["path"] == "/usr/bin/caf\\xe9-\\xff"
    dest = resultmod.write(doc, tmp_path / "out")
    dest.read_bytes().decode("utf-8")  # strict UTF-8


def test_undecodable_bytes_in_options_and_target_facts(rpmroot: Path, tmp_path: Path) -> None:
    """An option or a target fact holding a byte that is not UTF-8 (a --path or --exclude
    naming a guest file by its raw bytes) is written in the visible spelling: result.json
    stays strict UTF-8 JSON instead of the scan failing when it is written."""
    import subprocess
    import sys

    out = tmp_path / "out"
    argv = [sys.executable.encode(), b"-m", b"scanner", b"scan", str(rpmroot).encode(), b"-o", str(out).encode(),
            b"--no-progress", b"--fail-on", b"never", b"--exclude", b"/x\xff*", b"--path", b"/usr/bin/\xfe"]
    run = subprocess.run(argv, capture_output=True)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    doc = json.loads((out / "result.json").read_bytes().decode("utf-8", errors="strict"))
    assert doc["scan"]["options"]["exclude"] == ["/x\\xff*"]
    assert doc["scan"]["options"]["paths"] == ["/usr/bin/\\xfe"]
