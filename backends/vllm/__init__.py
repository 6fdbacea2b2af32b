"""The vLLM backend: the engine process and its batching, the logits rows through shared memory, CPU settings.
Nothing here imports vLLM at import time; `backend.start` does, when a model is loaded for it."""
