"""CloudRunJobsSandboxInvoker: runs become executions of a Cloud Run job, started with the real
client library against a local fake of the Cloud Run Admin API that speaks its gRPC protocol
(tests/cloudrun/fake.py)."""
