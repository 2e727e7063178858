"""Type stubs of the native module (python/src): the engine's calls as the Python layer makes them."""

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

__version__: str

class StarflowError(Exception):
    exit_code: int

class UsageError(StarflowError): ...
class SQLError(StarflowError): ...
class DataError(StarflowError): ...
class OutputError(StarflowError): ...
class EngineError(StarflowError): ...

class Batches(Iterator[pa.RecordBatch]):
    """A query's result batches; iterating waits for each without the GIL."""

    @property
    def schema(self) -> pa.Schema: ...
    def __iter__(self) -> Batches: ...
    def __next__(self) -> pa.RecordBatch: ...
    def close(self) -> None: ...

class StarflowUdf:
    """One StarFlow SQL function, for ``datafusion.udf``."""

    @property
    def name(self) -> str: ...
    def __datafusion_scalar_udf__(self) -> object: ...

def sql(
    sql: str,
    tables: Mapping[str, str] | None = None,
    defines: Mapping[str, str] | None = None,
    models: str | None = None,
    threads: int | None = None,
    s3: Mapping[str, Any] | None = None,
) -> Batches: ...
def catalog(
    input: str,
    output_dir: str,
    release: str = "dr19",
    method: str = "v2",
    cn_flag: bool = True,
    models: str | None = None,
    threads: int | None = None,
    s3: Mapping[str, Any] | None = None,
) -> dict[str, Any]: ...
def models(models: str | None = None) -> str: ...
def functions(models: str | None = None) -> str: ...
def udfs(models: str | None = None, threads: int | None = None) -> list[StarflowUdf]: ...
