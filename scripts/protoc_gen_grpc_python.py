"""protoc plugin `grpc_python` for buf, backed by grpcio-tools.

grpcio-tools ships the gRPC Python generator inside its bundled protoc and not
as a plugin binary, so buf cannot call it directly. This plugin receives buf's
CodeGeneratorRequest, runs the bundled protoc on the same descriptors and hands
the generated `*_pb2_grpc.py` files back to buf.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        descriptor_path = pathlib.Path(tmp, "descriptors.binpb")
        descriptor_path.write_bytes(descriptors.SerializeToString())
        out = pathlib.Path(tmp, "out")
        out.mkdir()
        args = [
            "protoc",
            f"--descriptor_set_in={descriptor_path}",
            f"--grpc_python_out={out}",
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed"
        for path in sorted(out.rglob("*.py")):
            generated = response.file.add()
            generated.name = path.relative_to(out).as_posix()
            generated.content = path.read_text()
    sys.stdout.buffer.write(response.SerializeToString())


if __name__ == "__main__":
    main()
