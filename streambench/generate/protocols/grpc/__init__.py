"""gRPC client (grpcio): unary, server-streaming and bidirectional-streaming calls."""
