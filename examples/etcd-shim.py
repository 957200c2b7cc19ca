#!/usr/bin/env python3
"""A faultline exec-protocol shim for etcd, in Python's standard library alone.

faultline starts one of these per client process (see examples/etcd-exec.yaml) and
writes one request a line to its stdin; it answers one line each on stdout
(docs/protocol.md). It talks to ONE etcd member through etcd's HTTP/JSON gRPC gateway
(/v3/kv/range, /v3/kv/put, /v3/kv/txn), the way faultline's own etcd client does over
gRPC: linearizable reads, writes refused at once by a member without a leader, cas as a
Txn comparing the value, append as a Txn on the key's mod revision, list-append
transactions as a read Txn and a write Txn guarded on mod revisions, no retries.

    etcd-shim.py ENDPOINT [--op-timeout-ms N] [--reads linearizable|serializable]

It gives up on a request after 80% of faultline's op timeout (N ms, default 2000), so
that it answers before faultline gives up on it.

--reads serializable is known unsafe (a member answers from its own, maybe stale,
state): faultline should catch it.

Outcomes: a read's error is always "fail" (a read changes nothing). A write's error is
"fail" only when etcd refused it before proposing it to raft (the messages below, from
etcd's server source, as in harness/sut/etcd/client.go) or when the connection was
refused (nothing was sent); any other error, a timeout above all, is "info".
"""

import base64
import json
import socket
import sys
import time
import urllib.error
import urllib.request

# etcd's errors for a Put or Txn that never reached raft (rpctypes in etcd's api module).
REJECTED_BEFORE_RAFT = {
    "etcdserver: no leader",
    "etcdserver: not capable",
    "etcdserver: rpc not supported for learner",
    "etcdserver: invalid client api version",
    "etcdserver: key is not provided",
    "etcdserver: value is provided",
    "etcdserver: lease is provided",
    "etcdserver: too many operations in txn request",
    "etcdserver: duplicate key given in txn request",
    "etcdserver: too many requests",
    "etcdserver: request is too large",
    "raft proposal dropped",
}


class Definite(Exception):
    """The operation did not and will not take effect."""


class Indefinite(Exception):
    """The operation may or may not have taken effect."""


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


class Etcd:
    def __init__(self, endpoint, timeout, serializable):
        self.base = "http://" + endpoint
        self.timeout = timeout
        self.serializable = serializable

    def post(self, path, body, mutation, require_leader=True):
        """POSTs body to the gateway; errors are Definite or Indefinite as above."""
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        if require_leader:
            # clientv3.WithRequireLeader: the gateway passes Grpc-Metadata-* on as gRPC
            # metadata, and a member without a leader refuses at once.
            req.add_header("Grpc-Metadata-hasleader", "true")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                err = json.load(e)
                msg = err.get("message") or err.get("error") or str(e)
            except ValueError:
                msg = str(e)
            if not mutation or msg in REJECTED_BEFORE_RAFT:
                raise Definite(msg)
            raise Indefinite(msg)
        except urllib.error.URLError as e:
            if not mutation or isinstance(e.reason, ConnectionRefusedError):
                raise Definite(str(e.reason))
            raise Indefinite(str(e.reason))
        except (OSError, ValueError) as e:  # timeouts, resets, a torn answer
            if not mutation:
                raise Definite(str(e) or type(e).__name__)
            raise Indefinite(str(e) or type(e).__name__)

    def get(self, key):
        """Returns (value, mod_revision), or (None, 0) for a missing key."""
        body = {"key": b64(key)}
        if self.serializable:
            body["serializable"] = True
        r = self.post("/v3/kv/range", body, mutation=False, require_leader=not self.serializable)
        kvs = r.get("kvs") or []
        if not kvs:
            return None, 0
        return unb64(kvs[0].get("value", "")), int(kvs[0].get("mod_revision", 0))

    def put(self, key, value):
        self.post("/v3/kv/put", {"key": b64(key), "value": b64(value)}, mutation=True)

    def txn(self, compare, key, value):
        """A Txn putting value at key if compare holds; returns whether it did."""
        r = self.post("/v3/kv/txn", {"compare": [compare],
                                     "success": [{"request_put": {"key": b64(key), "value": b64(value)}}]},
                      mutation=True)
        return bool(r.get("succeeded"))


