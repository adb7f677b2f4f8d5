"""A Redis lock that ends with its holder: a short lease renewed by a thread.

A lock whose TTL outlives the longest job blocks its resource for that long when
the process holding it dies (SIGKILL, the OOM killer, a lost machine). A lease
lives `ttl` seconds and a daemon thread of the holder renews it every ttl/3, so
when the holder dies the lease is gone within `ttl` seconds, and while it lives
a slow job never loses it.

If Redis forgets the lease (a restart without persistence) the thread takes it
again when nobody else has; if someone else has, `lost` is set and logged.
"""

import logging
import threading

from redis.exceptions import LockError, LockNotOwnedError, RedisError

logger = logging.getLogger(__name__)


class Lease:
    """`with`-less on purpose: acquire() may fail without blocking, release() in finally."""

    def __init__(self, redis, name, ttl):
        # thread_local=False: the token must be visible to the renewing thread.
        self._lock = redis.lock(name, timeout=ttl, thread_local=False)
        self.name = name
        self.ttl = ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = None

    def acquire(self, blocking=False, blocking_timeout=None):
        if not self._lock.acquire(blocking=blocking, blocking_timeout=blocking_timeout):
            return False
        self._thread = threading.Thread(target=self._renew, name=f"lease {self.name}",
                                        daemon=True)
        self._thread.start()
        return True

    def _renew(self):
        while not self._stop.wait(self.ttl / 3):
            try:
                self._lock.reacquire()
            except LockNotOwnedError:
                # Redis lost the key (a restart) or it ran out: take it again if free.
                try:
                    if self._lock.acquire(blocking=False):
                        logger.warning("Lease %s was gone from Redis; taken again", self.name)
                        continue
                except RedisError:
                    continue
                self.lost = True
                logger.error("Lease %s lost: another process holds it now", self.name)
                return
            except RedisError as exc:
                # Redis away for a moment: two more tries before the lease runs out.
                logger.warning("Lease %s not renewed (%s); trying again", self.name, exc)

    def release(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        try:
            self._lock.release()
        except LockError:
            logger.warning("Lease %s had run out before release", self.name)
        except RedisError:
            # Redis away: the lease runs out by itself within ttl seconds.
            logger.warning("Lease %s not released (Redis unavailable)", self.name)
