"""Adversarial request pairs sent through the LangChain and LlamaIndex adapters as apps send them.

An app request (`AppRequest`) is a system prompt, earlier turns, an app template around the
question (a RAG template with a retrieved document, or a tutor's frame), call arguments and the
question. A pair caches one request with a perfect model behind the cache, then sends another:

- ``MODEL_ANSWERS``: the meaning changed in one *placement* (the system prompt, the history, the
  template, the retrieved document, the call arguments, a message's fields, or the question
  itself): the model must be asked the new request as the app sent it, and its answer served.
- ``REUSE``: the identical request, or the question reworded within the task's lexicon in the
  identical frame: served from the cache without asking the model.

The meaning-changing edits are the core suite's own (tests/adversarial.py): an edit kind that adds
or drops a sentence is moved into the placement under test; every edit kind is also applied to the
question inside the frame. Each framework path (`PATHS`) renders an `AppRequest` its own way and
calls a deterministic perfect model that answers by what it is sent (`Brain`).

`python -m tests.adversarial_adapters` prints the table: per path and placement, variants and
how many were served as required.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import LLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.prompts import ChatPromptTemplate as LIChatPromptTemplate
from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_QA_PROMPT_TMPL

from stepcache_bench.fake import HashEmbedder
from stepcache_core import InMemoryStore, StepCache
from stepcache_langchain import StepCacheChatModel, StepCacheLLMCache
from stepcache_llamaindex import StepCacheLLM

from adversarial import (
    _KEY_TYPES,
    ALL_BASES,
    EDIT_KINDS,
    Base,
    EditKind,
    Expect,
    JsonBase,
    PerfectBackend,
    Variant,
    _document,
    key_list,
    perfect_answer,
)

#: The app's frame when none is edited: a tutor's system prompt, one earlier exchange, a template.
SYSTEM = "You are a patient tutor for a homework app."
HISTORY: tuple[tuple[str, str], ...] = (
    ("user", "Hi, I have a few exercises from my worksheet."),
    ("assistant", "Sure, send them one at a time."),
)
TEMPLATE = "Exercise from the worksheet:\n{query_str}"
RAG_TEMPLATE = DEFAULT_TEXT_QA_PROMPT_TMPL  # LlamaIndex's text_qa template: context_str, query_str
DOCUMENT = "Worksheet notes: all exercises come from chapter 3."


@dataclass(frozen=True, slots=True)
class AppRequest:
    """What an app sends: each field is one placement a meaning can hide in."""

    question: str
    system: str = SYSTEM
    history: tuple[tuple[str, str], ...] = HISTORY
    template: str = TEMPLATE
    document: str = ""  # the retrieved context (`context_str`); with it, `template` is RAG's
    kwargs: tuple[tuple[str, Any], ...] = ()  # call arguments (stop, max_tokens...)
    names: tuple[tuple[int, str], ...] = ()  # (history index, the message's `name`)
    asker: str = ""  # the `name` on the question's own message (where the path can send one)

    def user_text(self) -> str:
        """The last user message as the app's template writes it."""
        return self.template.format(query_str=self.question, context_str=self.document)


@dataclass(frozen=True, slots=True)
class Pair:
    """A request to cache, one to send next, what must happen, and the perfect answers."""

    kind: str
    placement: str
    cached: AppRequest
    request: AppRequest
    expect: Expect
    cached_answer: str
    answer: str


# ----------------------------------------------------------------------------- the pairs

PLACEMENTS = ("system", "history", "template", "document", "arguments", "fields", "question")


def _added_sentence(v: Variant) -> tuple[str, str, str] | None:
    """(cached question, sentence, direction) of a variant that adds or drops one sentence."""
    if v.context or v.cached_context:
        return None
    if v.prompt.startswith(v.cached) and v.prompt != v.cached:
        return v.cached, v.prompt[len(v.cached) :].strip(), "added"
    if v.cached.startswith(v.prompt) and v.prompt != v.cached:
        return v.prompt, v.cached[len(v.prompt) :].strip(), "dropped"
    return None


def _one_variant(kind: EditKind, draw: int) -> Variant:
    bases = kind.bases()
    rng = random.Random(f"adapters/{kind.name}/{draw}")
    return kind.make(bases[rng.randrange(len(bases))], rng)


