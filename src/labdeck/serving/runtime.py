"""The runtime interface: how a model framework plugs into the model server.

A runtime turns a model folder into predictions. Override:

- ``load()`` (async, required): read the model from ``self.model_dir``. It runs, with the
  warm-up prediction, on a thread and an event loop of its own, so it may block: the
  server goes on answering liveness meanwhile;
- ``predict(inputs, outputs, parameters)`` (required): tensors in, tensors out. It runs on
  the event loop's thread, so it must not wait on I/O; a slow model is served by several
  workers (``--workers``), not by threads;
- ``unload()`` (optional): release what ``load`` took;
- ``metadata()`` (optional): the default reads the MLflow signature from ``MLmodel``.

``example()`` gives a warm-up request (the model's input example, else a zero row).
Runtimes register as entry points in the ``labdeck.runtimes`` group (name -> class); the
built-in ones are registered the same way, so ``--runtime`` and automatic choice see them
alike. TensorFlow and PyTorch runtimes fit this interface unchanged.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.signature import metadata_from_mlmodel
from labdeck.serving.types import DATATYPES, ModelMetadata, Tensor


@dataclass(frozen=True)
class RuntimeSettings:
    """What the server tells a runtime: the model's name and version, the default method
    for ``predict`` (e.g. ``predict_proba``) and any free-form parameters."""

    name: str
    version: str | None = None
    method: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "MLmodel"
    if not path.exists():
        return {}
    import yaml

    return yaml.safe_load(path.read_text()) or {}


class Runtime(ABC):
    """One loaded model. ``name`` is what ``--runtime`` calls it."""

    name: ClassVar[str]
    platform: ClassVar[str] = ""

    def __init__(self, model_dir: Path, settings: RuntimeSettings):
        self.model_dir = model_dir
        self.settings = settings
        self.mlmodel = read_mlmodel(model_dir)

    @classmethod
    def can_load(cls, model_dir: Path, mlmodel: dict[str, Any]) -> bool:
        """Whether this runtime recognises the folder (flavor first, then file conventions)."""
        return False

    @abstractmethod
    async def load(self) -> None: ...

    @abstractmethod
    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]: ...

    async def unload(self) -> None:
        return None

    def metadata(self) -> ModelMetadata:
        return metadata_from_mlmodel(self.settings.name, self.platform or self.name, self.mlmodel, self.settings.version)

    def example(self) -> list[Tensor]:
        """A request to warm up with: the logged input example, else zeros shaped by the signature."""
        example = self._input_example()
        if example is not None:
            return example
        meta = self.metadata()
        if meta.columns:
            return [Tensor("input-0", np.zeros((1, len(meta.columns)), dtype=DATATYPES[meta.inputs[0].datatype]))]
        tensors = []
        for spec in meta.inputs:
            shape = tuple(1 if d == -1 else d for d in spec.shape)
            dtype = DATATYPES[spec.datatype]
            tensors.append(Tensor(spec.name, np.zeros(shape, dtype=dtype) if dtype != object else np.full(shape, b"", dtype=object)))
        return tensors

    def _input_example(self) -> list[Tensor] | None:
        info = self.mlmodel.get("saved_input_example_info") or {}
        path = self.model_dir / str(info.get("artifact_path", ""))
        if not info or not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
        except ValueError:
            return None
        if isinstance(raw, dict) and "data" in raw and "columns" in raw:  # pandas "split" orient
            data = np.asarray(raw["data"])
            if data.dtype.kind in "fiub":
                return [Tensor("input-0", data.astype(np.float64) if data.dtype.kind != "b" else data)]
            return None
        if isinstance(raw, list):
            data = np.asarray(raw)
            if data.dtype.kind in "fiub":
                return [Tensor("input-0", data)]
        return None


def available() -> dict[str, type[Runtime]]:
    """Every installed runtime, by name (entry points in the ``labdeck.runtimes`` group)."""
    found: dict[str, type[Runtime]] = {}
    for ep in entry_points(group="labdeck.runtimes"):
        try:
            found[ep.name] = ep.load()
        except ImportError:
            continue  # its framework is not installed here
    return found


# The order runtimes are tried in when none is named: specific flavors before pyfunc.
PREFERENCE = ("onnx", "xgboost", "lightgbm", "sklearn", "pyfunc")


def choose(model_dir: Path, requested: str | None) -> type[Runtime]:
    runtimes = available()
    if requested:
        if requested not in runtimes:
            raise InvalidParameter(f"Unknown runtime {requested!r}: installed are {', '.join(sorted(runtimes))}.")
        return runtimes[requested]
    mlmodel = read_mlmodel(model_dir)
    ordered = [n for n in PREFERENCE if n in runtimes] + sorted(n for n in runtimes if n not in PREFERENCE)
    for name in ordered:
        if runtimes[name].can_load(model_dir, mlmodel):
            return runtimes[name]
    raise InvalidParameter(
        f"No runtime recognises the model at {model_dir}: it has no MLmodel flavor labdeck serves "
        f"({', '.join(ordered)}) and no model.joblib, model.pkl, model.json, model.txt or model.onnx."
    )
