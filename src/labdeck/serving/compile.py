"""The optional compiled path (``labdeck serve --compile onnx``): a scikit-learn, XGBoost or
LightGBM model is converted to ONNX at load time and predicted by onnxruntime, which answers
a small request many times faster than the framework does (no input validation layers, no
thread pool start-up, one tight loop over the trees).

Nothing changes on the wire. The runtime keeps its input checks, method choice and output
names (``TabularRuntime``); only the callables behind ``predict`` (and ``predict_proba``)
are replaced, and they return what the original returned: labels of the original classes'
dtype, probabilities and values of the original dtype and shape. An input the compiled
graph was not built for (another feature count, no rows, non-numeric, NaN or infinite
values) is handed to the original method, so errors and missing-value handling stay the
framework's own.

A conversion is used only once it is verified: on the model's input example (with jittered
copies of it) and synthesized rows, the compiled methods must give identical labels and
probabilities (or regression values) within 1e-5 of the original's. When the model cannot
be converted, or the check fails, one warning says why and the original runtime serves.

Conversion: scikit-learn estimators and pipelines with skl2onnx (``to_onnx``, ``zipmap``
off, one float input as wide as the model's features); XGBoost and LightGBM scikit-learn
API estimators through skl2onnx too, with onnxmltools' converters registered for them
(so they also convert inside a pipeline); raw Boosters with onnxmltools directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.runtime import Runtime
from labdeck.serving.signature import NUMERIC

log = logging.getLogger("labdeck.serving.compile")

TARGETS = ("onnx",)
TOLERANCE = 1e-5  # probabilities and values: largest absolute difference allowed
SYNTHESIZED_ROWS = 256
_OPSET = {"": 17, "ai.onnx.ml": 3}
_BOOSTER_OPSET = 15  # the highest onnxmltools' own convert_xgboost/convert_lightgbm accept


class NotCompiled(Exception):
    """Why a model is served by its original runtime (the message says it in plain words)."""


@dataclass(frozen=True)
class CompileOutcome:
    """What ``--compile`` did: ``active`` when the compiled path answers; ``reason`` says
    what was verified, or why the original runtime serves."""

    target: str
    active: bool
    reason: str
    methods: tuple[str, ...] = ()

    def parameters(self) -> dict[str, Any]:
        """For the V2 model metadata's ``parameters``."""
        return {"compiled": self.target if self.active else "none", "compile_note": self.reason}


@dataclass(frozen=True)
class _Output:
    """How one runtime method is answered from the ONNX graph."""

    method: str  # the runtime's method: "predict", "predict_proba"
    output: str  # the graph's output: "label", "probabilities", "variable"
    column: int | None = None  # take one column (a binary Booster's probability of class 1)
    exact: bool = False  # labels must be identical; everything else within TOLERANCE


def compile_runtime(runtime: Runtime, target: str = "onnx", sample: np.ndarray | None = None) -> CompileOutcome:
    """Compile ``runtime``'s model in place when it converts and verifies; otherwise leave it
    as it is. Logs one line either way (a warning with the reason when it falls back)."""
    if target not in TARGETS:
        raise InvalidParameter(f"Unknown compile target {target!r}: use {', '.join(TARGETS)}.")
    try:
        compiled, rows, source = _compile_onnx(runtime, sample)
    except Exception as exc:  # compiling is an optimisation: whatever goes wrong, the original serves
        why = str(exc) if isinstance(exc, NotCompiled) else f"compiling failed: {type(exc).__name__}: {_first_line(exc)}"
        log.warning(
            f"--compile {target}: serving the original {runtime.name} runtime: {why}",
            extra={"model": runtime.settings.name},
        )
        return CompileOutcome(target, False, why)
    runtime.methods.update(compiled)  # type: ignore[attr-defined]
    names = tuple(compiled)
    outcome = CompileOutcome(target, True, f"{', '.join(names)} verified on {rows} rows ({source})", names)
    log.info(f"--compile {target}: {outcome.reason}", extra={"model": runtime.settings.name})
    return outcome


# ---------------------------------------------------------------- verification


def compare(original: Any, compiled: Any, *, exact: bool, tolerance: float = TOLERANCE) -> str | None:
    """Why ``compiled`` does not stand in for ``original`` on the same rows, or None when it
    does: same shape, and identical values (``exact``, for labels) or values within
    ``tolerance`` of each other (probabilities, regression values)."""
    a, b = np.asarray(original), np.asarray(compiled)
    if a.shape != b.shape:
        return f"the compiled model answers shape {list(b.shape)} where the original answers {list(a.shape)}"
    if exact or a.dtype.kind not in "fc" or b.dtype.kind not in "fc":
        differ = np.flatnonzero((a != b).reshape(len(a), -1).any(axis=1)) if a.ndim else np.flatnonzero([a != b])
        if len(differ):
            i = int(differ[0])
            return (
                f"labels differ on {len(differ)} of {len(a)} rows "
                f"(row {i}: {_show(a[i] if a.ndim else a)} originally, {_show(b[i] if b.ndim else b)} compiled)"
            )
        return None
    with np.errstate(invalid="ignore"):
        gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if np.isnan(gap).any():
        return "the compiled model answers NaN where the original does not (or the reverse)"
    worst = float(gap.max()) if gap.size else 0.0
    if worst > tolerance:
        row = int(np.unravel_index(int(gap.argmax()), gap.shape)[0])
        return f"values differ by up to {worst:.3g} (row {row}), more than the {tolerance:g} allowed"
    return None


