"""Every plotly figure of the inspection library: data in, a ``go.Figure`` out.

Kept apart from the pure functions one level up, so that code which only
computes (training, the API, the benchmarks) never imports plotly.
"""
