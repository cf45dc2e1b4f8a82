"""Typed application state: every ``web.AppKey`` wtrunner stores, declared in one place."""

from __future__ import annotations

from aiohttp import web

from .auth.authenticator import Authenticator
from .catalogue import Catalogue
from .environments import Environments
from .metadata import Metadata
from .metrics import Metrics
from .pubsub.consumer import PullConsumer
from .pubsub.processing import PubSubRunner
from .readiness import Readiness
from .runs import RunService
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", Metrics)
ENVIRONMENTS = web.AppKey("environments", Environments)
CATALOGUE = web.AppKey("catalogue", Catalogue)
METADATA = web.AppKey("metadata", Metadata)
RUNS = web.AppKey("runs", RunService)
PUBSUB = web.AppKey("pubsub", PubSubRunner)
PUBSUB_CONSUMER = web.AppKey("pubsub_consumer", PullConsumer)
AUTH = web.AppKey("auth", Authenticator)
