"""cxlake: customer-experience metrics (nps, csat, churn_rate, ...) in SQL over Parquet lakes.

    >>> import cxlake
    >>> lake = cxlake.Lake()  # the built-in sample lake
    >>> lake.sql("SELECT channel, nps(score) AS nps FROM surveys GROUP BY channel").to_polars()
"""

from ._cxlake import CxlakeError, Lake, Result, __version__

__all__ = ["CxlakeError", "Lake", "Result", "__version__"]
