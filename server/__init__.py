"""The app's two HTTP APIs over the same service functions: Gradio's endpoints and a plain REST API."""
