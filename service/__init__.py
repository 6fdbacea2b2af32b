"""The JSON operations shared by the UI, Gradio's API and REST: parsing, budgets, policy, prefetch, the look-ahead
tree, branch comparison and chat, over decoding, attribution and the backends (`operations` is the entry point)."""
