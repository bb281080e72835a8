-- wrk: POST one small completion request (Benchmarks/proxy/run.sh)
wrk.method = "POST"
wrk.body = '{"model":"stub","prompt":"The quick brown fox jumps over the lazy dog","max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
