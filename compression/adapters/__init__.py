"""Compression adapters, one module per model family (family name -> module path).

Each module defines `Adapter`, a `compression.adapter.FamilyAdapter` subclass.
"""

ADAPTERS = {
    "superres": "compression.adapters.superres",
    "speech": "compression.adapters.speech",
    "tumor": "compression.adapters.tumor",
    "colorize": "compression.adapters.colorize",
}
