#!/usr/bin/env python3
"""A scripted LLM provider for the gateway's tests: OpenAI Chat Completions and Anthropic Messages.

The last user message picks the behaviour with a word `script:NAME` in it:
  ok            answer "echo: <message>"              429-then-ok   429 (Retry-After: 1), then ok
  500-then-ok   500, then ok                          always-500    500 on every attempt
  always-429    429 (Retry-After: 1) on every attempt  long-retry    429 with Retry-After: 3600
  malformed     200 with a body that is not JSON      stall         waits 30 s before answering
  cut           streams two chunks, then drops the connection
  tool          calls the first tool offered           json          answers {"steps": ["a", "b"]}
  unauthorized  401 quoting the API key it was sent
  nonsense-retry-after  429 with Retry-After: inf and retry-after-ms: nan, then ok
Attempts are counted per message text, so each test's prompt gets its own script.
Prints "PORT <n>" once listening; appends each request as a JSON line to --record.
"""
import argparse
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

attempts = {}
lock = threading.Lock()
record_path = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        anthropic = self.path.endswith("/messages")
        try:
            body = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "request is not JSON"}})
        if record_path:
            with lock, open(record_path, "a") as out:
                out.write(json.dumps({"path": self.path, "headers": dict(self.headers), "body": body,
                                      "peer_port": self.client_address[1]}) + "\n")
        messages = body.get("messages", [])
        text = ""
        for message in messages:
            if message.get("role") == "user":
                content = message.get("content")
                text = content if isinstance(content, str) else json.dumps(content)
        match = re.search(r"script:([\w-]+)", text)
        script = match.group(1) if match else "ok"
        with lock:
            attempts[text] = attempts.get(text, 0) + 1
            attempt = attempts[text]
        stream = bool(body.get("stream"))

        if script == "429-then-ok" and attempt == 1 or script == "always-429":
            return self.send_json(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
        if script == "nonsense-retry-after" and attempt == 1:
            return self.send_json(429, {"error": {"message": "slow down"}}, {"Retry-After": "inf",
                                                                            "retry-after-ms": "nan"})
        if script == "long-retry":
            return self.send_json(429, {"error": {"message": "quota exhausted"}}, {"Retry-After": "3600"})
        if script == "500-then-ok" and attempt == 1 or script == "always-500":
            return self.send_json(500, {"error": {"message": "internal failure"}})
        if script == "unauthorized":
            key = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
            return self.send_json(401, {"error": {"message": "Incorrect API key provided: " + key}})
        if script == "malformed":
            return self.send_raw(200, b'{"choices": [ {"message": ', "application/json")
        if script == "stall":
            time.sleep(30)
            return self.send_json(200, {})

        tool_call = None
        content = "echo: " + text
        if script == "tool":
            tools = body.get("tools") or []
            first = tools[0] if tools else {}
            name = first.get("name") or first.get("function", {}).get("name", "none")
            tool_call = {"id": "call_1", "name": name, "arguments": {"city": "Paris"}}
            content = ""
        if script == "json":
            content = json.dumps({"steps": ["a", "b"]})
            if anthropic:
                tool_call = {"id": "call_r", "name": "respond", "arguments": {"steps": ["a", "b"]}}
                content = ""
        if stream:
            return self.stream(anthropic, body, content, tool_call, cut=script == "cut")
        if anthropic:
            blocks = [{"type": "text", "text": content}] if content else []
            if tool_call:
                blocks.append({"type": "tool_use", "id": tool_call["id"], "name": tool_call["name"],
                               "input": tool_call["arguments"]})
            return self.send_json(200, {
                "id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                "content": blocks, "stop_reason": "tool_use" if tool_call else "end_turn",
                "usage": {"input_tokens": 11, "output_tokens": 7}})
        message = {"role": "assistant", "content": content or None}
        if tool_call:
            message["tool_calls"] = [{"id": tool_call["id"], "type": "function", "function": {
                "name": tool_call["name"], "arguments": json.dumps(tool_call["arguments"])}}]
        return self.send_json(200, {
            "id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_call else "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

    def stream(self, anthropic, body, content, tool_call, cut):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = [content[i:i + 8] for i in range(0, len(content), 8)] or [""]

        def send(event_name, data):
            text = (f"event: {event_name}\n" if event_name else "") + "data: " + data + "\n\n"
            raw = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()

        if anthropic:
            send("message_start", json.dumps({"type": "message_start", "message": {
                "model": body.get("model"), "usage": {"input_tokens": 11}}}))
            send("content_block_start", json.dumps({"type": "content_block_start", "index": 0,
                                                    "content_block": {"type": "text", "text": ""}}))
        for index, piece in enumerate(pieces):
            if cut and index == 2:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if anthropic:
                send("content_block_delta", json.dumps({"type": "content_block_delta", "index": 0,
                                                        "delta": {"type": "text_delta", "text": piece}}))
            else:
                send(None, json.dumps({"model": body.get("model"), "choices": [
                    {"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
        if anthropic:
            send("message_delta", json.dumps({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                              "usage": {"output_tokens": 7}}))
            send("message_stop", json.dumps({"type": "message_stop"}))
        else:
            send(None, json.dumps({"model": body.get("model"), "choices": [
                {"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7}}))
            send(None, "[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_json(self, status, value, headers=None):
        self.send_raw(status, json.dumps(value).encode(), "application/json", headers)

    def send_raw(self, status, raw, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()


def main():
    global record_path
    parser = argparse.ArgumentParser()
    parser.add_argument("--record")
    args = parser.parse_args()
    record_path = args.record
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
