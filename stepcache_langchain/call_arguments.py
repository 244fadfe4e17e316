"""A text LLM's call-time arguments, which LangChain leaves out of the key it gives a cache.

`BaseLLM.generate` builds the ``llm_string`` a cache sees from the model's fields and ``stop``
only: ``llm.bind(max_tokens=3).invoke(p)`` and ``llm.invoke(p)`` reach every LangChain cache as
the same request (chat models put their call arguments in it). A cache call made inside
``generate`` / ``agenerate`` can still read them from that call's frame; they are added to the
``llm_string`` so such calls never share answers. Outside such a call (or on a Python without
frames) nothing is added: the key is LangChain's.
"""

import inspect
from contextlib import suppress

from langchain_core.language_models import BaseLLM

#: The code of the calls whose ``kwargs`` are a text LLM's call arguments.
_GENERATE = frozenset({BaseLLM.generate.__code__, BaseLLM.agenerate.__code__})


def with_call_arguments(llm_string: str) -> str:
    """`llm_string`, with the call arguments (``kwargs``) of the innermost `BaseLLM.generate` /
    ``agenerate`` call on the stack appended when there are any; else (or when the stack cannot
    be read: the call never breaks) `llm_string` unchanged."""
    frame = inspect.currentframe()
    with suppress(Exception):
        while frame is not None and frame.f_code not in _GENERATE:
            frame = frame.f_back
        kwargs = None if frame is None else frame.f_locals.get("kwargs")
        if isinstance(kwargs, dict) and kwargs:
            return f"{llm_string}\x00call-arguments:{sorted(kwargs.items())!r}"
    return llm_string