def verify(
    original: Callable[[np.ndarray], Any],
    compiled: Callable[[np.ndarray], Any],
    sample: np.ndarray,
    *,
    exact: bool,
    tolerance: float = TOLERANCE,
) -> str | None:
    """Run both predictors on ``sample`` and ``compare`` their answers."""
    return compare(original(sample), compiled(sample), exact=exact, tolerance=tolerance)


def _show(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- the sample


def verification_sample(runtime: Runtime, estimator: Any) -> tuple[np.ndarray, str]:
    """Rows to verify a conversion on, and where they came from.

    The check compares two implementations of one function, so any finite input in the
    model's feature space is a fair test point: random normal rows and a zero row exercise
    both sides of thresholds near zero and every linear term at a neutral scale; jittered
    copies of the logged input example cover the region real requests come from. It is a
    spot check, not a proof, which is why the compiled path is something to ask for.
    """
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = []
    sources: list[str] = []
    example = _example_rows(runtime)
    width = example.shape[1] if example is not None else _width(runtime, estimator)
    if width is None:
        raise NotCompiled("there is nothing to verify the conversion on: no input example, no signature, no n_features_in_")
    if example is not None:
        picks = example[rng.integers(len(example), size=SYNTHESIZED_ROWS)]
        jitter = picks * (1 + 0.1 * rng.standard_normal(picks.shape)) + 0.01 * rng.standard_normal(picks.shape)
        parts += [example, jitter]
        sources.append(f"the input example and {SYNTHESIZED_ROWS} jittered copies")
    parts += [rng.standard_normal((SYNTHESIZED_ROWS, width)), np.zeros((1, width))]
    sources.append(f"{SYNTHESIZED_ROWS + 1} synthesized rows")
    return np.concatenate(parts).astype(np.float64), " and ".join(sources)


def _example_rows(runtime: Runtime) -> np.ndarray | None:
    """The logged input example as the model sees it (a numeric 2-D feature matrix)."""
    tensors = runtime._input_example()
    if not tensors:
        return None
    try:
        X = np.asarray(runtime.features(tensors))  # type: ignore[attr-defined]
    except Exception:  # an example the checks refuse is no use for verifying
        return None
    if X.ndim != 2 or not len(X) or X.dtype.kind not in "fiub" or not np.isfinite(X.astype(np.float64)).all():
        return None
    return X.astype(np.float64)


def _width(runtime: Runtime, estimator: Any) -> int | None:
    meta = runtime.metadata()
    if meta.columns:
        return len(meta.columns)
    if len(meta.inputs) == 1 and len(meta.inputs[0].shape) == 2 and meta.inputs[0].shape[1] > 0:
        return int(meta.inputs[0].shape[1])
    for probe in ("n_features_in_", "num_features", "num_feature"):
        value = getattr(estimator, probe, None)
        try:
            value = value() if callable(value) else value
        except Exception:  # a probe that does not apply to this model
            continue
        if isinstance(value, int | np.integer) and value > 0:
            return int(value)
    return None


# ---------------------------------------------------------------- conversion


def _compile_onnx(runtime: Runtime, sample: np.ndarray | None) -> tuple[dict[str, Callable[[np.ndarray], Any]], int, str]:
    estimator = getattr(runtime, "estimator", None)
    methods: dict[str, Callable[[np.ndarray], Any]] | None = getattr(runtime, "methods", None)
    if estimator is None or methods is None:
        raise NotCompiled(
            f"the onnx compiled path converts scikit-learn, XGBoost and LightGBM models; this is a {runtime.name} model"
        )
    meta = runtime.metadata()
    if meta.columns and any(s.datatype not in NUMERIC and s.datatype != "BOOL" for s in meta.inputs):
        raise NotCompiled("the model takes non-numeric features, and the compiled graph takes one float matrix")
    if sample is not None:
        X, source = np.asarray(sample, dtype=np.float64), "the given sample"
    else:
        X, source = verification_sample(runtime, estimator)
    outputs = [o for o in _outputs(estimator) if o.method in methods]
    if not outputs:
        raise NotCompiled(f"no method of this {type(estimator).__name__} has a compiled counterpart")
    try:
        model = _convert(estimator, X.shape[1])
        session = _session(model)
    except NotCompiled:
        raise
    except Exception as exc:  # the converters raise many types; each means "cannot convert"
        raise NotCompiled(f"{type(estimator).__name__} does not convert to ONNX: {_first_line(exc)}") from None
    graph_outputs = {o.name for o in session.get_outputs()}
    compiled: dict[str, Callable[[np.ndarray], Any]] = {}
    for spec in outputs:
        if spec.output not in graph_outputs:
            raise NotCompiled(f"the converted graph has no {spec.output!r} output for {spec.method}")
        original = methods[spec.method]
        try:
            want = np.asarray(original(X))
        except Exception as exc:  # the original refuses the synthesized rows: nothing to verify on
            raise NotCompiled(f"the original {spec.method} refuses the verification rows: {_first_line(exc)}") from None
        if want.ndim == 0 or len(want) != len(X):
            raise NotCompiled(f"{spec.method} does not answer one row per input row")
        method = OnnxMethod(session, X.shape[1], spec, original, want.dtype, want.shape[1:])
        try:
            got = method(X)
        except Exception as exc:  # the graph fails on rows the original answers
            raise NotCompiled(f"the compiled {spec.method} fails: {_first_line(exc)}") from None
        reason = compare(want, got, exact=spec.exact)
        if reason:
            raise NotCompiled(f"verification failed for {spec.method}: {reason}")
        compiled[spec.method] = method
    return compiled, len(X), source


class OnnxMethod:
    """One runtime method answered by an onnxruntime session, in the original's form."""

    def __init__(
        self,
        session: Any,
        width: int,
        spec: _Output,
        original: Callable[[np.ndarray], Any],
        dtype: np.dtype,
        tail: tuple[int, ...],
    ):
        self.session = session
        self.input = session.get_inputs()[0].name
        self.width = width
        self.spec = spec
        self.original = original
        self.dtype = dtype
        self.tail = tail
        self._names = [spec.output]

    def __call__(self, X: Any) -> Any:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.width or not len(X) or X.dtype.kind not in "fiub":
            return self.original(X)  # the original refuses (or handles) it in its own words
        with np.errstate(over="ignore"):
            X32 = X.astype(np.float32)
        if not np.isfinite(X32).all():
            return self.original(X)  # missing values, or beyond float32: the framework's own rules
        value = self.session.run(self._names, {self.input: X32})[0]
        if self.spec.column is not None:
            value = value[:, self.spec.column]
        return np.asarray(value).reshape((len(X), *self.tail)).astype(self.dtype, copy=False)


def _outputs(estimator: Any) -> list[_Output]:
    kind = type(estimator).__module__.split(".")[0], type(estimator).__name__
    if kind == ("xgboost", "Booster"):
        return [_booster_output(_xgboost_objective(estimator), "xgboost")]
    if kind == ("lightgbm", "Booster"):
        return [_booster_output(_lightgbm_objective(estimator), "lightgbm")]
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return [_Output("predict", "label", exact=True), _Output("predict_proba", "probabilities")]
    if is_regressor(estimator):
        return [_Output("predict", "variable")]
    raise NotCompiled(f"{type(estimator).__name__} is neither a classifier nor a regressor")


def _booster_output(objective: str, framework: str) -> _Output:
    """What a raw Booster's ``predict`` answers, by its objective."""
    if objective in ("binary:logistic", "binary"):
        return _Output("predict", "probabilities", column=1)
    if objective in ("multi:softprob", "multiclass", "softmax", "multiclassova"):
        return _Output("predict", "probabilities")
    if objective == "multi:softmax":
        return _Output("predict", "label", exact=True)
    if objective.startswith("reg:") or objective in ("regression", "regression_l2", "l2", "regression_l1", "l1", "huber", "fair"):
        return _Output("predict", "variable")
    raise NotCompiled(f"a {framework} Booster with objective {objective!r} has no compiled counterpart")


def _xgboost_objective(booster: Any) -> str:
    import json

    return str(json.loads(booster.save_config())["learner"]["objective"]["name"])


def _lightgbm_objective(booster: Any) -> str:
    return str(booster.dump_model(num_iteration=0).get("objective", "")).split(" ")[0]


def _convert(estimator: Any, width: int) -> Any:
    module, name = type(estimator).__module__.split(".")[0], type(estimator).__name__
    if module == "xgboost" and name == "Booster":
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        return convert_xgboost(estimator, initial_types=[("X", FloatTensorType([None, width]))], target_opset=_BOOSTER_OPSET)
    if module == "lightgbm" and name == "Booster":
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        return convert_lightgbm(
            estimator, initial_types=[("X", FloatTensorType([None, width]))], target_opset=_BOOSTER_OPSET, zipmap=False
        )
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from sklearn.base import is_classifier

    _register_converters()
    options = {"zipmap": False} if is_classifier(estimator) else None  # labels and a probability matrix, not a list of dicts
    return to_onnx(estimator, initial_types=[("X", FloatTensorType([None, width]))], options=options, target_opset=_OPSET)


def _session(model: Any) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the server scales with workers, not threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: converted boosters declare output shapes loosely
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


_registered = False


def _register_converters() -> None:
    """Teach skl2onnx the XGBoost and LightGBM scikit-learn API estimators (onnxmltools'
    converters), for whichever of the two is installed."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes, convert_xgboost, options=options
        )
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost)
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        pass
    else:
        update_registered_converter(
            LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes, convert_lightgbm, options=options
        )
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm)
    _registered = True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
