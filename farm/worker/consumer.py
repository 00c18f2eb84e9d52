"""The worker's Celery consumer, publishing its task events in batches on a timer.

Celery's own consumer flushes the buffered task events (received, started, succeeded)
on the next turn of its event loop: with one bucket at a time that is a publish, a new
Redis client object and a round trip for every bucket, about a third of the worker's
main process (measured with py-spy, issue 14). This one flushes them EVENT_FLUSH seconds
after the first one waits, or when Celery's buffer is full (24 events), so Flower sees
every event a fraction of a second later and the bucket costs a publish no longer. Set
by `worker_consumer` in farm/celeryconfig.py; nothing else changes.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer as CeleryConsumer

from farm import defaults


class Consumer(CeleryConsumer):
    _flush_pending = False

    # undocumented hook (worker_consumer is the documented way in): no setting says when buffered events go out
    def on_send_event_buffered(self):
        if self.hub and not self._flush_pending:
            self._flush_pending = True
            self.hub.call_later(defaults.EVENT_FLUSH, self._flush_later)

    def _flush_later(self):
        self._flush_pending = False
        self._flush_events()  # private: Celery's own flush, which copes with a dispatcher not yet made

    def shutdown(self):
        """Events still waiting go out before the dispatcher closes."""
        self._flush_events()  # private, as in _flush_later
        super().shutdown()
