"""The Gradio UI. Here: the typed per-user state, the controls, the one view and the wiring of actions to events;
`panels/` one module per tab or panel, `draw/` pure drawing (HTML, figures, table rows), `assets/` the CSS and JS.
"""
