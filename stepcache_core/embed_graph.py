"""A BERT encoder + mean pooling + L2 norm written as an ONNX graph from safetensors weights,
with numpy and ``onnx.helper`` only: the MiniLM graph without torch, transformers or a network.

`build_graph(model_dir)` reads ``config.json`` and ``model.safetensors`` of a sentence-transformers
BERT model (all-MiniLM-L6-v2: 6 layers, 384 dims, 12 heads) and returns the serialized ONNX model
with the inputs and output of the torch export (``input_ids``, ``attention_mask`` ->
``embedding``), so `MiniLMEmbedder` can run either file the same way. The operations follow
``transformers``' eager BERT (absolute positions, token type 0, exact erf GELU, the additive
attention mask filled with the float32 minimum).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

#: safetensors dtype names -> numpy dtype strings (little-endian).
_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}


def read_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a safetensors file as a float32/int64 numpy array (the format is an 8-byte
    little-endian header size, a JSON header of dtype/shape/offsets, then the raw bytes)."""
    import numpy as np

    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    out: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = array.astype(np.float32) if info["dtype"] == "F16" else array
    return out


class _Graph:
    """Collects nodes and initializers under unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, array: Any, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = f"{hint}_{self._count}"
        self._count += 1
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, kind: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        out = f"{kind.lower()}_{self._count}"
        self._count += 1
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, weight: Any, bias: Any) -> str:
        """x @ weight.T + bias (torch's Linear layout: weight is [out, in])."""
        import numpy as np

        product = self.op("MatMul", x, self.const(np.ascontiguousarray(weight.T), "w"))
        return self.op("Add", product, self.const(bias, "b"))

    def layer_norm(self, x: str, weight: Any, bias: Any, eps: float) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.const(weight, "g"),
            self.const(bias, "b"),
            axis=-1,
            epsilon=eps,
        )


def build_graph(model_dir: Path) -> bytes:
    """The serialized ONNX model of the BERT sentence encoder stored in `model_dir`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise ValueError(f"{model_dir} is not a BERT model with exact GELU")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{model_dir}: only absolute position embeddings are supported")
    w = read_safetensors(model_dir / "model.safetensors")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    g = _Graph()

    def i64(*values: int) -> str:
        return g.const(np.array(values, dtype=np.int64), "i")

    def f32(value: float) -> str:
        return g.const(np.array(value, dtype=np.float32), "f")

    # Embeddings: word + absolute position (0..T-1) + token type 0, then LayerNorm.
    e = "embeddings."
    words = g.op("Gather", g.const(w[e + "word_embeddings.weight"], "emb"), "input_ids")
    length = g.op("Gather", g.op("Shape", "input_ids"), i64(1), axis=0)
    zero = g.const(np.array(0, dtype=np.int64), "i")
    one = g.const(np.array(1, dtype=np.int64), "i")
    positions = g.op("Range", zero, g.op("Squeeze", length, i64(0)), one)
    pos = g.op("Gather", g.const(w[e + "position_embeddings.weight"], "pos"), positions)
    x = g.op("Add", g.op("Add", words, pos), g.const(w[e + "token_type_embeddings.weight"][0], "t"))
    x = g.layer_norm(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], eps)

    # Additive attention mask [B, 1, 1, T]: 0 where attended, float32 min where padded.
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    blocked = g.op("Mul", g.op("Sub", f32(1.0), mask), f32(float(np.finfo(np.float32).min)))
    additive = g.op("Unsqueeze", blocked, i64(1, 2))
    split_heads = i64(0, 0, heads, head_dim)
    merge_heads = i64(0, 0, hidden)
    scale = f32(1.0 / float(np.sqrt(head_dim)))

    for n in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{n}."

        def projection(kind: str, perm: list[int], source: str = x, p: str = p) -> str:
            y = g.linear(
                source, w[f"{p}attention.self.{kind}.weight"], w[f"{p}attention.self.{kind}.bias"]
            )
            return g.op("Transpose", g.op("Reshape", y, split_heads), perm=perm)

        q = projection("query", [0, 2, 1, 3])
        k = projection("key", [0, 2, 3, 1])
        v = projection("value", [0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), additive)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)
        attended = g.linear(
            context, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"]
        )
        x = g.layer_norm(
            g.op("Add", attended, x),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        inner = g.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"])
        erf = g.op("Erf", g.op("Mul", inner, f32(float(1.0 / np.sqrt(2.0)))))
        gelu = g.op("Mul", g.op("Mul", inner, f32(0.5)), g.op("Add", erf, f32(1.0)))
        out = g.linear(gelu, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = g.layer_norm(
            g.op("Add", out, x),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            eps,
        )

    # Mean over attended tokens, then unit length (torch's normalize: divide by max(norm, 1e-12)).
    weights = g.op("Unsqueeze", mask, i64(2))
    summed = g.op("ReduceSum", g.op("Mul", x, weights), i64(1), keepdims=0)
    count = g.op("Max", g.op("ReduceSum", weights, i64(1), keepdims=0), f32(1e-9))
    pooled = g.op("Div", summed, count)
    norm = g.op("Sqrt", g.op("ReduceSum", g.op("Mul", pooled, pooled), i64(1), keepdims=1))
    g.nodes.append(helper.make_node("Div", [pooled, g.op("Max", norm, f32(1e-12))], ["embedding"]))

    graph = helper.make_graph(
        g.nodes,
        "stepcache-bert-mean-l2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
