"""gRPC adapter of the Cache service: protobuf in, :class:`ResponseCache` calls, protobuf out."""

from __future__ import annotations

from datetime import timedelta

import grpc

from llmproxy.cache.engine import Question, ResponseCache, StoreAnswer
from llmproxy.cache.keys import CacheToken, Generation, ScopeKey, exact_key, scope_digest
from llmproxy.cache.memory import HitKind, Target, TargetKind
from llmproxy.cache.policy import Mode
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.v1 import cache_pb2, cache_pb2_grpc, common_pb2

__all__ = ["CacheServicer", "scope_key_from_proto"]

_MODES = {
    common_pb2.CACHE_MODE_UNSPECIFIED: None,
    common_pb2.CACHE_MODE_OFF: Mode.OFF,
    common_pb2.CACHE_MODE_EXACT: Mode.EXACT,
    common_pb2.CACHE_MODE_SEMANTIC: Mode.SEMANTIC,
}
_TARGETS = {
    "entry_id": TargetKind.ENTRY,
    "key": TargetKind.KEY,
    "conversation_id": TargetKind.CONVERSATION,
    "app_id": TargetKind.APP,
}


def _mode(policy: common_pb2.CachePolicy) -> Mode | None:
    if policy.mode not in _MODES:
        raise InvalidArgumentError(f"unknown cache mode {policy.mode}", field="policy.mode")
    return _MODES[policy.mode]


def scope_key_from_proto(key: cache_pb2.CacheScopeKey) -> ScopeKey:
    if not key.scope.tenant_id:
        raise InvalidArgumentError("key.scope.tenant_id is required", field="key.scope.tenant_id")
    g = key.generation
    return ScopeKey(
        tenant_id=key.scope.tenant_id,
        app_id=key.scope.app_id,
        model_class=key.model_class,
        system_prompt=key.system_prompt,
        context_fingerprint=key.context_fingerprint,
        generation=Generation(
            temperature=g.temperature if g.has_temperature else None,
            top_p=g.top_p if g.has_top_p else None,
            max_tokens=g.max_tokens,
            stop=tuple(g.stop),
            seed=g.seed,
        ),
    )


class CacheServicer(cache_pb2_grpc.CacheServicer):
    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    async def Lookup(
        self, request: cache_pb2.CacheLookupRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.CacheLookupReply:
        answer = await self._cache.lookup(
            Question(
                scope=scope_key_from_proto(request.key),
                prompt=request.prompt,
                mode=_mode(request.policy),
                threshold=request.policy.similarity_threshold,
                no_store=request.policy.no_store,
            )
        )
        if answer.hit is None:
            outcome = (
                common_pb2.CACHE_OUTCOME_BYPASSED
                if answer.bypassed
                else common_pb2.CACHE_OUTCOME_MISS
            )
            return cache_pb2.CacheLookupReply(
                report=common_pb2.CacheReport(outcome=outcome), cache_key=answer.token
            )
        hit, entry = answer.hit, answer.hit.entry
        report = common_pb2.CacheReport(
            outcome=(
                common_pb2.CACHE_OUTCOME_EXACT_HIT
                if hit.kind is HitKind.EXACT
                else common_pb2.CACHE_OUTCOME_SEMANTIC_HIT
            ),
            similarity=hit.similarity,
            # the core only ever returns the caller's own tenant's entries
            matched_prompt=entry.prompt,
            entry_id=entry.id,
        )
        report.age.FromTimedelta(max(hit.age, timedelta(0)))
        return cache_pb2.CacheLookupReply(
            report=report,
            answer=entry.answer,
            model=entry.model,
            usage=common_pb2.TokenUsage(
                input_tokens=entry.input_tokens,
                cached_input_tokens=entry.cached_input_tokens,
                output_tokens=entry.output_tokens,
            ),
            original_cost_nanousd=entry.cost_nanousd,
        )

    async def Store(
        self, request: cache_pb2.CacheStoreRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.CacheStoreReply:
        scope_key = scope_key_from_proto(request.key)
        if request.ttl.ToTimedelta() < timedelta(0):
            raise InvalidArgumentError("ttl must be positive", field="ttl")
        scope = scope_digest(scope_key)
        mode = _mode(request.policy)
        outcome = await self._cache.store(
            StoreAnswer(
                tenant_id=scope_key.tenant_id,
                app_id=scope_key.app_id,
                conversation_id=request.key.scope.conversation_id,
                token=CacheToken(scope, exact_key(scope, request.prompt)),
                prompt=request.prompt,
                answer=request.answer,
                model=request.model,
                usage=request.usage,
                cost_nanousd=request.cost_nanousd,
                request_id=request.request_id,
                mode=mode or Mode.SEMANTIC,
                no_store=request.policy.no_store,
                finish_reason=request.finish_reason,
                ttl=request.ttl.ToTimedelta() if request.HasField("ttl") else None,
            )
        )
        return cache_pb2.CacheStoreReply(
            stored=outcome.stored, entry_id=outcome.entry_id, reason=outcome.reason
        )

    async def Invalidate(
        self, request: cache_pb2.CacheInvalidateRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.CacheInvalidateReply:
        if not request.tenant_id:
            raise InvalidArgumentError("tenant_id is required", field="tenant_id")
        which = request.WhichOneof("target")
        if which is None or not getattr(request, which):
            raise InvalidArgumentError(
                "name what to invalidate: entry_id, key, conversation_id or app_id",
                field="target",
            )
        removed = await self._cache.invalidate(
            Target(request.tenant_id, _TARGETS[which], getattr(request, which))
        )
        return cache_pb2.CacheInvalidateReply(removed=removed)

    async def Stats(
        self, request: cache_pb2.CacheStatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.CacheStatsReply:
        return cache_pb2.CacheStatsReply(**self._cache.memory.stats(request.tenant_id))
