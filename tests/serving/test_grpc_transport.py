"""The gRPC transport under ``labdeck serve`` (serving/grpc_transport.py), driven by grpcio's
own client and, for what that client hides (PING frames), by a bare HTTP/2 client (h2).

Messages larger than HTTP/2's flow-control windows arrive whole in both directions, calls
share a connection, and what is not a call this server takes (an unknown method, a
compressed or unparseable message, a request that is not HTTP/2) is refused with a status
that says why, while the server keeps serving everyone else.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import httpx
import numpy as np
import pytest

from labdeck.serving.proto import inference_pb2 as pb
from labdeck.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving.models_kit import IRIS_ROWS, Models, Servers, expected
from tests.serving.test_protocol_v2_grpc import refused
from tests.serving.serve_kit import metric, start_serve
from tests.waiting import wait_until

MODEL = "lr_pickle"  # served without a body limit of its own


@pytest.fixture(scope="module")
def target(servers: Servers) -> str:
    return servers.get(MODEL).grpc_target


@pytest.fixture
def channel(target: str) -> Any:
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as opened:
        yield opened


def raw_request(rows: np.ndarray, *outputs: str) -> Any:
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="x", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def many_rows(count: int) -> np.ndarray:
    return np.random.default_rng(7).normal(IRIS_ROWS.mean(axis=0), 1.0, size=(count, 4))


def test_large_messages_arrive_whole(channel: Any, trained: Models) -> None:
    rows = many_rows(100_000)  # 3.2 MB in, 2.4 MB out
    reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(raw_request(rows, "predict_proba"), timeout=60)
    assert [(o.name, list(o.shape)) for o in reply.outputs] == [("predict_proba", [100_000, 3])]
    answer = np.frombuffer(reply.raw_output_contents[0], dtype="<f8").reshape(100_000, 3)
    np.testing.assert_array_equal(answer, expected(trained[MODEL], rows, "predict_proba"))


def test_calls_in_flight_together_each_get_their_own_answer(channel: Any, trained: Models) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    batches = [many_rows(1_000)[i : i + 1 + i % 7] for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda rows: stub.ModelInfer(raw_request(rows), timeout=60), batches))
    for rows, reply in zip(batches, replies, strict=True):
        answer = np.frombuffer(reply.raw_output_contents[0], dtype="<i8")
        np.testing.assert_array_equal(answer, expected(trained[MODEL], rows))


@pytest.mark.parametrize("path", ["/inference.GRPCInferenceService/Explain", "/other.Service/ModelInfer"])
def test_a_method_this_server_does_not_have_is_unimplemented(channel: Any, path: str) -> None:
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    error = refused(call, b"", timeout=30)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == f"Method not found: {path}"


def test_a_compressed_message_is_refused_with_the_reason(channel: Any) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    error = refused(stub.ModelInfer, raw_request(IRIS_ROWS), timeout=30, compression=grpc.Compression.Gzip)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "uncompressed" in error.details()
    assert stub.ModelInfer(raw_request(IRIS_ROWS), timeout=30).outputs[0].name == "predict"


def test_a_message_that_does_not_parse_is_invalid_argument(channel: Any) -> None:
    call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer", request_serializer=None, response_deserializer=None)
    error = refused(call, b"\xff\xff\xff\xff", timeout=30)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "The request is not a ModelInferRequest message."


def test_a_status_message_outside_ascii_arrives_intact(channel: Any) -> None:
    request = raw_request(IRIS_ROWS)
    request.model_name = "modèle-ünknown %41"
    error = refused(pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer, request, timeout=30)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "modèle-ünknown %41" in error.details()


def test_http1_on_the_grpc_port_is_turned_away_and_calls_still_work(target: str, channel: Any) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{target}/v2/health/live", timeout=10, trust_env=False)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live


def test_a_call_past_its_deadline_is_cancelled_and_counted_as_such(trained: Models, tmp_path: Any) -> None:
    """A batch that waits 10 s for company: the client's deadline passes first, its stream
    reset cancels the call, and the metrics count it as the client's doing (499), not a 5xx."""
    served = start_serve(str(trained[MODEL].path), tmp_path, "--max-batch-size", "64", "--max-batch-time", "10")
    try:
        assert served.grpc_target is not None
        with grpc.insecure_channel(served.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            error = refused(stub.ModelInfer, raw_request(IRIS_ROWS), timeout=0.5)
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        def counted(code: str) -> float:
            return metric(served.get("/metrics").text, "labdeck_serving_requests_total", protocol="grpc", code=code)

        wait_until(lambda: counted("499") == 1, timeout=30, what="the cancelled call counted")
        assert counted("500") == 0
    finally:
        served.stop()


class BareClient:
    """HTTP/2 by hand (h2 on a socket), for what grpcio's client does not let a test choose."""

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.send()
        while self.h2.outbound_flow_control_window <= 65_535:  # the server's preface opens its windows
            self.events()

    def send(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def events(self) -> list[Any]:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        events = self.h2.receive_data(data)
        self.send()  # what h2 answers on its own (SETTINGS and PING acknowledgements)
        return events

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def bare(target: str) -> Any:
    client = BareClient(target)
    yield client
    client.close()


def test_an_answer_larger_than_the_clients_window_waits_for_window_updates(bare: BareClient, trained: Models) -> None:
    """HTTP/2's default window is 64 KiB (grpcio's client opens a bigger one): the server
    sends that much, then the rest only as this client reads and grants more."""
    rows = many_rows(20_000)
    message = raw_request(rows, "predict_proba").SerializeToString()
    stream = bare.h2.get_next_available_stream_id()
    bare.h2.send_headers(stream, [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/inference.GRPCInferenceService/ModelInfer"),
        (b":authority", b"labdeck"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
    ])
    framed = len(message).to_bytes(5, "big") + message
    step = bare.h2.max_outbound_frame_size
    for start in range(0, len(framed), step):
        bare.h2.send_data(stream, framed[start : start + step], end_stream=start + step >= len(framed))
    bare.send()
    body, trailers = bytearray(), {}
    while not trailers:
        for event in bare.events():
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                bare.h2.acknowledge_received_data(event.flow_controlled_length, stream)
                bare.send()
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = dict(event.headers)
    assert trailers[b"grpc-status"] == b"0"
    assert int.from_bytes(body[1:5], "big") == len(body) - 5 > 65_535
    reply = pb.ModelInferResponse.FromString(bytes(body[5:]))
    answer = np.frombuffer(reply.raw_output_contents[0], dtype="<f8").reshape(20_000, 3)
    np.testing.assert_array_equal(answer, expected(trained[MODEL], rows, "predict_proba"))


def test_a_request_that_is_not_grpc_gets_415(bare: BareClient) -> None:
    stream = bare.h2.get_next_available_stream_id()
    bare.h2.send_headers(stream, [
        (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/inference.GRPCInferenceService/ServerLive"),
        (b":authority", b"labdeck"), (b"accept", b"text/html"),
    ], end_stream=True)
    bare.send()
    answered: list[dict[bytes, bytes]] = []
    while not answered:
        answered += [dict(e.headers) for e in bare.events() if isinstance(e, h2.events.ResponseReceived)]
    assert answered[0][b":status"] == b"415"


def test_pings_are_answered(bare: BareClient) -> None:
    """Clients' keepalives: a PING unanswered would make them drop the connection."""
    bare.h2.ping(b"labdeck!")
    bare.send()
    acked: list[bytes] = []
    while not acked:
        acked += [e.ping_data for e in bare.events() if isinstance(e, h2.events.PingAckReceived)]
    assert acked == [b"labdeck!"]
