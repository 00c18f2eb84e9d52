"""The worker's Celery consumer, publishing its task events in batches on a timer, less
those of quiet tasks.

Celery's own consumer flushes the buffered task events (received, started, succeeded)
on the next turn of its event loop: with one bucket at a time that is a publish, a new
Redis client object and a round trip for every bucket, about a third of the worker's
main process (measured with py-spy, issue 14). This one flushes them EVENT_FLUSH seconds
after the first one waits (and only then: Celery's own flush of a full buffer, at 24
events, is put off), so Flower sees every event a fraction of a second later and the
bucket costs a publish no longer. Before they go, the routine events of quiet tasks are
left out (farm.protocol.flower: what Flower can follow). Set by `worker_consumer` in
farm/celeryconfig.py; nothing else changes.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer as CeleryConsumer

from farm import defaults
from farm.protocol import flower

# Events a dispatcher holds before it publishes them itself, without waiting for the timer:
# a worker makes a few a bucket, so this is never reached between two flushes.
BUFFER_LIMIT = 100_000


class Consumer(CeleryConsumer):
    _flush_pending = False

    # undocumented hook (worker_consumer is the documented way in): no setting says when buffered events go out
    def on_send_event_buffered(self):
        # undocumented: the dispatcher's own flush of a full buffer would skip _leave_out_quiet
        # (set on each event: a reconnection makes a new dispatcher, with Celery's limit)
        self.event_dispatcher.buffer_limit = BUFFER_LIMIT
        if self.hub and not self._flush_pending:
            self._flush_pending = True
            self.hub.call_later(defaults.EVENT_FLUSH, self._flush_later)

    def _flush_later(self):
        self._flush_pending = False
        self._leave_out_quiet()
        self._flush_events()  # private: Celery's own flush, which copes with a dispatcher not yet made

    def _leave_out_quiet(self):
        dispatcher = self.event_dispatcher
        if dispatcher is None:
            return
        # private: the dispatcher's buffered events by group; no hook filters what it publishes
        buffered = dispatcher._group_buffer.get("task")
        if buffered:
            buffered[:] = [event for event in buffered if flower.shown(event)]

    def shutdown(self):
        """Events still waiting go out before the dispatcher closes."""
        self._leave_out_quiet()
        self._flush_events()  # private, as in _flush_later
        super().shutdown()
