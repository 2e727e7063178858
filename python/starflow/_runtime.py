"""Where the package finds its models and ONNX Runtime."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_BUNDLED_MODELS = Path(__file__).parent / "models"


def find_onnxruntime() -> None:
    """Point the engine at the ``onnxruntime`` wheel's library, unless ``$ORT_DYLIB_PATH`` says otherwise.

    The engine loads ONNX Runtime at run time from ``$ORT_DYLIB_PATH`` (udfs/src/locate.rs); the wheel ships
    ``libonnxruntime.so.<version>`` in ``onnxruntime/capi/``. The package is located without importing it (its
    Python layer is not needed).
    """
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return
    for root in spec.submodule_search_locations:
        libraries = sorted((Path(root) / "capi").glob("libonnxruntime.so*"))
        if libraries:
            os.environ["ORT_DYLIB_PATH"] = str(libraries[-1])
            return


def models_dir(models: str | os.PathLike[str] | None) -> str | None:
    """The models directory of a call: ``models``, else ``$STARFLOW_MODELS`` (read by the engine), else the bundled
    models (when the package has them)."""
    if models is not None:
        return os.fspath(models)
    if os.environ.get("STARFLOW_MODELS") or not _BUNDLED_MODELS.is_dir():
        return None
    return str(_BUNDLED_MODELS)
