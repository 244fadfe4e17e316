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
from types import CodeType, FrameType

from langchain_core.language_models import BaseLLM

#: The code of the calls whose ``kwargs`` are a text LLM's call arguments.
_GENERATE: frozenset[CodeType] = frozenset({BaseLLM.generate.__code__, BaseLLM.agenerate.__code__})


def call_arguments(frame: FrameType | None = None) -> str:
    """The call arguments (``kwargs``) of the innermost `BaseLLM.generate` / ``agenerate`` call
    on the stack above `frame` (default: the caller's), as text; "" when none or not inside one."""
    frame = frame if frame is not None else inspect.currentframe()
    with suppress(Exception):  # never breaks the call: unreadable reads as none
        while frame is not None:
            if frame.f_code in _GENERATE:
                kwargs = frame.f_locals.get("kwargs")
                return repr(sorted(kwargs.items())) if isinstance(kwargs, dict) and kwargs else ""
            frame = frame.f_back
    return ""


def with_call_arguments(llm_string: str) -> str:
    """`llm_string`, with the current text-LLM call's arguments appended when there are any."""
    arguments = call_arguments()
    return f"{llm_string}\x00call-arguments:{arguments}" if arguments else llm_string
