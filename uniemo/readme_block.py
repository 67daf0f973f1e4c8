"""A generated block of a README: the text between a start and an end marker, rewritten by the command that
measures it (``eval/tiny_report.py``'s table, ``train/claims.py``'s table), everything around it untouched."""

from __future__ import annotations

from pathlib import Path


def check_block(path: str | Path, start: str, end: str) -> str:
    """The text of ``path``, or ``ValueError`` when it lacks either marker."""
    text = Path(path).read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} ... {end} block to rewrite")
    return text


def replace_block(path: str | Path, start: str, end: str, body: str) -> None:
    """Put ``body`` (on lines of its own) between the first ``start`` and the ``end`` after it."""
    head, rest = check_block(path, start, end).split(start, 1)
    tail = rest.split(end, 1)[1]
    Path(path).write_text(f"{head}{start}\n{body.strip()}\n{end}{tail}")


def quoted_block(text: str, start: str, end: str) -> str:
    """What a README's block holds now (stripped)."""
    return text.split(start, 1)[1].split(end, 1)[0].strip()
