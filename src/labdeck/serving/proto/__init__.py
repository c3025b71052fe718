"""Generated from inference.proto by grpc_tools.protoc; regenerate, never edit."""
