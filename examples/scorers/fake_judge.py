"""A stand-in judge for trying ``zooter score --scorer llm_judge`` without an LLM: an OpenAI-compatible
chat completions server on 127.0.0.1 that judges by length, not by quality.

- a grading prompt (``configs/judges/grade.txt``) gets ``Rating: [[n]]`` with n = 1 + (words in the answer) // 8,
  at most 10;
- a pairwise prompt (``configs/judges/pairwise.txt``) gets ``[[A]]`` or ``[[B]]`` for the longer answer in
  words, ``[[C]]`` when they differ by at most 20%;
- an answer that is only ``???`` gets a reply without a verdict, so its unit ends up null.

Run ``python examples/scorers/fake_judge.py --port 8765`` and point ``--base_url`` at
``http://127.0.0.1:8765/v1`` (any ``--judge_model``). Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_BETWEEN = r"\[The Start of {0}\]\n(.*?)\n\[The End of {0}\]"


def section(prompt: str, name: str) -> str | None:
    match = re.search(_BETWEEN.format(re.escape(name)), prompt, re.DOTALL)
    return match.group(1) if match else None


def judge(prompt: str) -> str:
    """The stand-in judge's reply to one prompt."""
    a, b = section(prompt, "Assistant A's Answer"), section(prompt, "Assistant B's Answer")
    if a is not None and b is not None:
        if "???" in (a.strip(), b.strip()):
            return "I cannot compare these answers."
        words_a, words_b = len(a.split()), len(b.split())
        if abs(words_a - words_b) <= 0.2 * max(words_a, words_b):
            return f"Both answers are about as long ({words_a} and {words_b} words). [[C]]"
        return f"The longer answer is better here. [[{'A' if words_a > words_b else 'B'}]]"
    answer = section(prompt, "the Assistant's Answer") or ""
    if answer.strip() == "???":
        return "There is nothing to rate."
    return f"The answer has {len(answer.split())} words. Rating: [[{min(10, 1 + len(answer.split()) // 8)}]]"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = judge(body["messages"][-1]["content"])
        data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"fake judge at http://127.0.0.1:{port}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
