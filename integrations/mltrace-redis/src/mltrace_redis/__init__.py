"""mltrace for Redis feature stores: each lookup is one ``feature_lookup`` stage span.

```python
import redis
from mltrace_redis import RedisFeatureStore

features = RedisFeatureStore(redis.Redis(), name="user-features")
rows = features.hgetall_many([f"user:{uid}" for uid in user_ids])   # keys, hits, misses, latency
```
``AsyncRedisFeatureStore`` does the same over ``redis.asyncio``. Key values stay out of the
span unless ``record_keys=True``.
"""

from __future__ import annotations

from ._store import AsyncRedisFeatureStore, RedisFeatureStore

__version__ = "0.1.0"

__all__ = ["AsyncRedisFeatureStore", "RedisFeatureStore", "__version__"]
