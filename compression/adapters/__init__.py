"""Compression adapters, one module per model family (family name -> module path).

Each module defines `Adapter`, a `compression.adapter.FamilyAdapter` subclass.
"""

ADAPTERS = {
    "superres": "compression.adapters.superres",
}
