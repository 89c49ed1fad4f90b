import os
from typing import Any, Mapping, Sequence, Union

import pyarrow

__version__: str

Location = Union[str, "os.PathLike[str]"]
ParamValue = Union[None, bool, int, float, str]

class CxlakeError(Exception):
    """An error from the cxlake engine (SQL that does not parse or plan, a missing table, invalid
    input to a metric); the message is the engine's."""

class Result:
    """A planned query. Each consumption runs the query again."""

    @property
    def schema(self) -> pyarrow.Schema: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def to_arrow(self) -> pyarrow.Table: ...
    def to_batches(self) -> list[pyarrow.RecordBatch]: ...
    def to_polars(self) -> Any: ...
    def to_pandas(self) -> Any: ...
    def _repr_html_(self) -> str: ...

class Lake:
    def __init__(
        self,
        tables: Mapping[str, Location] | None = None,
        lake: Location | Sequence[Location] | None = None,
        target_partitions: int | None = None,
        batch_size: int | None = None,
        memory_limit: int | str | None = None,
        storage_options: Mapping[str, str] | None = None,
        cluster: str | None = None,
    ) -> None: ...
    def register(self, name: str, data: Location | Any) -> None: ...
    def sql(self, query: str, params: Mapping[str, ParamValue] | None = None) -> Result: ...
    def functions(self) -> list[dict[str, str]]: ...
    def tables(self) -> list[str]: ...
