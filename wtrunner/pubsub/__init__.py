"""Pub/Sub front doors: ``RunWorkflow`` commands pushed to ``POST /run-from-pubsub`` or pulled
by the consumer loop, both handled by :class:`~wtrunner.pubsub.processing.PubSubRunner`."""
