"""The ceiling of a Python gRPC server on this machine: a server whose ModelInfer parses
nothing and answers the same prebuilt response (on uvloop, as `labdeck serve` runs), on
grpcio's server or on labdeck's own transport (serving/grpc_transport.py). Drive it with
the shared gRPC load client to see how many calls per second the transport itself allows,
with no model and no protocol code:

  .venv/bin/python bench/grpc_floor.py labdeck 18071 &     # or: grpcio
  .bench/mlserver/bin/python ../shared/bench/serving/grpc_bench.py --target 127.0.0.1:18071 --model iris-lr
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from labdeck.serving.proto import inference_pb2 as pb

SERVICE = "inference.GRPCInferenceService"


def answer() -> bytes:
    response = pb.ModelInferResponse(model_name="iris-lr", id="1")
    output = response.outputs.add(name="predict", datatype="INT64", shape=[1])
    output.contents.int64_contents.append(0)
    return response.SerializeToString()


async def on_grpcio(port: int) -> None:
    import grpc

    prebuilt = answer()

    async def model_infer(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return prebuilt

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def on_labdeck(port: int) -> None:
    from labdeck.serving.grpc_transport import GrpcServer

    prebuilt = answer()

    async def model_infer(_request: bytes) -> bytes:
        return prebuilt

    server = GrpcServer({f"/{SERVICE}/ModelInfer": model_infer}, max_message_bytes=1 << 20)
    await server.start("127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "labdeck"
    serve = {"grpcio": on_grpcio, "labdeck": on_labdeck}[transport]
    uvloop.run(serve(int(sys.argv[2]) if len(sys.argv) > 2 else 18071))
