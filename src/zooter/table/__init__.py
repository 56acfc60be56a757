"""Routing tables: the format and its validation (``schema``), the Arrow fast path, the validated-table
cache (``cache``), split rules (``splits``) and the embedded synthetic generator (``synth``).
Nothing here imports torch or Lightning."""
