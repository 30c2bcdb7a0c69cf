"""Feature dashboard: a static site of every latent (label, scores, text windows, audio clips,
logit lens, steering runs), built by `python -m autointerp.dashboard build` and served by
`… serve`. From a notebook:

    from autointerp.dashboard import show
    show("runs/tinycosy/dashboard", latent=42)   # serves it from a thread, returns an IFrame
"""

from autointerp.dashboard.build import BuildConfig, build_site
from autointerp.dashboard.serve import ServeConfig, SiteServer, open_server, serving, show, start

__all__ = ["BuildConfig", "ServeConfig", "SiteServer", "build_site", "open_server", "serving",
           "show", "start"]
