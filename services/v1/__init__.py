"""Generated gRPC contracts (llmproxy.v1). Do not edit: run scripts/gen_protos.py."""
