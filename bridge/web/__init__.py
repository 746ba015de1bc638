"""HTTP handlers, one module per endpoint family; ``routes.py`` wires them."""
