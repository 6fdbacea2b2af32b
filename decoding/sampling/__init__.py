"""The sampling stages: the knobs (pure, each equal to its reference), llama.cpp's samplers, the chain in the
chosen order, the typed parameters, presets and the stateless seeded draws."""
