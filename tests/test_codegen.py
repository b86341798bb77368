"""The committed wire/spec.py is exactly what wire/codegen.py generates from the XML."""

from __future__ import annotations

import difflib

from dispatchd.wire import codegen


def test_committed_spec_is_up_to_date():
    generated = codegen.generate(codegen.XML_PATH)
    committed = codegen.SPEC_PATH.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            "wire/spec.py (committed)",
            "wire/spec.py (generated)",
            n=1,
        )
    )
    assert generated == committed, "run `python -m dispatchd.wire.codegen`:\n" + diff[:4000]


def test_main_writes_the_module(tmp_path):
    target = tmp_path / "spec.py"
    codegen.main([str(target)])
    assert target.read_text() == codegen.generate()
