"""Matchers for `assert_that` shared by the Beam job tests."""

from apache_beam.testing.util import BeamAssertException


def dead_letters_match(expected: dict[str, str], source: str, file: str):
    """Returns a matcher: one dead letter per `expected` raw line, its reason holding the text.

    Args:
      expected: Maps each rejected raw line to a substring its reason must contain.
      source: Expected "source" of every dead letter.
      file: Expected "file" of every dead letter.
    """

    def match(actual):
        by_raw = {letter["raw"]: letter for letter in actual}
        if len(by_raw) != len(actual) or set(by_raw) != set(expected):
            raise BeamAssertException(
                f"dead letters for {sorted(by_raw)}, expected {sorted(expected)}"
            )
        for raw, fragment in expected.items():
            letter = by_raw[raw]
            if set(letter) != {"source", "file", "line", "raw", "reason"}:
                raise BeamAssertException(f"dead letter keys {sorted(letter)}")
            if not isinstance(letter["line"], int) or letter["line"] < 1:
                raise BeamAssertException(f"dead letter without a line number: {letter}")
            if letter["source"] != source or letter["file"] != file:
                raise BeamAssertException(f"wrong source/file in {letter}")
            if fragment not in letter["reason"]:
                raise BeamAssertException(f"reason {letter['reason']!r} lacks {fragment!r}")

    return match
