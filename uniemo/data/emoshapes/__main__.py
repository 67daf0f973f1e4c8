"""``python -m uniemo.data.emoshapes --out DIR ...``: generate an EmoShapes dataset (see ``writer.main``)."""

from uniemo.data.emoshapes.writer import main

main()
