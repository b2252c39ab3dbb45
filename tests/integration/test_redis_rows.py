"""The column-wise Redis writer on a real Redis: Feast's newer-wins rule, a TTL if set."""

from datetime import timedelta

import pytest
import redis

from app.features import redis_rows
from tests.unit.features.test_online_load import T0, batch, columns_of, config, make_view

pytestmark = pytest.mark.integration


def _write(tmp_path, port, ids, times, **online):
    # The session's Redis is shared: ids unique to the test keep its keys apart.
    ids = [f"{tmp_path.name}-{i}" for i in ids]
    view, entity = make_view(tmp_path)
    cols = columns_of(view, entity, tmp_path)
    repo = config(tmp_path, {"type": "redis", "connection_string": f"127.0.0.1:{port}", **online})
    rows = redis_rows.encode_rows(batch(ids, times), view, repo, cols.join_keys, cols.timestamp)
    return redis_rows.write_rows(repo, rows), rows


def test_a_row_no_newer_than_the_stored_one_is_skipped(tmp_path, redis_service):
    client = redis.Redis(port=redis_service.port)
    day = timedelta(days=1)
    written, first = _write(tmp_path, redis_service.port, ["a", "b", "c", "d"], [T0 + day] * 4)
    assert written == 4
    stored = {k: client.hgetall(k) for k in first.keys}
    # "a" older, "b" the same instant, "c" newer; "d" twice in one batch, the newer second.
    written, again = _write(
        tmp_path, redis_service.port, ["a", "b", "c", "d", "d"],
        [T0, T0 + day, T0 + 2 * day, T0 + 2 * day, T0 + 3 * day],
    )  # fmt: skip
    assert written == 3
    assert client.hgetall(first.keys[0]) == stored[first.keys[0]]
    assert client.hgetall(first.keys[1]) == stored[first.keys[1]]
    assert client.hget(first.keys[2], first.ts_field) == again.times[2]
    assert client.hget(first.keys[3], first.ts_field) == again.times[4]


def test_keys_expire_when_the_store_sets_a_ttl(tmp_path, redis_service):
    client = redis.Redis(port=redis_service.port)
    _, rows = _write(tmp_path, redis_service.port, ["a"], [T0], key_ttl_seconds=600)
    assert 0 < client.ttl(rows.keys[0]) <= 600
