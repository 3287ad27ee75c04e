#!/usr/bin/env python3
"""Independent MDP/0.2 client and worker, written from ZeroMQ RFC 18 (MDP/0.2) and
RFC 8 (MMI) only, so integration tests can check a router against a peer that shares
no code with it. Needs Python 3.11+ and pyzmq.

  mdp_peer.py worker ENDPOINT SERVICE [--delimited] [--heartbeat-ms MS] [--partials N]
                     [--die-after-requests K] [--reply-prefix STR] [--count-file PATH]
  mdp_peer.py client ENDPOINT SERVICE BODY... [--delimited] [--timeout-ms MS] [--repeat N]

Exit codes: 0 ok, 2 client timed out waiting for FINAL, 3 protocol violation by the broker.
--delimited speaks the variant where every message starts with an extra empty frame.
"""
import argparse, json, os, signal, sys, time
import zmq

MDPC, MDPW = b"MDPC02", b"MDPW02"
C_REQUEST, C_PARTIAL, C_FINAL = b"\x01", b"\x02", b"\x03"
W_READY, W_REQUEST, W_PARTIAL, W_FINAL, W_HEARTBEAT, W_DISCONNECT = (bytes([i]) for i in range(1, 7))
LIVENESS = 3  # missed heartbeat intervals before the broker counts as gone (RFC: usually 3-5)


def fail(code, msg):
    print(f"mdp_peer: {msg}", file=sys.stderr, flush=True)
    os._exit(code)  # immediate: don't let pending socket state delay or mask the failure


def show(frames):
    return [f.decode("utf-8", "backslashreplace") for f in frames]


def new_dealer(ctx, endpoint, identity=None):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)  # never hang at exit on undeliverable messages
    if identity:
        # A fixed identity lets a restarted router's replies find this client again.
        s.setsockopt(zmq.ROUTING_ID, identity.encode())
    s.connect(endpoint)
    return s


def unwrap(frames, header, delimited):
    """Strip the optional leading empty frame; fail loudly if the broker used the other framing."""
    if delimited:
        if frames and frames[0] == b"":
            return frames[1:]
        if frames and frames[0] == header:
            fail(3, f"--delimited, but broker sent plain framing (no leading empty frame): {show(frames)}")
        fail(3, f"expected leading empty frame, got: {show(frames)}")
    if len(frames) >= 2 and frames[0] == b"" and frames[1] == header:
        fail(3, f"plain framing expected, but broker sent a leading empty frame (delimited variant): {show(frames)}")
    return frames


# ---------------------------------------------------------------- client

def run_client(a):
    service = a.service.encode()
    body = [b.encode() for b in a.body]
    lead = [b""] if a.delimited else []
    ctx = zmq.Context()
    sock = new_dealer(ctx, a.endpoint, a.identity)
    for _ in range(a.repeat):
        sock.send_multipart(lead + [MDPC, C_REQUEST, service] + body)
        deadline = time.monotonic() + a.timeout_ms / 1000
        while True:  # zero or more PARTIALs, then exactly one FINAL
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not sock.poll(left_ms):
                fail(2, f"timed out after {a.timeout_ms} ms waiting for FINAL from {a.endpoint} (service {a.service!r})")
            frames = unwrap(sock.recv_multipart(), MDPC, a.delimited)
            # RFC 18: PARTIAL/FINAL = "MDPC02", 0x02|0x03, service, 1+ body frames
            if len(frames) < 4:
                fail(3, f"reply has {len(frames)} frames, RFC 18 requires 4 or more: {show(frames)}")
            if frames[0] != MDPC:
                fail(3, f"bad client header {frames[0]!r}, expected {MDPC!r}: {show(frames)}")
            if frames[1] not in (C_PARTIAL, C_FINAL):
                fail(3, f"bad client command {frames[1]!r}, expected 0x02 or 0x03: {show(frames)}")
            if frames[2] != service:
                fail(3, f"reply service frame {frames[2]!r} != requested {service!r}: {show(frames)}")
            final = frames[1] == C_FINAL
            print(json.dumps({"command": "final" if final else "partial",
                              "service": frames[2].decode("utf-8", "backslashreplace"),
                              "body": show(frames[3:])}), flush=True)
            if final:
                break
    sock.close()
    ctx.term()
    return 0


# ---------------------------------------------------------------- worker

