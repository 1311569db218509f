"""The Python client suite: every Backplane service exercised over the network from Python.

Usage: python3 suite.py '<json config>' (see tests/polyglot/test/polyglot.test.ts). Prints one line per
check ("ok <name>" or "FAIL <name>: <why>") and last "N passed, N failed"; exits 1 when a check failed.
"""

import base64
import json
import queue
import socket
import sys
import threading
import time
import traceback
import zlib

from google.protobuf import descriptor_pb2, descriptor_pool

from backplane_grpc import Protos, _message_class, grpc, reason_of

CONFIG = json.loads(sys.argv[1])
P = Protos(CONFIG["descriptors"])
TIMEOUT = 10
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_error(fn, code, reason=None):
    try:
        fn()
    except grpc.RpcError as err:
        expect(err.code() == code, f"expected {code}, got {err.code()}: {err.details()}")
        if reason is not None:
            expect(reason_of(err) == reason, f"expected reason {reason}, got {reason_of(err)}")
        return err
    raise AssertionError(f"expected {code}, the call succeeded")


def channel(address):
    return grpc.insecure_channel(address)


# ---- name server -----------------------------------------------------------------------------------

@check
def naming_bind_and_resolve():
    ns = P.stub(channel(CONFIG["naming"]), "backplane.naming.v1.NamingService")
    bound = ns.Bind(
        P["backplane.naming.v1.BindRequest"](
            name="python/echo",
            types=["backplane.echo.v1.EchoService"],
            location=P["backplane.naming.v1.Location"](host="127.0.0.1", port=9999),
        ),
        timeout=TIMEOUT,
    )
    expect(bound.owner_secret, "a new address comes with its owner secret")
    got = ns.Resolve(
        P["backplane.naming.v1.ResolveRequest"](name="python/echo", expected_type="backplane.echo.v1.EchoService"),
        timeout=TIMEOUT,
    )
    expect(got.binding.location.port == 9999, f"resolved {got.binding}")
    expect_error(
        lambda: ns.Resolve(P["backplane.naming.v1.ResolveRequest"](name="python/nobody"), timeout=TIMEOUT),
        grpc.StatusCode.NOT_FOUND,
    )
    expect_error(
        lambda: ns.Resolve(
            P["backplane.naming.v1.ResolveRequest"](name="python/echo", expected_type="other.Service"),
            timeout=TIMEOUT,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    ns.Unbind(
        P["backplane.naming.v1.UnbindRequest"](name="python/echo", owner_secret=bound.owner_secret),
        timeout=TIMEOUT,
    )


# ---- IBP depot -------------------------------------------------------------------------------------

IBP = "backplane.ibp.v1."


def allocate(depot, size, type_name="ALLOCATION_TYPE_BYTE_ARRAY"):
    attrs = P[IBP + "Attributes"](
        duration=0,
        reliability=P.enum(IBP + "Reliability", "RELIABILITY_STABLE"),
        type=P.enum(IBP + "AllocationType", type_name),
    )
    return depot.Allocate(P[IBP + "AllocateRequest"](size=size, attributes=attrs), timeout=TIMEOUT).caps


def store(depot, write_cap, data, chunk=256 * 1024):
    def messages():
        yield P[IBP + "StoreRequest"](write_cap=write_cap, size=len(data))
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            yield P[IBP + "StoreRequest"](data=part, crc32=zlib.crc32(part))

    return depot.Store(messages(), timeout=TIMEOUT)


def read(depot, read_cap, offset=0, size=-1, timeout=None):
    parts = []
    request = P[IBP + "ReadRequest"](read_cap=read_cap, offset=offset, size=size)
    for r in depot.Read(request, timeout=timeout or TIMEOUT):
        expect(zlib.crc32(r.data) == r.crc32, "every chunk carries its CRC-32")
        parts.append(r.data)
    return b"".join(parts)


@check
def ibp_allocate_store_read_copy():
    a = P.stub(channel(CONFIG["depotA"]), IBP + "DepotService")
    b = P.stub(channel(CONFIG["depotB"]), IBP + "DepotService")
    data = bytes(range(256)) * 4096 + b"tail"
    src = allocate(a, len(data))
    res = store(a, src.write_cap, data)
    expect(res.current_size == len(data) and res.crc32 == zlib.crc32(data), f"stored {res}")
    expect(read(a, src.read_cap) == data, "read back what was stored")
    expect(read(a, src.read_cap, 1000, 10) == data[1000:1010], "a ranged read")
    # third-party copy: depot A streams straight to depot B
    dst = allocate(b, len(data))
    copied = a.Copy(
        P[IBP + "CopyRequest"](source_read_cap=src.read_cap, target_write_cap=dst.write_cap, size=-1),
        timeout=TIMEOUT,
    )
    expect(copied.copied == len(data), f"copied {copied.copied}")
    expect(read(b, dst.read_cap) == data, "the copy holds the same bytes")
    probe = b.Manage(
        P[IBP + "ManageRequest"](
            manage_cap=dst.manage_cap, command=P.enum(IBP + "ManageCommand", "MANAGE_COMMAND_PROBE")
        ),
        timeout=TIMEOUT,
    )
    expect(probe.current_size == len(data) and probe.read_ref_count == 1, f"probe {probe}")
    # one-message forms
    small = b.StoreSmall(P[IBP + "StoreSmallRequest"](write_cap=dst.write_cap, data=b""), timeout=TIMEOUT)
    expect(small.current_size == len(data), "an empty StoreSmall changes nothing")
    # a capability of the wrong kind, a forged one, a store past the limit
    expect_error(lambda: store(a, src.read_cap, b"x"), grpc.StatusCode.FAILED_PRECONDITION)
    forged = src.read_cap[: src.read_cap.index("#") + 1] + "A" * 43 + "/READ"
    expect_error(lambda: read(a, forged), grpc.StatusCode.NOT_FOUND, "IBP_E_CAP_NOT_FOUND")
    expect_error(lambda: read(a, src.read_cap[:20]), grpc.StatusCode.INVALID_ARGUMENT)
    expect_error(lambda: store(a, src.write_cap, b"more"), grpc.StatusCode.RESOURCE_EXHAUSTED)


@check
def ibp_fifo_read_waits_for_a_later_store():
    depot = P.stub(channel(CONFIG["depotA"]), IBP + "DepotService")
    fifo = allocate(depot, 64, "ALLOCATION_TYPE_FIFO")
    # a read of an empty FIFO waits for its bytes: here until its deadline, having consumed nothing
    expect_error(lambda: read(depot, fifo.read_cap, 0, 5, timeout=0.3), grpc.StatusCode.DEADLINE_EXCEEDED)
    got = queue.Queue()
    reader = threading.Thread(target=lambda: got.put(read(depot, fifo.read_cap, 0, 5)))
    reader.start()
    store(depot, fifo.write_cap, b"hello")
    expect(got.get(timeout=TIMEOUT) == b"hello", "the waiting read got the stored bytes")
    reader.join()


# ---- tuple space -----------------------------------------------------------------------------------

TS = "backplane.tuplespace.v1."


def ts_auth():
    token = base64.b64encode(f"{CONFIG['tsUser']}:{CONFIG['tsPassword']}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


def tuple_of(*values):
    fields = []
    for v in values:
        if isinstance(v, str):
            value = P[TS + "Value"](string_value=v)
        elif isinstance(v, int):
            value = P[TS + "Value"](int_value=v)
        else:
            raise TypeError(v)
        fields.append(P[TS + "Field"](value=value))
    return P[TS + "Tuple"](fields=fields)


def job_template():
    return P[TS + "Template"](
        fields=[
            P[TS + "Matcher"](actual=P[TS + "Value"](string_value="job")),
            P[TS + "Matcher"](formal=P.enum(TS + "FieldType", "FIELD_TYPE_INT")),
        ]
    )


@check
def tuplespace_write_take_wait_to_take():
    ts = P.stub(channel(CONFIG["tuplespace"]), TS + "TupleSpaceService")
    auth = ts_auth()
    ts.CreateSpace(P[TS + "CreateSpaceRequest"](space="python", if_not_exists=True), timeout=TIMEOUT, metadata=auth)
    written = ts.Write(P[TS + "WriteRequest"](space="python", tuple=tuple_of("job", 1)), timeout=TIMEOUT, metadata=auth)
    expect(written.id > 0, "write returns the tuple's id")
    taken = ts.Take(P[TS + "TakeRequest"](space="python", template=job_template()), timeout=TIMEOUT, metadata=auth)
    expect(taken.found and taken.record.tuple.fields[1].value.int_value == 1, f"took {taken}")
    none = ts.Take(P[TS + "TakeRequest"](space="python", template=job_template()), timeout=TIMEOUT, metadata=auth)
    expect(not none.found, "the tuple was taken once")
    # a blocked waitToTake is woken by a later write
    got = queue.Queue()

    def wait():
        r = ts.WaitToTake(P[TS + "WaitToTakeRequest"](space="python", template=job_template()), timeout=TIMEOUT, metadata=auth)
        got.put(r.record.tuple.fields[1].value.int_value)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    ts.Write(P[TS + "WriteRequest"](space="python", tuple=tuple_of("job", 2)), timeout=TIMEOUT, metadata=auth)
    expect(got.get(timeout=TIMEOUT) == 2, "the waiter took the written tuple")
    waiter.join()
    # a waitToTake with nothing to take ends at its deadline
    expect_error(
        lambda: ts.WaitToTake(P[TS + "WaitToTakeRequest"](space="python", template=job_template()), timeout=0.3, metadata=auth),
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    # the same command through the generic entry point
    count = ts.Count(P[TS + "CountRequest"](space="python", template=job_template()), timeout=TIMEOUT, metadata=auth)
    expect(count.count == 0, f"count {count.count}")
    bad = base64.b64encode(f"{CONFIG['tsUser']}:wrong".encode()).decode()
    expect_error(
        lambda: ts.Count(P[TS + "CountRequest"](space="python", template=job_template()), timeout=TIMEOUT, metadata=(("authorization", f"Basic {bad}"),)),
        grpc.StatusCode.UNAUTHENTICATED,
    )


# ---- sharing ---------------------------------------------------------------------------------------

SH = "backplane.sharing.v1."


@check
def sharing_put_get_transaction():
    sh = P.stub(channel(CONFIG["sharing"]), SH + "SharingService")
    put = sh.Put(P[SH + "PutRequest"](key="python/a", value=b"1"), timeout=TIMEOUT)
    got = sh.Get(P[SH + "GetRequest"](key="python/a"), timeout=TIMEOUT)
    expect(got.found and got.entry.value == b"1" and got.entry.revision == put.revision, f"get {got}")
    both = [P[SH + "PutRequest"](key="python/a", value=b"2"), P[SH + "PutRequest"](key="python/b", value=b"2")]
    read_a = [P[SH + "ReadCheck"](key="python/a", revision=put.revision)]
    # a multi-key transaction, on either engine (both run the same replicated state machine)
    puts = both
    ok = sh.Commit(P[SH + "CommitRequest"](reads=read_a, puts=puts), timeout=TIMEOUT)
    expect(ok.committed, "a transaction whose reads hold commits")
    # the same read again is stale now: refused, with the key that conflicted, and nothing applied
    stale = sh.Commit(
        P[SH + "CommitRequest"](reads=read_a, puts=[P[SH + "PutRequest"](key="python/a", value=b"3")]),
        timeout=TIMEOUT,
    )
    expect(not stale.committed and stale.conflicts[0].key == "python/a", f"conflict {stale}")
    expect(sh.Get(P[SH + "GetRequest"](key="python/a"), timeout=TIMEOUT).entry.value == b"2", "nothing applied")
    expect(sh.Get(P[SH + "GetRequest"](key="python/b"), timeout=TIMEOUT).entry.value == b"2", "both keys committed")
    # a compare-and-set conflict names the key's revision now, in a trailer
    try:
        sh.CompareAndSet(P[SH + "CompareAndSetRequest"](key="python/a", expected_revision=put.revision, value=b"x"), timeout=TIMEOUT)
        raise AssertionError("a stale compare-and-set succeeded")
    except grpc.RpcError as err:
        expect(err.code() == grpc.StatusCode.FAILED_PRECONDITION, f"stale compare-and-set: {err.code()}")
        current = dict(err.trailing_metadata() or ()).get("backplane-current-revision")
        expect(current == str(ok.revision), f"current revision {current}, commit at {ok.revision}")
    # a serializable read answers from the node's own state
    ser = sh.Get(P[SH + "GetRequest"](key="python/b", consistency=P.enum(SH + "Consistency", "CONSISTENCY_SERIALIZABLE")), timeout=TIMEOUT)
    expect(ser.found and ser.entry.create_revision == ok.revision, f"serializable get {ser}")
    expect_error(lambda: sh.Put(P[SH + "PutRequest"](key="", value=b"x"), timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT)


@check
def sharing_publish_subscribe():
    sh = P.stub(channel(CONFIG["sharing"]), SH + "SharingService")
    stream = sh.Subscribe(P[SH + "SubscribeRequest"](topic="python.*"), timeout=TIMEOUT)
    first = next(stream)
    expect(first.WhichOneof("message") == "subscription_id", "the first message is the subscription id")
    for i in range(3):
        sh.Publish(P[SH + "PublishRequest"](topic="python.news", text=f"event {i}"), timeout=TIMEOUT)
    texts = [next(stream).event.text for _ in range(3)]
    expect(texts == ["event 0", "event 1", "event 2"], f"events in publish order: {texts}")
    sh.Unsubscribe(P[SH + "UnsubscribeRequest"](subscription_id=first.subscription_id), timeout=TIMEOUT)
    rest = list(stream)
    expect(rest == [], "unsubscribe ends the stream")


# ---- distributed servers ---------------------------------------------------------------------------

DS = "backplane.ds.v1."


class Node:
    """A ds server node written against the proto alone: an Attach session fed from a queue."""

    def __init__(self, ds, name, node):
        self.ds = ds
        self.requests = queue.Queue()
        self.requests.put(P[DS + "AttachRequest"](attach=P[DS + "Attach"](name=name, node=node)))
        self.responses = ds.Attach(iter(self.requests.get, None), timeout=30)
        self.attached = next(self.responses).attached
        self.events = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        try:
            for r in self.responses:
                self.events.put(r)
        except grpc.RpcError:
            pass

    def next(self, kind):
        r = self.events.get(timeout=TIMEOUT)
        expect(r.WhichOneof("kind") == kind, f"expected {kind}, got {r}")
        return getattr(r, kind)

    def dial(self, grant):
        host, port = self.attached.data_address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        s.sendall(grant.token)
        return s

    def detach(self):
        self.requests.put(P[DS + "AttachRequest"](detach=P[DS + "Detach"](binding_reset=True)))
        self.requests.put(None)


def recv_exactly(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        expect(chunk, f"connection ended after {len(out)} of {n} bytes")
        out += chunk
    return out


@check
def ds_node_receives_a_handoff():
    ds = P.stub(channel(CONFIG["dsCoordinator"]), DS + "CoordinatorService")
    one = Node(ds, CONFIG["dsService"], "python-one")
    two = Node(ds, CONFIG["dsService"], "python-two")
    host, port = one.attached.service_address.rsplit(":", 1)
    client = socket.socket()
    client.bind(("127.0.0.7", 0))
    client.settimeout(TIMEOUT)
    client.connect((host, int(port)))
    client.sendall(b"hello")
    # whichever node the coordinator chose is the donor
    got = None
    while got is None:
        for node, other in ((one, two), (two, one)):
            try:
                got = (node, other, node.events.get(timeout=0.1))
                break
            except queue.Empty:
                pass
    donor, receiver, first = got
    expect(first.WhichOneof("kind") == "new_stream", f"a new stream first, got {first}")
    grant = first.new_stream.stream
    data = donor.dial(grant)
    expect(recv_exactly(data, 5) == b"hello", "the donor reads the client's bytes")
    data.sendall(b"hi from the donor;")
    expect(recv_exactly(client, 18) == b"hi from the donor;", "the client reads the donor's bytes")
    client.sendall(b"unread")
    time.sleep(0.2)
    # handoff_to: start, give back what the application did not read, finish with a message
    h = queue.Queue()
    h.put(
        P[DS + "HandoffRequest"](
            start=P[DS + "HandoffStart"](
                session=donor.attached.session,
                client_url=first.new_stream.client_url,
                target_url=receiver.attached.node_url,
            )
        )
    )
    answers = ds.Handoff(iter(h.get, None), timeout=TIMEOUT)
    started = next(answers).started
    expect(list(started.stream_ids) == [grant.stream_id], f"started {started}")
    unread = b""
    while True:  # the coordinator ends the donor's data connection: read it to its end
        chunk = data.recv(65536)
        if not chunk:
            break
        unread += chunk
    data.close()
    if unread:
        h.put(P[DS + "HandoffRequest"](unread=P[DS + "UnreadBytes"](stream_id=grant.stream_id, data=unread)))
    h.put(P[DS + "HandoffRequest"](finish=P[DS + "HandoffFinish"](message=b"state from python")))
    # receive_handoff at the other node: the client arrives with the message and its streams
    incoming = receiver.next("incoming_handoff")
    expect(incoming.message == b"state from python", f"the message travels: {incoming.message}")
    expect(incoming.client_url == first.new_stream.client_url, "the same client")
    expect(incoming.client_url.startswith("ipv6://[::ffff:127.0.0.7"), incoming.client_url)
    moved = receiver.dial(incoming.streams[0])
    # the donor's handoff completes once the target has the client
    completed = next(answers).completed
    h.put(None)
    expect(completed.target_url == receiver.attached.node_url, f"completed {completed}")
    expect(recv_exactly(moved, 6) == b"unread", "the unread bytes come first at the new node")
    moved.sendall(b"hi from the receiver")
    expect(recv_exactly(client, 20) == b"hi from the receiver", "the client's socket never closed")
    client.sendall(b"!")
    expect(recv_exactly(moved, 1) == b"!", "new bytes go to the new node")
    client.close()
    moved.close()
    one.detach()
    two.detach()


# ---- discovery through server reflection, as grpcurl does it ---------------------------------------

REFLECTION = Protos(CONFIG["reflectionDescriptors"])
RF = "grpc.reflection.v1."


def reflect(address, *requests):
    stub = REFLECTION.stub(channel(address), RF + "ServerReflection")
    return list(stub.ServerReflectionInfo(iter(requests), timeout=TIMEOUT))


@check
def reflection_discovers_and_calls_every_service():
    """No proto files: list the services, fetch their descriptors, build the messages, call one method."""
    for address, service, method in CONFIG["reflectionTargets"]:
        listed = reflect(address, REFLECTION[RF + "ServerReflectionRequest"](list_services=""))
        names = {s.name for s in listed[0].list_services_response.service}
        expect(service in names and "grpc.health.v1.Health" in names, f"{address} lists {sorted(names)}")
        files = reflect(address, REFLECTION[RF + "ServerReflectionRequest"](file_containing_symbol=service))
        found = files[0].file_descriptor_response.file_descriptor_proto
        expect(len(found) > 0, f"{address} returns the descriptors of {service}")
        protos = {}
        for raw in found:
            f = descriptor_pb2.FileDescriptorProto.FromString(raw)
            protos[f.name] = f
        # imports the answer left out are asked for by file name, as grpcurl does
        missing = [d for f in list(protos.values()) for d in f.dependency if d not in protos]
        while missing:
            name = missing.pop()
            if name in protos:
                continue
            more = reflect(address, REFLECTION[RF + "ServerReflectionRequest"](file_by_filename=name))
            expect(more[0].HasField("file_descriptor_response"), f"{address} has no file {name}")
            for raw in more[0].file_descriptor_response.file_descriptor_proto:
                f = descriptor_pb2.FileDescriptorProto.FromString(raw)
                protos[f.name] = f
                missing.extend(d for d in f.dependency if d not in protos)
        pool = descriptor_pool.DescriptorPool()
        added = set()
        # add each file once its imports are in (the answers list them in any order)
        while len(added) < len(protos):
            ready = [f for n, f in protos.items() if n not in added and all(d in added for d in f.dependency)]
            expect(ready, f"import cycle among {sorted(set(protos) - added)}")
            for f in ready:
                pool.Add(f)
                added.add(f.name)
        m = pool.FindServiceByName(service).FindMethodByName(method)
        request = _message_class(m.input_type)()
        response_class = _message_class(m.output_type)
        call = channel(address).unary_unary(
            f"/{service}/{method}", lambda x: x.SerializeToString(), response_class.FromString
        )
        call(request, timeout=TIMEOUT)


def main():
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
            print(f"ok {fn.__name__}", flush=True)
            passed += 1
        except Exception as err:  # noqa: BLE001 - report every failure and go on
            detail = err.details() if isinstance(err, grpc.RpcError) else str(err)
            print(f"FAIL {fn.__name__}: {type(err).__name__}: {detail}", flush=True)
            traceback.print_exc(file=sys.stderr)
            failed += 1
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
