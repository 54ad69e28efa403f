//! Cross-service tests live in `suite/`: each module starts the services it needs (real
//! processes' code on port 0, real PostgreSQL, real gRPC between them) through the test kit.