def _moved(v: Variant, placement: str) -> Pair | None:
    """`v`'s added or dropped sentence moved from the question into `placement`."""
    found = _added_sentence(v)
    if found is None:
        return None
    question, sentence, direction = found
    if "{" in sentence or "}" in sentence:  # a template would read it as a variable
        return None
    base = AppRequest(question)
    if placement == "system":
        edited = replace(base, system=f"{SYSTEM} {sentence}")
    elif placement == "history":
        turn = (("user", f"For every exercise: {sentence}"), ("assistant", "Understood."))
        edited = replace(base, history=HISTORY + turn)
    elif placement == "template":
        edited = replace(base, template=f"{TEMPLATE}\n{sentence}")
    elif placement == "document":
        base = replace(base, template=RAG_TEMPLATE, document=DOCUMENT)
        edited = replace(base, document=f"{DOCUMENT} {sentence}")
    else:
        raise ValueError(placement)
    cached, request = (base, edited) if direction == "added" else (edited, base)
    answers = (v.cached_answer, v.answer)
    return Pair(v.kind, placement, cached, request, Expect.MODEL_ANSWERS, *answers)


def _in_question(v: Variant) -> Pair:
    """`v` as the question inside the app's frame (its context, if any, as history)."""

    def request(question: str, context: str) -> AppRequest:
        turns = tuple(tuple(line.split(": ", 1)) for line in context.splitlines() if context)
        history = tuple((("assistant" if r == "assistant" else "user"), t) for r, t in turns)
        return AppRequest(question, history=HISTORY + history)  # type: ignore[arg-type]

    cached, sent = request(v.cached, v.cached_context), request(v.prompt, v.context)
    return Pair(v.kind, "question", cached, sent, v.expect, v.cached_answer, v.answer)


def _document_swaps(draws: int) -> Iterator[Pair]:
    """RAG: the same extraction question over another retrieved document."""
    for i, base in enumerate(b for b in ALL_BASES if isinstance(b, JsonBase)):
        for d in range(draws):
            rng = random.Random(f"adapters/document/{i}/{d}")
            first, first_values = _document(base.keys, rng)
            second, second_values = first, first_values
            while second == first:
                second, second_values = _document(base.keys, rng)
            question = f"Extract a JSON object with the keys {key_list(base.keys, base.style)}."
            cached = AppRequest(question, template=RAG_TEMPLATE, document=first)
            from adversarial import json_answer

            yield Pair(
                "retrieved document: another document, same question",
                "document",
                cached,
                replace(cached, document=second),
                Expect.MODEL_ANSWERS,
                json_answer(base.key_names, values=first_values),
                json_answer(base.key_names, values=second_values),
            )


_ARGUMENTS: tuple[tuple[tuple[str, Any], ...], ...] = (
    (("stop", ["\n\n"]),),
    (("max_tokens", 12),),
    (("temperature", 1.3),),
    (("formatted", True),),  # LlamaIndex: the model's own prompt formatting is skipped
)
_NAMES = ("Ann", "Bob")


