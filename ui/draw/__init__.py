"""Pure drawing: service results and session data in, HTML strings, Plotly figures and table rows out (no events)."""
