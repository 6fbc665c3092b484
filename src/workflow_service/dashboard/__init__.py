"""The web dashboard at /ui: server-rendered pages (Jinja2) with htmx for the live
parts and uPlot for recorder plots, both vendored under ``static/vendor``.

Pages are HTML shells that need no key; their script keeps the API key in the
browser session and sends it with every fragment and API request.
"""
