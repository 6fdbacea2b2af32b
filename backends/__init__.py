"""Where the logits come from: the model store (`model`), the backend interface (`base`), the transformers
backend with its prefix KV cache (`prefix_cache`), the vLLM backend (`vllm`), their settings (`settings`) and the
lane that serialises work on the model (`lane`)."""
