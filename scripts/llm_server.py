"""Starts llama-cpp-python's OpenAI-compatible server with its KV cache reset before every generation.

The server reuses the cached prefix of the previous prompt, which makes temperature-0 output depend
on the request before it. Resetting first makes the same request with the same seed give the same
bytes on every call and across restarts, which replay checks depend on.
Arguments are the server's own (python -m llama_cpp.server --help).
"""
import functools

import llama_cpp
from llama_cpp.server.__main__ import main


def _reset_first(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        self.reset()
        return method(self, *args, **kwargs)
    return wrapper


llama_cpp.Llama.create_chat_completion = _reset_first(llama_cpp.Llama.create_chat_completion)
llama_cpp.Llama.create_completion = _reset_first(llama_cpp.Llama.create_completion)

if __name__ == "__main__":
    main()
