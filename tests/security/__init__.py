# ruff: noqa: E501  (the table's rows are wide)
"""The security suite: ``pytest -m security tests/security`` (about 50 s on 2 loaded cores).

One real stack for the package (``conftest.py``): profiler, context, cache, scheduler,
gateway and whatsapp as separate ``llmproxy serve`` processes on NATS JetStream and a
fresh PostgreSQL database, every secret configured. At the end of the run pytest prints a
"security probes" table: each probe that passed, with what it saw.

| area | probed | expected |
|---|---|---|
| keys at rest | every column of ``api_keys`` for 3 keys | neither key nor secret part nor a bare SHA-256 of either; the domain-separated hash is there |
| keys at rest | a real key id with a forged secret | UNAUTHENTICATED |
| context | GetConversation, ResetConversation, DeleteConversation, AppendTurns, BuildContext with another tenant's conversation id | the answer an unknown id gets (NOT_FOUND); the conversation unchanged |
| gateway | Ask, AskStream (``scope.conversation_id``), HTTP ``llmproxy.conversation_id`` | NOT_FOUND / 404 as for an unknown id |
| usage | gateway Usage by conversation, profiler ListUsage by request id, a tenant's own totals | as for unknown ids; totals equal that tenant's ledger rows |
| cache | same question from another tenant; Invalidate by entry id and key; Stats | miss (answered and billed anew); removed 0 as for unknown ids; own counters only |
| feedback | wrong / rating / escalate on another tenant's request id | as for an unknown id; the entry still served; control: the owner's "wrong" removes it |
| jobs | GetJob, CancelJob, WatchJob with ``owner`` = another tenant; ListJobs | NOT_FOUND as for an unknown id; job still active; not listed |
| fuzz HTTP | 80 hypothesis bodies (random JSON, raw bytes) and headers to ``/v1/chat/completions`` | 200 or a 4xx whose JSON error names the problem; never 5xx; SERVING |
| fuzz gRPC | 60 random / mutated requests to each Gateway method; undecodable bytes to every method of the 5 other services | never INTERNAL / UNKNOWN; undecodable: INVALID_ARGUMENT naming the message type; all SERVING |
| secrets in logs | provider API key, WhatsApp app secret, verify token, access token, 3 API key secrets x every process log (gateway and whatsapp at debug), after answered, failing and refused traffic | none (whole value or its last 16 characters) |
| whatsapp | webhook without app secret (unset, blank; the app factory and the process) | refuses to start, naming LLMPROXY_WHATSAPP_APP_SECRET (exit 2) |
| whatsapp | 7 forged POSTs to a webhook started with "skip the check" variables | 401 / 403, nothing stored, nothing sent; control: the signed POST is accepted |
"""
