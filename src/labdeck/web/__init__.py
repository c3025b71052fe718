"""The web UI: page shells served by the labdeck server (``pages.py``) and the static
assets they load (``static/``: our CSS and ES modules, no build step). Every page reads and
changes data only through the public JSON APIs the CLI uses. Charts are our own SVG
(``static/lib/linechart.js``): no chart library to download."""
