"""The app's two HTTP APIs over the same service functions: Gradio's endpoints and a plain REST API.

`gradio_api.register(demo)` declares Gradio's endpoints while the UI is built; `rest.app_kwargs()` goes
to `demo.launch(app_kwargs=...)` and adds the REST routes and the one-line answers to malformed bodies.
"""
