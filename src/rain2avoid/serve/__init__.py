"""``rain2avoid serve``: a local web page and JSON HTTP API over the same pipeline (extra ``[web]``).

>>> from rain2avoid.serve import ServeSettings, create_app
>>> app = create_app(ServeSettings(jobs=1))          # a FastAPI app; run it with uvicorn
"""

from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
