from __future__ import annotations

from streambench import analyze


def test_every_public_name_imports_and_all_is_sorted() -> None:
    assert analyze.__all__ == sorted(analyze.__all__, key=lambda n: (not n.isupper(), n))
    for name in analyze.__all__:
        assert getattr(analyze, name) is not None, name
    assert callable(analyze.metrics)  # the function, not the module of the same topic