def decode_list(v):
    if not v:
        return []
    l = json.loads(v)
    if not isinstance(l, list):
        raise Definite("value is not a list")
    return l


def do(db, req):
    """Runs one request; returns the answer's fields."""
    f, key = req["f"], req.get("key")
    if f == "init":  # the handshake: ready to serve
        return {"type": "ok"}
    if f == "read":
        v, _ = db.get(key)
        return {"type": "ok", "value": v}
    if f == "read-list":
        v, _ = db.get(key)
        return {"type": "ok", "values": decode_list(v)}
    if f == "write":
        db.put(key, req["value"])
        return {"type": "ok"}
    if f == "cas":
        cmp = {"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(req["from"])}
        if db.txn(cmp, key, req["to"]):
            return {"type": "ok"}
        return {"type": "fail", "error": "mismatch"}
    if f == "append":
        deadline = time.monotonic() + db.timeout
        while True:
            v, rev = db.get(key)  # a read: its error is definite, nothing was applied
            if v is None:
                cmp = {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
            else:
                cmp = {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(rev)}
            if db.txn(cmp, key, json.dumps(decode_list(v) + [req["value"]])):
                return {"type": "ok"}
            if time.monotonic() > deadline:  # the last compare failed: nothing applied
                return {"type": "fail", "error": "append: gave up after conflicting writes"}
    if f == "txn":
        return {"type": "ok", "txn": transaction(db, req["txn"])}
    raise Definite("unknown f " + repr(f))


def transaction(db, mops):
    """A list-append transaction as Jepsen's etcd test runs one: read every key in one
    Txn, apply the micro-operations to those lists, and (if any appended) write the new
    lists in a Txn guarded on every key's mod revision: it commits only if no key changed
    since the read. A failed guard wrote nothing: a definite conflict."""
    keys = list(dict.fromkeys(k for _, k, _ in mops))
    body = {"success": [{"request_range": {"key": b64(k), "serializable": db.serializable}} for k in keys]}
    r = db.post("/v3/kv/txn", body, mutation=False, require_leader=not db.serializable)
    lists, compares = {}, []
    for k, resp in zip(keys, r.get("responses") or []):
        kvs = resp.get("response_range", {}).get("kvs") or []
        if kvs:
            lists[k] = decode_list(unb64(kvs[0].get("value", "")))
            compares.append({"key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": kvs[0].get("mod_revision", "0")})
        else:
            lists[k] = []
            compares.append({"key": b64(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
    out, written = [], set()
    for f, k, v in mops:
        if f == "append":
            lists[k] = lists[k] + [v]
            written.add(k)
            out.append([f, k, v])
        else:
            out.append([f, k, list(lists[k])])
    if written:
        puts = [{"request_put": {"key": b64(k), "value": b64(json.dumps(lists[k]))}} for k in keys if k in written]
        r = db.post("/v3/kv/txn", {"compare": compares, "success": puts}, mutation=True)
        if not r.get("succeeded"):
            raise Definite("conflict: a key changed since the transaction read it")
    return out


def main(argv):
    endpoint, timeout, serializable = argv[1], 1.6, False
    args = argv[2:]
    while args:
        a = args.pop(0)
        name, _, val = a.partition("=")
        if not val and args:
            val = args.pop(0)
        if name == "--op-timeout-ms":
            timeout = 0.8 * float(val) / 1000
        elif name == "--reads":
            serializable = val == "serializable"
        else:
            sys.exit("etcd-shim: unknown argument " + a)
    db = Etcd(endpoint, timeout, serializable)
    socket.setdefaulttimeout(timeout)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = do(db, req)
        except Definite as e:
            out = {"type": "fail", "error": str(e)}
        except Indefinite as e:
            out = {"type": "info", "error": str(e)}
        out["id"] = req["id"]
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
