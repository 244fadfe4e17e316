"""StepCache for LlamaIndex: wrap any LlamaIndex LLM in one line.

from stepcache_llamaindex import StepCacheLLM
Settings.llm = StepCacheLLM(llm=Settings.llm, cache=StepCache())
"""

from stepcache_llamaindex.llm import (
    GENERATION_FIELDS,
    LlamaIndexBackend,
    StepCacheFunctionCallingLLM,
    StepCacheLLM,
    model_namespace,
    split_chat,
)

__all__ = [
    "GENERATION_FIELDS",
    "LlamaIndexBackend",
    "StepCacheFunctionCallingLLM",
    "StepCacheLLM",
    "model_namespace",
    "split_chat",
]
