"""starflow from Python: SQL over stellar catalogues with StarFlow ages, masses, densities and flags as columns.

The engine is the starflow command's (Rust, Apache DataFusion, ONNX Runtime), so the numbers are the CLI's, bit for
bit. Results come back as pyarrow objects (``.to_pandas()`` for pandas); the StarFlow SQL functions can also be added
to a datafusion-python ``SessionContext`` with :func:`register`.

Models: the ``models`` argument, else ``$STARFLOW_MODELS``, else the models bundled in this package. ONNX Runtime:
``$ORT_DYLIB_PATH``, else the library of the ``onnxruntime`` wheel this package depends on.

Errors raise :class:`StarflowError` subclasses carrying the CLI's one-line message (``SQLError``, ``DataError``,
``OutputError``, ``UsageError``, ``EngineError``; ``exit_code`` is the CLI's). Calls release the GIL while they run;
Ctrl-C stops the running statements (a file being written is removed, the previous one stays) and raises
``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from starflow import _runtime
from starflow._starflow import (
    DataError,
    EngineError,
    OutputError,
    SQLError,
    StarflowError,
    UsageError,
    __version__,
)
from starflow import _starflow

if TYPE_CHECKING:
    import datafusion

__all__ = [
    "sql",
    "sql_stream",
    "catalog",
    "models",
    "functions",
    "register",
    "StarflowError",
    "UsageError",
    "SQLError",
    "DataError",
    "OutputError",
    "EngineError",
    "__version__",
]

_runtime.find_onnxruntime()


def sql_stream(
    query: str,
    tables: Mapping[str, str] | None = None,
    defines: Mapping[str, str] | None = None,
    models: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    s3: Mapping[str, Any] | None = None,
) -> pa.RecordBatchReader:
    """Run ``query`` and stream the last statement's rows as they are computed.

    ``query`` holds one or more ``;``-separated statements (``SET``, ``CREATE VIEW``, ``COPY ... TO``, ...), run in
    order; the reader yields the last one's batches. A catalogue larger than memory is read batch by batch: the
    engine computes the next batches only as they are read. Closing the reader (or reading it to the end) stops the
    query.

    Args:
        query: SQL, DataFusion's dialect with the StarFlow functions (``starflow.functions()``).
        tables: ``{name: url}`` tables to register first: a Parquet, CSV or FITS file, directory or glob, local or
            ``s3://``, ``gs://``, ``az://``, ``http(s)://`` (the CLI's ``--table NAME=URL``).
        defines: ``{name: value}`` replacing ``${name}`` in ``query`` (``${name:-default}`` has a default), as the
            CLI's ``--define``: e.g. ``queries/dr19_inputs.sql`` with ``{"input": path}``.
        models: the models directory (default: ``$STARFLOW_MODELS``, else the bundled models).
        threads: query and inference threads, 1 to 256 (default: the cores).
        s3: S3 settings, ``{"endpoint": url, "region": name, "unsigned": bool, "instance_metadata": bool}``
            (credentials come from the environment and AWS profiles, as for the CLI).

    Returns:
        A ``pyarrow.RecordBatchReader`` (an empty schema when the last statement returns no rows).
    """
    batches = _starflow.sql(
        query, dict(tables or {}), dict(defines or {}), _runtime.models_dir(models), threads, _s3(s3)
    )
    return pa.RecordBatchReader.from_batches(batches.schema, batches)


def sql(
    query: str,
    tables: Mapping[str, str] | None = None,
    defines: Mapping[str, str] | None = None,
    models: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    s3: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Run ``query`` and return the last statement's rows as a ``pyarrow.Table`` (see :func:`sql_stream`).

    >>> stars = {"stars": "examples/data/astraAllStarASPCAP_apokasc3.parquet"}
    >>> starflow.sql("SELECT count(*) AS n FROM stars", tables=stars).to_pandas()
    """
    return sql_stream(query, tables, defines, models, threads, s3).read_all()


def catalog(
    input: str,
    output_dir: str,
    release: str = "dr19",
    method: str = "v2",
    cn_flag: bool = True,
    models: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    s3: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the StarFlow catalogue of ``input`` to ``output_dir``, as ``starflow catalog`` does.

    Three Parquet files, row-matched to the input: ``StarFlow_summary.parquet``, ``StarFlow_age_posterior.parquet``,
    ``StarFlow_mass_posterior.parquet``. They replace the directory's previous three together, or not at all (an
    error or Ctrl-C leaves the previous ones).

    Args:
        input: a DR19 astraAllStarASPCAP file (``release="dr17"``: a DR17 allStar file), Parquet or FITS, local or
            in object storage.
        output_dir: a local directory (created if needed) or an object-store prefix.
        release: ``"dr19"``, ``"dr17"`` or ``"auto"`` (told from the columns): the input's layout and its labels' data
            release.
        method: ``"v2"`` (models ``age``, ``mass``) or ``"paper"`` (the VAC's method: ``age_paper``, ``mass_paper``).
        cn_flag: evaluate the C-N planes (the CN_ATYPICAL bit and the ``*_cn_level`` columns).
        models, threads, s3: as for :func:`sql_stream`.

    Returns:
        ``{"rows": number of stars, "files": [the three paths]}``.
    """
    return _starflow.catalog(
        input, output_dir, release, method, cn_flag, _runtime.models_dir(models), threads, _s3(s3)
    )


def models(models: str | os.PathLike[str] | None = None) -> str:
    """The text of ``starflow models``: where the models and ONNX Runtime were found, each model's provenance, and a
    check that it runs."""
    return _starflow.models(_runtime.models_dir(models))


def functions(models: str | os.PathLike[str] | None = None) -> str:
    """The documentation of every StarFlow SQL function (Markdown), as ``starflow functions`` prints it."""
    return _starflow.functions(_runtime.models_dir(models))


def register(
    ctx: datafusion.SessionContext,
    models: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> list[str]:
    """Add every StarFlow SQL function to a datafusion-python (55) ``SessionContext``; returns their names.

    The functions cross over through DataFusion's FFI (``datafusion.udf`` of each function's
    ``__datafusion_scalar_udf__`` capsule) and run the same engine code as :func:`sql`, on their own inference
    threads. The ``starflow.*`` settings (``SET starflow.label_release``, ``starflow.seed``, ...) are not known to
    datafusion-python: its queries use their defaults (the model's own label release, seed 20251123); use
    :func:`sql` for DR19 or DR17 inputs through the views of ``queries/``. The context is also told not to copy a
    struct-returning call into each field it reads (``datafusion.optimizer.enable_leaf_expression_pushdown``), so
    each star's flow runs once per call, as in starflow.
    """
    import datafusion

    functions = _starflow.udfs(_runtime.models_dir(models), threads)
    for function in functions:
        ctx.register_udf(datafusion.udf(function))
    ctx.sql("SET datafusion.optimizer.enable_leaf_expression_pushdown = false").collect()
    return [f.name for f in functions]


def _s3(s3: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if s3 is None else dict(s3)