class Worker:
    def __init__(self, a):
        self.a = a
        self.ctx = zmq.Context()
        self.lead = [b""] if a.delimited else []
        self.interval = a.heartbeat_ms / 1000
        self.requests = 0
        self.stop = False
        self.sock = None

    def send(self, cmd, *rest):
        self.sock.send_multipart(self.lead + [MDPW, cmd] + list(rest))
        self.last_sent = time.monotonic()

    def connect(self):
        """Open a fresh socket and register; used at start and after the broker went silent."""
        if self.sock is not None:
            self.sock.close()
        self.sock = new_dealer(self.ctx, self.a.endpoint)
        self.send(W_READY, self.a.service.encode())
        self.last_heard = time.monotonic()
        print("ready", flush=True)

    def count(self, body):
        if self.a.count_file:  # one line per delivery, flushed so a test can count while we run
            line = body[0].decode("utf-8", "backslashreplace").replace("\n", "\\n").replace("\r", "\\r")
            with open(self.a.count_file, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()

    def handle_request(self, frames):
        # RFC 18: REQUEST = "MDPW02", 0x02, client address, empty, 1+ body frames
        if len(frames) < 5 or frames[3] != b"":
            fail(3, f"malformed REQUEST (need client, empty delimiter, body): {show(frames)}")
        client, body = frames[2], frames[4:]
        self.requests += 1
        self.count(body)
        if self.a.die_after_requests and self.requests >= self.a.die_after_requests:
            os._exit(0)  # simulated crash: no reply, no DISCONNECT, no cleanup
        if self.a.stall_after_requests and self.requests >= self.a.stall_after_requests:
            time.sleep(3600)  # busy forever mid-request, silent: a test kills it with SIGKILL
        for i in range(self.a.partials):
            self.send(W_PARTIAL, client, b"", f"partial-{i}:".encode() + body[0], *body[1:])
        self.send(W_FINAL, client, b"", self.a.reply_prefix.encode() + body[0], *body[1:])

    def run(self):
        self.connect()
        while not self.stop:
            now = time.monotonic()
            if now - self.last_heard > LIVENESS * self.interval:
                print(f"mdp_peer: broker silent for {LIVENESS} heartbeat intervals, reconnecting",
                      file=sys.stderr, flush=True)
                self.connect()
                continue
            if now - self.last_sent >= self.interval:
                self.send(W_HEARTBEAT)  # only when idle: any command counts as a heartbeat
            # wake for the next heartbeat, and at least every 100 ms so SIGTERM is noticed promptly
            wait_ms = max(0, min(100, int((self.last_sent + self.interval - now) * 1000)))
            if not self.sock.poll(wait_ms):
                continue
            frames = unwrap(self.sock.recv_multipart(), MDPW, self.a.delimited)
            self.last_heard = time.monotonic()
            if len(frames) < 2 or frames[0] != MDPW:
                fail(3, f"bad worker header, expected {MDPW!r}: {show(frames)}")
            cmd = frames[1]
            if cmd == W_REQUEST:
                self.handle_request(frames)
            elif cmd == W_HEARTBEAT and len(frames) == 2:
                # answer, but rate-limited so two answering peers cannot ping-pong
                if time.monotonic() - self.last_sent >= self.interval / 2:
                    self.send(W_HEARTBEAT)
            elif cmd == W_DISCONNECT and len(frames) == 2:
                # RFC 18: a worker told to disconnect reconnects on a new socket (e.g. after a broker
                # restart forgot it); --exit-on-disconnect makes the DISCONNECT observable instead
                if self.a.exit_on_disconnect:
                    print("mdp_peer: broker sent DISCONNECT, exiting", file=sys.stderr, flush=True)
                    self.sock.close()
                    return 0
                print("mdp_peer: broker sent DISCONNECT, reconnecting", file=sys.stderr, flush=True)
                self.connect()
            else:
                fail(3, f"unexpected command from broker: {show(frames)}")
        # SIGTERM/SIGINT: say goodbye so the broker drops us now instead of after heartbeat expiry;
        # a short bounded linger gives the DISCONNECT a chance to leave before the socket closes
        self.send(W_DISCONNECT)
        self.sock.setsockopt(zmq.LINGER, 200)
        self.sock.close()
        return 0


def run_worker(a):
    w = Worker(a)

    def on_signal(signum, frame):
        w.stop = True  # a flag, not an exception: never abort a multipart send halfway
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = w.run()
    w.ctx.term()
    return code


def main():
    p = argparse.ArgumentParser(description="Independent MDP/0.2 (RFC 18) test peer")
    sub = p.add_subparsers(dest="role", required=True)
    w = sub.add_parser("worker", help="echo worker")
    w.add_argument("endpoint")
    w.add_argument("service")
    w.add_argument("--delimited", action="store_true", help="extra empty frame before every command")
    w.add_argument("--heartbeat-ms", type=int, default=1000)
    w.add_argument("--partials", type=int, default=0, help="PARTIALs before each FINAL")
    w.add_argument("--die-after-requests", type=int, default=0, metavar="K",
                   help="os._exit(0) on receiving the K-th request, without replying")
    w.add_argument("--stall-after-requests", type=int, default=0, metavar="K",
                   help="on receiving the K-th request, hang without replying or heartbeating")
    w.add_argument("--exit-on-disconnect", action="store_true", help="exit on DISCONNECT instead of reconnecting")
    w.add_argument("--reply-prefix", default="", help="prefix for the FINAL's first body frame")
    w.add_argument("--count-file", help="append the first body frame of each request received")
    c = sub.add_parser("client", help="send a request, print replies as JSON lines")
    c.add_argument("endpoint")
    c.add_argument("service")
    c.add_argument("body", nargs="+", help="one frame each (RFC 18 needs at least one)")
    c.add_argument("--delimited", action="store_true", help="extra empty frame before every command")
    c.add_argument("--timeout-ms", type=int, default=5000, help="per request, until its FINAL")
    c.add_argument("--repeat", type=int, default=1, help="send the request N times, one after another")
    c.add_argument("--identity", help="fixed ZeroMQ routing id, so replies reach it across reconnects")
    a = p.parse_args()
    if a.role == "worker" and a.heartbeat_ms <= 0:
        p.error("--heartbeat-ms must be positive")
    sys.exit(run_client(a) if a.role == "client" else run_worker(a))


if __name__ == "__main__":
    main()
