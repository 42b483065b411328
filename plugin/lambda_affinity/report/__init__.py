"""What people see: dependency-free SVG charts (charts.py), the run's time series (timeline.py), the
summary as console text, CSV, HTML and SVG (render.py), and the web UI's Affinity tab (webui.py, static/).
It knows nothing of Locust's runners: the plugin hands it a LiveView."""
