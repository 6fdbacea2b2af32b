"""View helpers for the Gradio app: figures, table rows, token spans and per-session state."""
