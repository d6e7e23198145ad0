"""HTML the platform writes: offline Data Docs (vendored third-party assets, ``static/``) and
the evaluation report (Jinja2 templates, ``templates/``)."""
