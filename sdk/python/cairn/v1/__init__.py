"""Generated protobuf and gRPC stubs of the cairn.v1 protocol. Do not edit."""
