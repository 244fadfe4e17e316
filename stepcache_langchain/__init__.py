"""LangChain adapter for StepCache: a global LLM cache and a caching chat-model wrapper.

>>> from langchain_core.globals import set_llm_cache  # doctest: +SKIP
>>> set_llm_cache(StepCacheLLMCache())  # doctest: +SKIP
"""

from stepcache_langchain.backend import LangChainBackend
from stepcache_langchain.cache import StepCacheLLMCache
from stepcache_langchain.chat_model import StepCacheChatModel

__all__ = ["LangChainBackend", "StepCacheChatModel", "StepCacheLLMCache"]
