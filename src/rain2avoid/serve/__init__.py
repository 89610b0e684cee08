"""``rain2avoid serve``: a local web page and JSON HTTP API over the same pipeline (extra ``[web]``).

>>> from rain2avoid.serve import ServeSettings, create_app
>>> app = create_app(ServeSettings(jobs=1))          # a FastAPI app; run it with uvicorn
"""

try:
    from .app import ServeSettings, create_app
except ImportError as exc:  # FastAPI, uvicorn or one of theirs is missing
    raise ImportError(f'rain2avoid.serve needs FastAPI, uvicorn and python-multipart ({exc}): '
                      f'pip install "rain2avoid[web]"') from exc

__all__ = ["ServeSettings", "create_app"]