def _frame_pairs(base: Base, rng: random.Random) -> Iterator[Pair]:
    """Frame edits no core edit kind expresses: call arguments, a message's name, the roles of
    the history swapped, the system prompt moved into the history."""
    answer = perfect_answer(base)
    plain = AppRequest(base.prompt)
    for kwargs in _ARGUMENTS:
        yield Pair("call arguments", "arguments", plain, replace(plain, kwargs=kwargs),
                   Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip
    named = replace(plain, names=((0, _NAMES[0]),))
    yield Pair("a history message's name", "fields", named, replace(named, names=((0, "Bob"),)),
               Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip
    asked = replace(plain, asker=_NAMES[0])
    yield Pair("the question message's name", "fields", asked, replace(asked, asker=_NAMES[1]),
               Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip
    if isinstance(base, JsonBase):  # a key required by the system prompt, then another one
        keyed = replace(plain, system=f"{SYSTEM} Every object must also have the key `id`.")
        rekeyed = replace(plain, system=f"{SYSTEM} Every object must also have the key `uid`.")
        yield Pair("a key the system prompt requires", "system", keyed, rekeyed,
                   Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip
    swapped = tuple(("assistant" if r == "user" else "user", t) for r, t in HISTORY)
    yield Pair("history roles swapped", "history", plain, replace(plain, history=swapped),
               Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip
    moved = replace(plain, system="", history=(("user", SYSTEM), *HISTORY))
    yield Pair("system prompt sent as a user turn", "system", plain, moved,
               Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip
    yield Pair("no system prompt", "system", plain, replace(plain, system=""),
               Expect.MODEL_ANSWERS, answer, answer)  # fmt: skip


def pairs(draws: int = 1) -> list[Pair]:
    """Every pair: each core edit kind in the question and, where it adds or drops a sentence,
    in every other placement; document swaps; frame edits; identical repeats."""
    out: list[Pair] = []
    for kind in EDIT_KINDS:
        if kind.expect is Expect.RIGHT:
            continue
        for d in range(draws):
            v = _one_variant(kind, d)
            out.append(_in_question(v))
            if kind.expect is Expect.MODEL_ANSWERS:
                for placement in ("system", "history", "template", "document"):
                    moved = _moved(v, placement)
                    if moved is not None:
                        out.append(moved)
    out.extend(_document_swaps(draws))
    for i, base in enumerate(ALL_BASES[:: max(1, 4 // draws)]):
        rng = random.Random(f"adapters/frame/{i}")
        out.extend(_frame_pairs(base, rng))
        answer = perfect_answer(base)
        for frame in (AppRequest(base.prompt), AppRequest(base.prompt, document=DOCUMENT,
                                                          template=RAG_TEMPLATE)):  # fmt: skip
            out.append(Pair("identical request", "identical", frame, frame, Expect.REUSE,
                            answer, answer))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- the perfect model


@dataclass
class Brain:
    """The perfect model's knowledge: the answer to each request as the model receives it
    (`sent`'s rendering), strict key patches answered with the keys asked; every request seen."""

    answers: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def answer(self, sent: str, last_user: str) -> str:
        self.seen.append(sent)
        if sent in self.answers:
            return self.answers[sent]
        return PerfectBackend({}, _KEY_TYPES).complete(last_user).text


def _kw(kwargs: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in sorted(kwargs.items()) if v is not None and k != "formatted"}
    return f"\n[args {shown}]" if shown else ""


def lc_sent(messages: Sequence[BaseMessage], kwargs: Mapping[str, Any]) -> str:
    """A LangChain chat request as the model receives it: roles, names, texts, arguments."""
    lines = [f"{m.type}{'(' + m.name + ')' if m.name else ''}: {m.text}" for m in messages]
    return "\n".join(lines) + _kw(kwargs)


def li_sent(messages: Sequence[ChatMessage], kwargs: Mapping[str, Any]) -> str:
    """A LlamaIndex chat request as the model receives it (extra message fields included)."""
    lines = [f"{m.role.value}{m.additional_kwargs or ''}: {m.content or ''}" for m in messages]
    return "\n".join(lines) + _kw(kwargs)


class PerfectChat(BaseChatModel):
    """A LangChain chat model answering from its `brain`."""

    brain: Brain = Field(default_factory=Brain, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "perfect-chat"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:  # fmt: skip
        text = self.brain.answer(lc_sent(messages, {"stop": stop, **kwargs}), messages[-1].text)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


class PerfectLLM(BaseLLM):
    """A LangChain (text) LLM answering from its `brain`."""

    brain: Brain = Field(default_factory=Brain, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "perfect-llm"

    def _generate(
        self, prompts: list[str], stop: list[str] | None = None, run_manager: Any = None,
        **kwargs: Any,
    ) -> LLMResult:  # fmt: skip
        texts = [self.brain.answer(p + _kw({"stop": stop, **kwargs}), p) for p in prompts]
        return LLMResult(generations=[[Generation(text=t)] for t in texts])


class PerfectLlamaLLM(LLM):
    """A LlamaIndex LLM answering from its `brain`: a chat model or a completion model."""

    brain: Brain = Field(default_factory=Brain, exclude=True)
    chat_model: bool = True
    formats_itself: bool = False  # like HuggingFaceLLM: its system prompt added inside complete

    @classmethod
    def class_name(cls) -> str:
        return "PerfectLlamaLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="perfect", is_chat_model=self.chat_model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.formats_itself and not formatted:
            prompt = self.completion_to_prompt(prompt)
            prompt = f"{self.system_prompt} {prompt}" if self.system_prompt else prompt
        return CompletionResponse(text=self.brain.answer(prompt + _kw(kwargs), prompt))

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self.brain.answer(li_sent(messages, kwargs), messages[-1].content or "")
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def acomplete(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def achat(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_complete(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_chat(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


# ----------------------------------------------------------------------------- framework paths

#: (request, the cache or None for the bare model, the brain) -> the answer the app receives.
Send = Callable[[AppRequest, StepCache | None, Brain], str]


def _lc_history(r: AppRequest) -> list[BaseMessage]:
    names = dict(r.names)
    return [
        (HumanMessage if role == "user" else AIMessage)(content=text, name=names.get(i))
        for i, (role, text) in enumerate(r.history)
    ]


def _lc_prompt(r: AppRequest) -> ChatPromptTemplate:
    """A ChatPromptTemplate app: system message, history placeholder, the human template."""
    parts: list[Any] = [("system", r.system)] if r.system else []
    parts += [MessagesPlaceholder("history"), ("human", r.template)]
    return ChatPromptTemplate.from_messages(parts)


def _lc_inputs(r: AppRequest) -> dict[str, Any]:
    return {"history": _lc_history(r), "query_str": r.question, "context_str": r.document}


@contextmanager
def _global_cache(cache: StepCache | None) -> Iterator[None]:
    before = get_llm_cache()
    set_llm_cache(None if cache is None else StepCacheLLMCache(cache))
    try:
        yield
    finally:
        set_llm_cache(before)


def lc_global_chat(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """ChatPromptTemplate | chat model, LangChain's global cache = StepCacheLLMCache."""
    with _global_cache(cache):
        model = PerfectChat(brain=brain).bind(**dict(r.kwargs))
        return str((_lc_prompt(r) | model).invoke(_lc_inputs(r)).content)


def lc_global_llm(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """ChatPromptTemplate | text LLM (the prompt is one "System: ...\\nHuman: ..." string)."""
    with _global_cache(cache):
        model = PerfectLLM(brain=brain).bind(**dict(r.kwargs))
        return str((_lc_prompt(r) | model).invoke(_lc_inputs(r)))


def lc_chat_model(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """ChatPromptTemplate | StepCacheChatModel(model=chat model)."""
    with _global_cache(None):
        inner = PerfectChat(brain=brain)
        model: BaseChatModel = (
            inner if cache is None else StepCacheChatModel(model=inner, step_cache=cache)
        )
        bound = model.bind(**dict(r.kwargs))
        return str((_lc_prompt(r) | bound).invoke(_lc_inputs(r)).content)


def _li_messages(r: AppRequest) -> list[ChatMessage]:
    names = dict(r.names)
    return [
        ChatMessage(
            role=MessageRole.USER if role == "user" else MessageRole.ASSISTANT,
            content=text,
            additional_kwargs={"name": names[i]} if i in names else {},
        )
        for i, (role, text) in enumerate(r.history)
    ]


def _li_llm(
    r: AppRequest, cache: StepCache | None, brain: Brain, chat: bool, formats: bool = False,
    system: bool = True,
) -> LLM:  # fmt: skip
    """The model (wrapped when `cache` is given); `system`: the system prompt is the model's
    setting (else the caller sends it as a message)."""
    inner = PerfectLlamaLLM(
        brain=brain, chat_model=chat, formats_itself=formats,
        system_prompt=(r.system or None) if system else None,
    )  # fmt: skip
    return inner if cache is None else StepCacheLLM(llm=inner, cache=cache)


def _li_template(r: AppRequest) -> LIChatPromptTemplate:
    user = ChatMessage(role=MessageRole.USER, content=r.template)
    return LIChatPromptTemplate(message_templates=[*_li_messages(r), user])


def li_predict_chat(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """StepCacheLLM(chat model, system_prompt).predict(ChatPromptTemplate(history + template))."""
    llm = _li_llm(r, cache, brain, chat=True)
    template = _li_template(r)
    return llm.predict(template, query_str=r.question, context_str=r.document, **dict(r.kwargs))


def li_predict_complete(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """The same app on a completion model: LlamaIndex flattens system prompt and messages."""
    llm = _li_llm(r, cache, brain, chat=False)
    template = _li_template(r)
    return llm.predict(template, query_str=r.question, context_str=r.document, **dict(r.kwargs))


def li_chat(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """StepCacheLLM.chat([system, *history, user]) with the call's arguments."""
    llm = _li_llm(r, cache, brain, chat=True, system=False)
    system = [ChatMessage(role=MessageRole.SYSTEM, content=r.system)] if r.system else []
    asker = {"name": r.asker} if r.asker else {}
    question = ChatMessage(role=MessageRole.USER, content=r.user_text(), additional_kwargs=asker)
    messages = [*system, *_li_messages(r), question]
    return str(llm.chat(messages, **dict(r.kwargs)).message.content)


def li_complete(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """StepCacheLLM.complete(the app's flattened prompt) with the call's arguments."""
    llm = _li_llm(r, cache, brain, chat=False, system=False)
    system = [ChatMessage(role=MessageRole.SYSTEM, content=r.system)] if r.system else []
    messages = [
        *system,
        *_li_messages(r),
        ChatMessage(role=MessageRole.USER, content=r.user_text()),
    ]
    prompt = llm.messages_to_prompt(messages)
    return llm.complete(prompt, **dict(r.kwargs)).text


def li_complete_self_formatting(r: AppRequest, cache: StepCache | None, brain: Brain) -> str:
    """StepCacheLLM(a model that adds its own system prompt in complete).complete(user text)."""
    llm = _li_llm(r, cache, brain, chat=False, formats=True)
    history = "".join(f"{role}: {text}\n" for role, text in r.history)
    return llm.complete(history + r.user_text(), **dict(r.kwargs)).text


PATHS: Mapping[str, Send] = {
    "langchain global cache, chat model": lc_global_chat,
    "langchain global cache, text LLM": lc_global_llm,
    "langchain StepCacheChatModel": lc_chat_model,
    "llamaindex predict, chat model": li_predict_chat,
    "llamaindex predict, completion model": li_predict_complete,
    "llamaindex chat": li_chat,
    "llamaindex complete": li_complete,
    "llamaindex complete, self-formatting model": li_complete_self_formatting,
}


# ----------------------------------------------------------------------------- serving and judging


def hash_cache() -> StepCache:
    return StepCache(InMemoryStore(), embedder=HashEmbedder())


def _asked(send: Send, r: AppRequest, brain: Brain) -> str:
    """What the model receives for `r` on this path (the bare app, no cache)."""
    before = len(brain.seen)
    send(r, None, brain)
    sent = brain.seen[before:]
    assert len(sent) == 1, sent
    return sent[0]


#: `check`'s answer for an edit the path does not send to the model (e.g. call arguments of a
#: LlamaIndex `predict`, which are template variables): nothing to test on that path.
NOT_APPLICABLE = "not applicable: the model receives the same request"


def check(pair: Pair, path: str, cache: StepCache | None = None) -> str | None:
    """Send `pair` through `path`; None when served as required, `NOT_APPLICABLE`, else what
    went wrong."""
    send, brain = PATHS[path], Brain()
    first, second = _asked(send, pair.cached, brain), _asked(send, pair.request, brain)
    if pair.expect is Expect.MODEL_ANSWERS and first == second:
        return NOT_APPLICABLE
    brain.answers = {first: pair.cached_answer, second: pair.answer}
    brain.seen.clear()
    cache = cache if cache is not None else hash_cache()
    send(pair.cached, cache, brain)
    cache.flush()
    if brain.seen != [first]:
        return f"caching the first request did not ask the model it: {brain.seen!r}"
    brain.seen.clear()
    got = send(pair.request, cache, brain)
    cache.flush()
    if pair.expect is Expect.REUSE:
        if brain.seen or got != pair.cached_answer:
            return f"not reused: the model was asked {brain.seen!r}"
        return None
    if second not in brain.seen or got != pair.answer:
        return f"served from the cache for the first request; the model was asked {brain.seen!r}"
    return None


@dataclass(frozen=True, slots=True)
class Cell:
    """One path x placement: how many pairs, how many served as required."""

    path: str
    placement: str
    expect: Expect
    total: int
    ok: int
    example: str = ""


def measure(paths: Sequence[str] | None = None, draws: int = 1) -> list[Cell]:
    cells: dict[tuple[str, str, Expect], list[int]] = {}
    examples: dict[tuple[str, str, Expect], str] = {}
    for path in paths or list(PATHS):
        for pair in pairs(draws):
            key = (path, pair.placement, pair.expect)
            failure = check(pair, path)
            if failure == NOT_APPLICABLE:
                continue
            counts = cells.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += failure is None
            if failure is not None and key not in examples:
                examples[key] = f"[{pair.kind}] {failure}"
    return [Cell(p, pl, e, t, ok, examples.get((p, pl, e), "")) for (p, pl, e), (t, ok) in
            cells.items()]  # fmt: skip


def table(cells: Sequence[Cell]) -> str:
    lines = [f"{'path':40} {'placement':10} {'must':13} {'ok':>9}"]
    for c in cells:
        lines.append(f"{c.path:40} {c.placement:10} {c.expect.value:13} {c.ok:>4}/{c.total:<4}")
        if c.example:
            lines.append(f"    e.g. {c.example[:300]}")
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> None:
    draws = int(argv[argv.index("--draws") + 1]) if "--draws" in argv else 1
    print(table(measure(draws=draws)))


if __name__ == "__main__":
    main(sys.argv[1:])
