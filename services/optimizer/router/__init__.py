"""The learned model router: training, evaluation, storage and the live copy gateways hold.

``model`` (the router itself, pure numpy), ``training`` (fitting and the routing curve),
``dataset`` (the labelled MMLU outcomes, split by domain), ``jobs`` (train/evaluate on it),
``store`` (versions in the database, ``policy.updated``), ``live`` (a gateway's active
router), ``cli`` (``llmproxy router ...``) and ``servicer`` (the Optimizer's router calls).
"""

from llmproxy.optimizer.router.model import Router

__all__ = ["Router"]
