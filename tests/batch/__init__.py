"""CloudBatchInvoker: runs become Cloud Batch jobs, submitted with the real client library to a
local fake of the Batch API that speaks its gRPC protocol (tests/batch/fake.py)."""
