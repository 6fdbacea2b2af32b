"""The explorer's tabs and panels, one module each: `create_*` builds its components, `wire_*` wires its events."""
