"""The hangar package: one page served over HTTP, so that every test tier has something real to
test. Replace it with your own code; keep a test per tier."""

__version__ = "0.1.0"
